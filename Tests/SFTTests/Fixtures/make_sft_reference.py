"""Independent reference values for SFT's masked loss, token accuracy and entropy
(Tests/SFTTests), in torch float64.

Written from TRL's SFTTrainer semantics (``compute_loss``: the per-token negative log-likelihood
summed over the positions whose label is not -100, divided by their count; ``entropy`` and
``mean_token_accuracy`` summed over those positions and divided by their count; ``is_top1``
true when the label is the first of the most likely tokens), not from the Swift code. The
entropy is TRL's own ``entropy_from_logits``; the gradient of the loss with respect to the
logits is taken by autograd. Run with torch and trl:

    python3 make_sft_reference.py     # writes sft_reference.json next to this file
"""
import json
import os

import torch

from trl.trainer.utils import entropy_from_logits

torch.manual_seed(0)
D = torch.float64

B, T, V = 3, 6, 13
logits = (torch.randn(B, T, V, dtype=D) * 2).round(decimals=3)
labels = torch.randint(0, V, (B, T))
# Prompts and padding: no label.
labels[0, :2] = -100
labels[1, :4] = -100
labels[2, :1] = -100
labels[2, 4:] = -100
# Ties: the label equal to the maximum, after an equal one (not top-1) and before one (top-1).
logits[0, 3, :] = 0.0
logits[0, 3, 2] = 5.0
logits[0, 3, 7] = 5.0
labels[0, 3] = 7
logits[1, 5, :] = 0.0
logits[1, 5, 4] = 4.0
logits[1, 5, 9] = 4.0
labels[1, 5] = 4

mask = labels != -100
x = logits.clone().requires_grad_(True)
logp = torch.log_softmax(x, dim=-1)
safe = labels.clamp(min=0)
token_logp = logp.gather(-1, safe.unsqueeze(-1)).squeeze(-1) * mask
count = mask.sum()
loss = -token_logp.sum() / count.clamp(min=1)
loss.backward()

with torch.no_grad():
    entropy = entropy_from_logits(logits) * mask
    lab = logits.gather(-1, safe.unsqueeze(-1)).squeeze(-1)
    first_max = logits.argmax(dim=-1)  # torch returns the first index of equal maxima
    is_top1 = (first_max == labels) & mask

out = {
    "batch": B, "length": T, "vocab": V,
    "logits": logits.flatten().tolist(),
    "targets": torch.where(mask, labels, torch.full_like(labels, -1)).flatten().tolist(),
    "tokens": int(count),
    "loss": loss.item(),
    "mean_token_accuracy": int(is_top1.sum()) / int(count),
    "entropy": (entropy.sum() / count).item(),
    "grad": x.grad.flatten().tolist(),
}
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sft_reference.json")
with open(path, "w") as f:
    json.dump(out, f)
print(f"wrote {path}: loss {out['loss']:.6f}, accuracy {out['mean_token_accuracy']:.4f}, entropy {out['entropy']:.6f}")
