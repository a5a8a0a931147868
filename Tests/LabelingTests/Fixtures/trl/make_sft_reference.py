"""What TRL's SFTTrainer makes of the demonstration files rlhf exports.

For each case folder (written by DemonstrationsIOTests with RLHF_UPDATE_FIXTURES=1: the tokenizer
and chat template `rlhf export` writes, and `labels export --format sft` and `sft-conversational`
of a run with one written answer per prompt), this runs SFTTrainer's own data preparation and
records, in sft_reference.json, the input ids and the completion mask (where the labels are not
-100) of each prompt-completion line, and the input ids of each conversational line.

Run once in a scratch environment, never by the tests (tested with transformers 5.25, trl 1.16):

    python -m venv /tmp/v && /tmp/v/bin/pip install torch transformers trl datasets accelerate
    /tmp/v/bin/python make_sft_reference.py
"""
import json
import os
import tempfile
import warnings

import torch
from datasets import load_dataset
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM
from trl import SFTConfig, SFTTrainer

here = os.path.dirname(os.path.abspath(__file__))
warnings.filterwarnings("ignore")


def tiny(tok):
    """A one-layer model of the tokenizer's size: the trainer needs one; only the data matters."""
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                      num_key_value_heads=1, max_position_embeddings=256,
                      pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)
    return LlamaForCausalLM(cfg)


def prepared(tok, data_file):
    ds = load_dataset("json", data_files=data_file, split="train").remove_columns(["rlhf"])
    with tempfile.TemporaryDirectory() as out:
        args = SFTConfig(output_dir=out, report_to="none", use_cpu=True, max_length=None, dataset_num_proc=None)
        return SFTTrainer(model=tiny(tok), args=args, processing_class=tok, train_dataset=ds).train_dataset


def main():
    ref = {}
    for case in sorted(os.listdir(here)):
        folder = os.path.join(here, case)
        if not os.path.isfile(os.path.join(folder, "demonstrations-sft.jsonl")):
            continue
        tok = AutoTokenizer.from_pretrained(folder)
        d = prepared(tok, os.path.join(folder, "demonstrations-sft.jsonl"))
        c = prepared(tok, os.path.join(folder, "demonstrations-sft-conversational.jsonl"))
        ref[case] = {
            "sft_input_ids": [list(x) for x in d["input_ids"]],
            # TRL 1.16 writes the completion mask into the labels: -100 where there is no loss.
            "sft_completion_mask": [[int(v != -100) for v in x] for x in d["labels"]],
            "sft_conversational_input_ids": [list(x) for x in c["input_ids"]],
        }
        print(case, len(d), "demonstrations")
    with open(os.path.join(here, "sft_reference.json"), "w") as f:
        f.write("{\n")
        for i, case in enumerate(sorted(ref)):
            f.write(f' "{case}": {{\n')
            keys = sorted(ref[case])
            for j, k in enumerate(keys):
                f.write(f'  "{k}": {json.dumps(ref[case][k], separators=(",", ":"))}{"," if j + 1 < len(keys) else ""}\n')
            f.write(" }" + ("," if i + 1 < len(ref) else "") + "\n")
        f.write("}\n")


if __name__ == "__main__":
    main()
