"""Reference values for the DPO losses of `rlhf dpo`, computed with PyTorch autograd.

A fixed tiny batch of three rankings (3, 2 and 4 completions; 3, 1 and 5 pairs) with summed
log-probabilities under the policy and the reference. For each loss setting it records the batch
loss (the mean over rankings of each ranking's mean pair loss), the gradient of that loss with
respect to every policy log-probability, and TRL's reward figures averaged the same way.

Run: python dpo_reference.py  (needs torch; writes dpo_reference.json beside this file)
"""
import json
import os

import torch
import torch.nn.functional as F

RANKINGS = [
    {"policy": [-12.5, -15.25, -9.75], "reference": [-13.0, -14.0, -11.5], "pairs": [[0, 1], [2, 1], [2, 0]]},
    {"policy": [-30.125, -28.5], "reference": [-29.0, -31.75], "pairs": [[1, 0]]},
    {"policy": [-5.5, -40.0, -7.25, -22.0], "reference": [-6.0, -21.0, -7.0, -23.5],
     "pairs": [[0, 1], [0, 3], [2, 1], [3, 1], [2, 3]]},
]

SETTINGS = [
    {"loss": "sigmoid", "beta": 0.1, "label_smoothing": 0.0},
    {"loss": "sigmoid", "beta": 0.5, "label_smoothing": 0.0},
    {"loss": "sigmoid", "beta": 0.1, "label_smoothing": 0.2},
    {"loss": "ipo", "beta": 0.1, "label_smoothing": 0.0},
    {"loss": "ipo", "beta": 0.5, "label_smoothing": 0.0},
    {"loss": "hinge", "beta": 0.1, "label_smoothing": 0.0},
    {"loss": "hinge", "beta": 0.5, "label_smoothing": 0.0},
]


def pair_losses(h, loss, beta, eps):
    if loss == "sigmoid":
        return -(1 - eps) * F.logsigmoid(beta * h) - eps * F.logsigmoid(-beta * h)
    if loss == "ipo":
        return (h - 1 / (2 * beta)) ** 2
    if loss == "hinge":
        return torch.relu(1 - beta * h)
    raise ValueError(loss)


def case(setting):
    beta, eps = setting["beta"], setting["label_smoothing"]
    total = torch.zeros((), dtype=torch.float64)
    grads, figures = [], {k: 0.0 for k in ["rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins",
                                           "logps/chosen", "logps/rejected"]}
    leaves = []
    for r in RANKINGS:
        pol = torch.tensor(r["policy"], dtype=torch.float64, requires_grad=True)
        ref = torch.tensor(r["reference"], dtype=torch.float64)
        leaves.append(pol)
        c = torch.tensor([p[0] for p in r["pairs"]])
        j = torch.tensor([p[1] for p in r["pairs"]])
        chosen = pol[c] - ref[c]
        rejected = pol[j] - ref[j]
        total = total + pair_losses(chosen - rejected, setting["loss"], beta, eps).mean() / len(RANKINGS)
        with torch.no_grad():
            w = 1 / len(RANKINGS)
            figures["rewards/chosen"] += w * (beta * chosen).mean().item()
            figures["rewards/rejected"] += w * (beta * rejected).mean().item()
            figures["rewards/accuracies"] += w * (chosen > rejected).double().mean().item()
            figures["rewards/margins"] += w * (beta * (chosen - rejected)).mean().item()
            figures["logps/chosen"] += w * pol[c].mean().item()
            figures["logps/rejected"] += w * pol[j].mean().item()
    total.backward()
    grads = [leaf.grad.tolist() for leaf in leaves]
    return {**setting, "loss_value": total.item(), "gradient": grads, "figures": figures}


if __name__ == "__main__":
    out = {"rankings": RANKINGS, "cases": [case(s) for s in SETTINGS], "torch": torch.__version__}
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dpo_reference.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    print("wrote", path)
