#!/usr/bin/env python3
"""Independent reference for the compute core's golden test (golden_tiny_gpt2.json).

Written from the GPT-2 equations with numpy in float64; gradients come from the `autograd`
package's reverse-mode differentiation (pip install autograd numpy), not from hand-written
backward passes, so the Swift backward pass is checked against something independent.
Run it from this folder: python3 make_golden.py
"""
import json
import autograd.numpy as np
from autograd import grad
from autograd.scipy.special import logsumexp
import numpy as onp

cfg = dict(n_layer=2, n_head=2, n_embd=32, n_positions=16, vocab_size=37, layer_norm_epsilon=1e-5)
L, NH, C, NCTX, V, EPS = cfg["n_layer"], cfg["n_head"], cfg["n_embd"], cfg["n_positions"], cfg["vocab_size"], cfg["layer_norm_epsilon"]
rng = onp.random.default_rng(1234)

def shapes(scalar_head):
    s = [("wte.weight", (V, C)), ("wpe.weight", (NCTX, C))]
    for l in range(L):
        h = f"h.{l}."
        s += [(h + "ln_1.weight", (C,)), (h + "ln_1.bias", (C,)),
              (h + "attn.c_attn.weight", (C, 3 * C)), (h + "attn.c_attn.bias", (3 * C,)),
              (h + "attn.c_proj.weight", (C, C)), (h + "attn.c_proj.bias", (C,)),
              (h + "ln_2.weight", (C,)), (h + "ln_2.bias", (C,)),
              (h + "mlp.c_fc.weight", (C, 4 * C)), (h + "mlp.c_fc.bias", (4 * C,)),
              (h + "mlp.c_proj.weight", (4 * C, C)), (h + "mlp.c_proj.bias", (C,))]
    s += [("ln_f.weight", (C,)), ("ln_f.bias", (C,))]
    if scalar_head:
        s += [("score.weight", (1, C)), ("score.bias", (1,))]
    return s

# Random parameters, larger than GPT-2's init so every path carries signal; LN gains near 1.
params = {}
for name, shape in shapes(True):
    if name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name == "ln_f.weight":
        params[name] = 1.0 + 0.1 * rng.standard_normal(shape)
    else:
        params[name] = 0.3 * rng.standard_normal(shape)
params = {k: onp.asarray(v, dtype=onp.float32).astype(onp.float64) for k, v in params.items()}

# A left-padded batch: lengths 8, 5 and 3; padding uses token 0 with mask 0.
B, T = 3, 8
lengths = [8, 5, 3]
tokens = onp.zeros((B, T), dtype=onp.int64)
mask = onp.zeros((B, T), dtype=onp.int64)
for b, n in enumerate(lengths):
    tokens[b, T - n:] = rng.integers(0, V, size=n)
    mask[b, T - n:] = 1
positions = onp.maximum(onp.cumsum(mask, axis=1) - 1, 0)
targets = -onp.ones((B, T), dtype=onp.int64)  # next-token targets at real positions
for b in range(B):
    for t in range(T - 1):
        if mask[b, t] and mask[b, t + 1]:
            targets[b, t] = tokens[b, t + 1]

def layernorm(x, w, b):
    m = np.mean(x, axis=-1, keepdims=True)
    v = np.mean((x - m) ** 2, axis=-1, keepdims=True)
    return (x - m) / np.sqrt(v + EPS) * w + b

def gelu(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))

# key s visible to query t iff s <= t and (s is a real token or s == t)
causal = onp.tril(onp.ones((T, T), dtype=bool))
allowed = causal[None] & ((mask[:, None, :] == 1) | onp.eye(T, dtype=bool)[None])  # (B, T, T)

def hidden(p):
    x = p["wte.weight"][tokens] + p["wpe.weight"][positions]
    hs = C // NH
    for l in range(L):
        h = f"h.{l}."
        a = layernorm(x, p[h + "ln_1.weight"], p[h + "ln_1.bias"])
        qkv = np.dot(a, p[h + "attn.c_attn.weight"]) + p[h + "attn.c_attn.bias"]
        heads = []
        for hh in range(NH):
            q = qkv[:, :, hh * hs:(hh + 1) * hs]
            k = qkv[:, :, C + hh * hs:C + (hh + 1) * hs]
            v = qkv[:, :, 2 * C + hh * hs:2 * C + (hh + 1) * hs]
            s = np.einsum("btd,bsd->bts", q, k) / np.sqrt(hs)
            s = np.where(allowed, s, -1e30)
            s = s - np.max(s, axis=-1, keepdims=True)
            e = np.exp(s) * allowed
            att = e / np.sum(e, axis=-1, keepdims=True)
            heads.append(np.einsum("bts,bsd->btd", att, v))
        y = np.concatenate(heads, axis=-1)
        x = x + np.dot(y, p[h + "attn.c_proj.weight"]) + p[h + "attn.c_proj.bias"]
        m = layernorm(x, p[h + "ln_2.weight"], p[h + "ln_2.bias"])
        f = gelu(np.dot(m, p[h + "mlp.c_fc.weight"]) + p[h + "mlp.c_fc.bias"])
        x = x + np.dot(f, p[h + "mlp.c_proj.weight"]) + p[h + "mlp.c_proj.bias"]
    return layernorm(x, p["ln_f.weight"], p["ln_f.bias"])

