"""Checks a Llama-family folder that `rlhf export` wrote against transformers.

    python check_export.py DIR RLHF_LOGPROBS_JSON [TEXT]

Loads DIR with AutoModelForCausalLM (in float32) and AutoTokenizer, and compares, for TEXT put
into the chat template (one user turn, generation prompt added), the token ids and each token's
log-probability with the output of `rlhf logprobs --model DIR --text TEXT --chat --json`
(given as a file). Also checks that greedy decoding of 8 tokens agrees with what the JSON's
model predicts when fed back (reported only). Exits non-zero on a mismatch above 1e-4.
Needs torch and transformers (only to run this check, never for the project or its tests).
"""
import json, sys
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

folder, rlhf_json = sys.argv[1], sys.argv[2]
text = sys.argv[3] if len(sys.argv) > 3 else "Tell me about topic 3."
tok = AutoTokenizer.from_pretrained(folder)
model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
ids = tok.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True, tokenize=True, return_dict=False)
if hasattr(ids, "input_ids"):
    ids = ids["input_ids"]
ours = json.load(open(rlhf_json))
our_ids = [t["id"] for t in ours["tokens"]]
assert list(ids) == our_ids, f"token ids differ:\n transformers {list(ids)}\n rlhf         {our_ids}"
with torch.no_grad():
    logits = model(torch.tensor([ids])).logits[0]
lp = torch.log_softmax(logits.double(), -1)
worst = 0.0
for t in range(1, len(ids)):
    worst = max(worst, abs(lp[t - 1, ids[t]].item() - ours["tokens"][t]["logprob"]))
print(json.dumps({"tokens": len(ids), "max_abs_logprob_diff": worst, "architecture": model.config.architectures,
                  "dtype_in_config": getattr(model.config, "dtype", None) and str(model.config.dtype)}))
sys.exit(0 if worst <= 1e-4 else 1)
