"""Independent reference values for PPOMath (Tests/PPOTests), in numpy float64.

Written from the formulas in "The N Implementation Details of RLHF with PPO" (Huang et al.,
2024) and lm-human-preferences, without looking at the Swift code: every loop below is the
plain textbook form. Run with numpy installed:

    python3 make_ppo_reference.py     # writes ppo_reference.json next to this file
"""
import json, os
import numpy as np

rng = np.random.default_rng(42)
B, R = 4, 7
lengths = np.array([7, 3, 5, 1])
mask = np.arange(R)[None, :] < lengths[:, None]

logprobs = rng.normal(-2, 0.7, (B, R)) * mask
ref_logprobs = (logprobs + rng.normal(0, 0.3, (B, R))) * mask
values = rng.normal(0, 1, (B, R)) * mask
scores = rng.normal(0, 1, B)
beta, gamma, lam = 0.05, 1.0, 0.95

# rewards: -beta * kl per token, score added at the last real token
rewards = -beta * (logprobs - ref_logprobs) * mask
for b in range(B):
    rewards[b, lengths[b] - 1] += scores[b]

# GAE, the plain backwards loop
adv = np.zeros((B, R))
for b in range(B):
    lastgaelam = 0.0
    for t in reversed(range(lengths[b])):
        nextvalue = values[b, t + 1] if t + 1 < lengths[b] else 0.0
        delta = rewards[b, t] + gamma * nextvalue - values[b, t]
        lastgaelam = delta + gamma * lam * lastgaelam
        adv[b, t] = lastgaelam
returns = (adv + values) * mask

def whiten(x, shift_mean=True):
    xs = x[mask]
    mean, var = xs.mean(), xs.var(ddof=1)
    w = (x - mean) / np.sqrt(var + 1e-8)
    if not shift_mean:
        w = w + mean
    return w * mask

adv_white = whiten(adv)
rewards_white = whiten(rewards, shift_mean=False)

# policy loss with new log-probabilities
new_logprobs = (logprobs + rng.normal(0, 0.25, (B, R))) * mask
eps = 0.2
ratio = np.exp(new_logprobs - logprobs)
pg1 = -adv_white * ratio
pg2 = -adv_white * np.clip(ratio, 1 - eps, 1 + eps)
pg = np.maximum(pg1, pg2)
n = mask.sum()
pg_loss = pg[mask].mean()
clipfrac = (pg2 > pg1)[mask].mean()
approxkl = ((ratio - 1) - (new_logprobs - logprobs))[mask].mean()
# gradient of pg_loss wrt new_logprobs, by central differences on the loss itself
def pg_loss_of(nl):
    r = np.exp(nl - logprobs)
    return np.maximum(-adv_white * r, -adv_white * np.clip(r, 1 - eps, 1 + eps))[mask].mean()
pg_grad = np.zeros((B, R))
for b in range(B):
    for t in range(lengths[b]):
        up, down = new_logprobs.copy(), new_logprobs.copy()
        up[b, t] += 1e-6; down[b, t] -= 1e-6
        pg_grad[b, t] = (pg_loss_of(up) - pg_loss_of(down)) / 2e-6

# value loss
eps_v = 0.2
new_values = (values + rng.normal(0, 0.4, (B, R))) * mask
def vf_loss_of(nv):
    vc = values + np.clip(nv - values, -eps_v, eps_v)
    return 0.5 * np.maximum((nv - returns) ** 2, (vc - returns) ** 2)[mask].mean()
vclipped = values + np.clip(new_values - values, -eps_v, eps_v)
vf_clipfrac = ((vclipped - returns) ** 2 > (new_values - returns) ** 2)[mask].mean()
vf_grad = np.zeros((B, R))
for b in range(B):
    for t in range(lengths[b]):
        up, down = new_values.copy(), new_values.copy()
        up[b, t] += 1e-6; down[b, t] -= 1e-6
        vf_grad[b, t] = (vf_loss_of(up) - vf_loss_of(down)) / 2e-6

ev = 1 - np.var((returns - values)[mask], ddof=1) / np.var(returns[mask], ddof=1)

# adaptive KL controller
def adaptive(beta, kl, target, n, horizon):
    e = np.clip(kl / target - 1, -0.2, 0.2)
    return beta * (1 + e * n / horizon)

out = {
    "B": B, "R": R, "lengths": lengths.tolist(), "beta": beta, "gamma": gamma, "lambda": lam, "eps": eps, "eps_v": eps_v,
    "logprobs": logprobs.ravel().tolist(), "ref_logprobs": ref_logprobs.ravel().tolist(), "values": values.ravel().tolist(),
    "scores": scores.tolist(), "rewards": rewards.ravel().tolist(), "advantages": adv.ravel().tolist(),
    "returns": returns.ravel().tolist(), "advantages_white": adv_white.ravel().tolist(), "rewards_white": rewards_white.ravel().tolist(),
    "new_logprobs": new_logprobs.ravel().tolist(), "pg_loss": pg_loss, "pg_clipfrac": clipfrac, "approxkl": approxkl,
    "ratio_mean": ratio[mask].mean(), "ratio_max": ratio[mask].max(), "pg_grad": pg_grad.ravel().tolist(),
    "new_values": new_values.ravel().tolist(), "vf_loss": vf_loss_of(new_values), "vf_clipfrac": vf_clipfrac,
    "vf_grad": vf_grad.ravel().tolist(), "explained_variance": ev,
    "kl_controller": [[b, kl, t, n, h, adaptive(b, kl, t, n, h)] for (b, kl, t, n, h) in
                      [(0.05, 12.0, 6.0, 64, 10000.0), (0.05, 1.0, 6.0, 64, 10000.0), (0.1, 6.3, 6.0, 512, 10000.0)]],
}
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "ppo_reference.json"), "w") as f:
    json.dump(out, f, indent=0)
print("wrote ppo_reference.json")
