"""PEFT LoRA adapters for the parity tests, and what PeftModel computes with them.

For the tiny Llama (../hf/arch/llama-tiny, GQA, untied) and GPT-2 (../hf/tiny-gpt2, Conv1D)
models, make a LoRA adapter with peft's get_peft_model (its own init), then set A and B to seeded
random values (B starts at zero, which would test nothing), save it with save_pretrained, and
record PeftModel.from_pretrained(base, folder)'s logits on fixed tokens in f32.

Run once in a scratch environment (tested with torch 2.15, transformers 5.24, peft 0.19):
    /tmp/v/bin/pip install torch transformers peft && /tmp/v/bin/python make_peft_fixtures.py
"""
import json
import os

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM

here = os.path.dirname(os.path.abspath(__file__))
os.chdir(here)  # so that adapter_config.json names its base by a relative path
hf = os.path.join("..", "hf")
cases = {
    "llama-lora": (os.path.join(hf, "arch", "llama-tiny"), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"], task_type="CAUSAL_LM")),
    "llama-lora-qv": (os.path.join(hf, "arch", "llama-tiny"), LoraConfig(r=2, lora_alpha=16, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")),
    "gpt2-lora": (os.path.join(hf, "tiny-gpt2"), LoraConfig(r=3, lora_alpha=6, target_modules=["c_attn", "c_proj", "c_fc"], fan_in_fan_out=True, task_type="CAUSAL_LM")),
}
tokens = [[5, 17, 99, 3, 250, 41, 7, 12], [1, 2, 3, 4, 5, 6, 7, 8]]
ref = {}
for name, (base_dir, cfg) in cases.items():
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    model = get_peft_model(base, cfg)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_" in n:
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    out = name
    model.save_pretrained(out)
    os.remove(os.path.join(out, "README.md"))  # a model card stub
    # Load as a user would: the base, then the adapter folder.
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    loaded = PeftModel.from_pretrained(base, out).eval()
    with torch.no_grad():
        logits = loaded(torch.tensor(tokens)).logits
    ref[name] = {"tokens": tokens, "logits": [[[round(float(x), 6) for x in row] for row in seq] for seq in logits]}
    print(name, list(logits.shape))
with open(os.path.join(here, "peft_reference.json"), "w") as f:
    json.dump(ref, f)
    f.write("\n")
