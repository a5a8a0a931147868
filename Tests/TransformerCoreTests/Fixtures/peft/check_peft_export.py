"""Checks, by hand, that adapter folders rlhf writes load with PeftModel.from_pretrained and give
the logits recorded in peft_reference.json (from PEFT's own folders of the same matrices).

    RLHF_KEEP_PEFT=/tmp/rlhf-peft swift test -c release -Xswiftc -enable-testing --filter PEFTAdapterTests
    /tmp/v/bin/python check_peft_export.py /tmp/rlhf-peft
"""
import json
import os
import sys

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

here = os.path.dirname(os.path.abspath(__file__))
ref = json.load(open(os.path.join(here, "peft_reference.json")))
worst = 0.0
for name, r in ref.items():
    folder = os.path.join(sys.argv[1], name)
    base_dir = json.load(open(os.path.join(folder, "adapter_config.json")))["base_model_name_or_path"]
    base = AutoModelForCausalLM.from_pretrained(os.path.join(here, base_dir), dtype=torch.float32)
    model = PeftModel.from_pretrained(base, folder).eval()
    with torch.no_grad():
        logits = model(torch.tensor(r["tokens"])).logits
    diff = (logits - torch.tensor(r["logits"])).abs().max().item()
    worst = max(worst, diff)
    print(f"{name}: max |logit difference| {diff:.2e}")
print("ok" if worst <= 1e-4 else "MISMATCH")
sys.exit(0 if worst <= 1e-4 else 1)
