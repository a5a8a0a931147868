"""Independent reference values for GRPOMath (Tests/GRPOTests), in torch float64.

Written from TRL's GRPOTrainer semantics (``_generate_and_score_completions`` for the
advantages, ``_compute_loss`` for the per-token loss and its aggregation), not from the Swift
code: the advantages are TRL's tensor expressions, and the loss runs micro-batch by micro-batch
with gradient accumulation exactly as the Trainer does, its gradient taken by autograd (so the
tie rule of torch.min and clamp decides the gradient, not a hand derivation). Run with torch:

    python3 make_grpo_reference.py     # writes grpo_reference.json next to this file
"""
import json
import os

import torch

torch.manual_seed(0)
D = torch.float64


def nanstd(x, dim=None, keepdim=False):
    # TRL's nanstd: Bessel-corrected.
    mean = torch.nanmean(x, dim=dim, keepdim=True)
    var = torch.nanmean((x - mean) ** 2, dim=dim, keepdim=True)
    count = torch.sum(~torch.isnan(x), dim=dim, keepdim=True)
    var = var * count / (count - 1)
    std = torch.sqrt(var)
    return std if keepdim else std.squeeze(dim) if dim is not None else std.squeeze()


def advantages(rewards, k, kind, scale):
    grouped = rewards.view(-1, k)
    mean = grouped.mean(dim=1).repeat_interleave(k)
    if scale in ("group", "none"):
        std = nanstd(grouped, dim=1).repeat_interleave(k)
    else:
        std = nanstd(rewards).expand_as(rewards)
    if kind == "group":
        adv = rewards - mean
    else:  # RLOO: the mean of the other k - 1
        sums = grouped.sum(dim=1).repeat_interleave(k)
        adv = rewards - (sums - rewards) / (k - 1)
    if scale != "none":
        adv = adv / (std + 1e-4)
    zero = torch.isclose(std, torch.zeros_like(std))
    return adv, std, zero.double().mean().item()


# --- advantages -----------------------------------------------------------------------------
adv_cases = []
k = 4
rewards = torch.tensor([0.5, 1.5, -0.25, 2.0, 1.0, 1.0, 1.0, 1.0, -3.0, 0.0, 0.75, 0.125], dtype=D)
for kind in ("group", "rloo"):
    for scale in ("group", "batch", "none"):
        adv, std, frac = advantages(rewards, k, kind, scale)
        adv_cases.append({"kind": kind, "scale": scale, "advantages": adv.tolist(), "std": std.tolist(), "frac_zero_std": frac})

# --- losses -----------------------------------------------------------------------------------
N, R, MICRO = 12, 6, 4
lengths = torch.tensor([6, 3, 1, 5, 6, 2, 4, 6, 1, 3, 5, 2])
mask = (torch.arange(R)[None, :] < lengths[:, None]).double()
mask[5] = 0  # a truncated completion left out (--mask-truncated)
mask[9] = 0
logp_old = (torch.randn(N, R, dtype=D) * 0.8 - 2.0) * mask
logp_new = (logp_old + torch.randn(N, R, dtype=D) * 0.35) * mask
logp_ref = (logp_old + torch.randn(N, R, dtype=D) * 0.3) * mask
adv_rows = advantages(torch.randn(N, dtype=D), k, "group", "group")[0]
eps_low, eps_high = 0.2, 0.28


def compute_loss(lp, old, ref, adv, m, loss_type, beta, accumulation, items_in_batch):
    # TRL's _compute_loss for one micro-batch (token-level importance sampling, no delta).
    coef_1 = torch.exp(lp - old)
    coef_2 = torch.clamp(coef_1, 1 - eps_low, 1 + eps_high)
    a = adv.unsqueeze(1)
    per_token_loss = -torch.min(coef_1 * a, coef_2 * a)
    if beta != 0:
        kl = torch.exp(ref - lp) - (ref - lp) - 1
        per_token_loss = per_token_loss + beta * kl
    if loss_type == "grpo":
        loss = ((per_token_loss * m).sum(-1) / m.sum(-1).clamp(min=1.0)).mean() / accumulation
    elif loss_type == "bnpo":
        loss = (per_token_loss * m).sum() / m.sum().clamp(min=1.0) / accumulation
    elif loss_type == "dr_grpo":
        loss = (per_token_loss * m).sum() / (per_token_loss.size(0) * R) / accumulation
    elif loss_type == "dapo":
        loss = (per_token_loss * m).sum() / items_in_batch.clamp(min=1.0)
    low = ((coef_1 < 1 - eps_low) & (a < 0)).double()
    high = ((coef_1 > 1 + eps_high) & (a > 0)).double()
    return loss, low, high


loss_cases = []
for loss_type in ("grpo", "bnpo", "dr_grpo", "dapo"):
    for beta in (0.0, 0.04):
        lp = logp_new.clone().requires_grad_(True)
        accumulation = N // MICRO
        items = mask.sum()
        total = 0.0
        lows, highs = [], []
        for start in range(0, N, MICRO):
            sl = slice(start, start + MICRO)
            loss, low, high = compute_loss(
                lp[sl], logp_old[sl], logp_ref[sl], adv_rows[sl], mask[sl], loss_type, beta, accumulation, items
            )
            loss.backward()  # gradients accumulate over the micro-batches
            total += loss.item()
            lows.append(low)
            highs.append(high)
        low, high = torch.cat(lows), torch.cat(highs)
        seq = mask.sum(-1) > 0
        low_seq = (low * mask).sum(-1)[seq] / mask.sum(-1)[seq]
        high_seq = (high * mask).sum(-1)[seq] / mask.sum(-1)[seq]
        kl = torch.exp(logp_ref - logp_new) - (logp_ref - logp_new) - 1
        loss_cases.append(
            {
                "loss": loss_type,
                "beta": beta,
                "total": total,
                "gradient": lp.grad.reshape(-1).tolist(),
                "low_mean": ((low * mask).sum() / mask.sum()).item(),
                "high_mean": ((high * mask).sum() / mask.sum()).item(),
                "region_mean": (((low + high) * mask).sum() / mask.sum()).item(),
                "low_min": low_seq.min().item(),
                "high_max": high_seq.max().item(),
                "kl": ((kl * mask).sum() / mask.sum()).item(),
            }
        )

out = {
    "group": k,
    "rewards": rewards.tolist(),
    "advantage_cases": adv_cases,
    "rows": N,
    "width": R,
    "micro_batch": MICRO,
    "epsilon_low": eps_low,
    "epsilon_high": eps_high,
    "counts": mask.sum(-1).long().tolist(),
    "logp_old": logp_old.reshape(-1).tolist(),
    "logp_new": logp_new.reshape(-1).tolist(),
    "logp_ref": logp_ref.reshape(-1).tolist(),
    "row_advantages": adv_rows.tolist(),
    "loss_cases": loss_cases,
}
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "grpo_reference.json")
with open(path, "w") as f:
    json.dump(out, f, indent=1)
print("wrote", path)