def logits_of(p):
    return np.dot(hidden(p), p["wte.weight"].T)

valid = targets >= 0
tsafe = onp.where(valid, targets, 0)
onehot = onp.eye(V)[tsafe]

def lm_loss(p):
    z = logits_of(p)
    logp = np.sum(z * onehot, axis=-1) - logsumexp(z, axis=-1)
    return -np.sum(logp * valid) / onp.sum(valid)

def values_of(p):
    return np.dot(hidden(p), p["score.weight"][0]) + p["score.bias"][0]

value_coef = rng.standard_normal((B, T)) * mask
def value_objective(p):
    return np.sum(values_of(p) * value_coef)

tau = 0.7
coef_logp = rng.standard_normal((B, T)) * valid
coef_ent = rng.standard_normal((B, T)) * mask
def logp_entropy(p):
    z = logits_of(p) / tau
    lse = logsumexp(z, axis=-1)
    logp = np.sum(z * onehot, axis=-1) - lse
    pr = np.exp(z - lse[..., None])
    ent = lse - np.sum(pr * z, axis=-1)
    return logp * valid, ent
def policy_objective(p):
    logp, ent = logp_entropy(p)
    return np.sum(coef_logp * logp) + np.sum(coef_ent * ent)

lm_names = [n for n, _ in shapes(False)]
lm_params = {n: params[n] for n in lm_names}
loss = lm_loss(lm_params)
g_loss = grad(lm_loss)(lm_params)
g_value = grad(value_objective)(params)
g_policy = grad(policy_objective)(lm_params)
logp, ent = logp_entropy(lm_params)

# AdamW, two steps, decoupled decay on matrices only (torch.optim.AdamW semantics).
ad = dict(lr=0.01, beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.1)
grads2 = {n: 0.5 * g_loss[n] + 0.01 * onp.asarray(rng.standard_normal(g_loss[n].shape), dtype=onp.float32) for n in lm_names}
p_ad = {n: lm_params[n].copy() for n in lm_names}
m_ad = {n: onp.zeros_like(p_ad[n]) for n in lm_names}
v_ad = {n: onp.zeros_like(p_ad[n]) for n in lm_names}
g1 = {n: onp.asarray(g_loss[n], dtype=onp.float32).astype(onp.float64) for n in lm_names}
g2 = {n: onp.asarray(grads2[n], dtype=onp.float32).astype(onp.float64) for n in lm_names}
for step, gs in ((1, g1), (2, g2)):
    for n in lm_names:
        g = gs[n]
        if p_ad[n].ndim >= 2:
            p_ad[n] = p_ad[n] * (1 - ad["lr"] * ad["weight_decay"])
        m_ad[n] = ad["beta1"] * m_ad[n] + (1 - ad["beta1"]) * g
        v_ad[n] = ad["beta2"] * v_ad[n] + (1 - ad["beta2"]) * g * g
        mh = m_ad[n] / (1 - ad["beta1"] ** step)
        vh = v_ad[n] / (1 - ad["beta2"] ** step)
        p_ad[n] = p_ad[n] - ad["lr"] * mh / (onp.sqrt(vh) + ad["eps"])

def flat(a):
    return [float("%.9g" % x) for x in onp.asarray(a, dtype=onp.float64).ravel()]

out = dict(
    generator="make_golden.py (numpy float64 + autograd)",
    config=cfg, batch=B, length=T,
    tokens=flat(tokens), mask=flat(mask), positions=flat(positions), targets=flat(targets),
    params={n: flat(v) for n, v in params.items()},
    logits=flat(logits_of(lm_params)), loss=float(loss),
    grads={n: flat(g_loss[n]) for n in lm_names},
    value_coef=flat(value_coef), values=flat(values_of(params)),
    value_grads={n: flat(g_value[n]) for n in params},
    temperature=tau, coef_logp=flat(coef_logp), coef_ent=flat(coef_ent),
    logp=flat(logp), entropy=flat(ent),
    policy_grads={n: flat(g_policy[n]) for n in lm_names},
    adamw=dict(ad, grads2={n: flat(g2[n]) for n in lm_names}, params_after={n: flat(p_ad[n]) for n in lm_names}),
)
with open("golden_tiny_gpt2.json", "w") as f:
    json.dump(out, f, separators=(",", ":"))
print("wrote golden_tiny_gpt2.json: loss", float(loss))
