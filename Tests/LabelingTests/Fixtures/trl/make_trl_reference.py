"""What TRL, transformers and OpenRLHF make of the files rlhf exports.

For each case folder (written by TRLExportTests with RLHF_UPDATE_FIXTURES=1: the tokenizer and
chat template `rlhf export` writes, `labels export --format trl` and `trl-conversational`, and
`prompts export`), this runs the reference tools' own data preparation and records the token ids
in trl_reference.json:

- transformers' apply_chat_template of one user turn with the exported chat template;
- TRL's RewardTrainer and DPOTrainer (standard and conversational files), read off the
  trainers' prepared datasets, and the `tokenizer(text=prompt)` TRL's GRPOTrainer applies;
- OpenRLHF's RewardDataset (`--data.prompt_key prompt`, on the standard file without the chat
  template and on the conversational file with `--data.apply_chat_template`) and its prompt
  dataset's preprocess_data, for `input` without a chat template and for `chat` with one.

Run once in a scratch environment, never by the tests (tested with transformers 5.24, trl 1.16,
openrlhf 0.11.2 from its wheel, unpacked, without its dependencies):

    python -m venv /tmp/v && /tmp/v/bin/pip install torch transformers trl datasets accelerate
    pip download openrlhf==0.11.2 --no-deps && unzip openrlhf-*.whl -d /tmp/orlhf
    /tmp/v/bin/python make_trl_reference.py /tmp/orlhf/openrlhf-0.11.2.data/purelib
"""
import json
import os
import sys
import tempfile
import types
import warnings

here = os.path.dirname(os.path.abspath(__file__))
warnings.filterwarnings("ignore")

# OpenRLHF's dataset modules, without the package's __init__ (which pulls in its training stack).
root = os.path.join(sys.argv[1], "openrlhf")
for name, path in [("openrlhf", root), ("openrlhf.datasets", root + "/datasets"), ("openrlhf.utils", root + "/utils")]:
    m = types.ModuleType(name)
    m.__path__ = [path]
    sys.modules[name] = m
from openrlhf.datasets.reward_dataset import RewardDataset  # noqa: E402
from openrlhf.datasets import prompts_dataset  # noqa: E402

import torch  # noqa: E402
from datasets import load_dataset  # noqa: E402
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification  # noqa: E402
from trl import DPOConfig, DPOTrainer, RewardConfig, RewardTrainer  # noqa: E402


def tiny(tok, cls):
    """A one-layer model of the tokenizer's size: the trainers need one; only the data matters."""
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                      num_key_value_heads=1, max_position_embeddings=256, num_labels=1,
                      pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)
    return cls(cfg)


def ids(x):
    return x["input_ids"] if isinstance(x, dict) or hasattr(x, "keys") else x


def reward_ids(folder, tok, data_file):
    ds = load_dataset("json", data_files=data_file, split="train")
    with tempfile.TemporaryDirectory() as out:
        args = RewardConfig(output_dir=out, report_to="none", use_cpu=True, max_length=None, dataset_num_proc=None)
        tr = RewardTrainer(model=tiny(tok, LlamaForSequenceClassification), args=args, processing_class=tok, train_dataset=ds)
        d = tr.train_dataset
        return [list(x) for x in d["chosen_ids"]], [list(x) for x in d["rejected_ids"]]


def dpo_ids(folder, tok, data_file):
    ds = load_dataset("json", data_files=data_file, split="train")
    with tempfile.TemporaryDirectory() as out:
        args = DPOConfig(output_dir=out, report_to="none", use_cpu=True, max_length=None, dataset_num_proc=None)
        tr = DPOTrainer(model=tiny(tok, LlamaForCausalLM), ref_model=tiny(tok, LlamaForCausalLM), args=args, processing_class=tok, train_dataset=ds)
        d = tr.train_dataset
        return [list(x) for x in d["prompt_ids"]], [list(x) for x in d["chosen_ids"]]


class Strategy:
    """The slice of OpenRLHF's strategy RewardDataset reads: its data arguments."""
    def __init__(self, **kw):
        self.args = types.SimpleNamespace(data=types.SimpleNamespace(**kw))


def main():
    ref = {}
    for case in sorted(os.listdir(here)):
        folder = os.path.join(here, case)
        if not os.path.isdir(folder):
            continue
        tok = AutoTokenizer.from_pretrained(folder)
        r = {"eos_token_id": tok.eos_token_id}
        prompts = [json.loads(l) for l in open(os.path.join(folder, "prompts.jsonl"))]
        r["chat_template_prompt_ids"] = [list(ids(tok.apply_chat_template([{"role": "user", "content": p["rlhf"]["prompt"]}],
                                                                          add_generation_prompt=True, tokenize=True))) for p in prompts]
        # TRL's GRPOTrainer on a standard prompt: processing_class(text=prompts).
        r["trl_prompt_ids"] = [tok(text=p["prompt"])["input_ids"] for p in prompts]
        # OpenRLHF's PPO prompts: preprocess_data, then the tokenizer without special tokens.
        r["openrlhf_input_ids"] = [tok(prompts_dataset.preprocess_data(p, input_key="input")[0], add_special_tokens=False)["input_ids"] for p in prompts]
        r["openrlhf_chat_prompt_ids"] = [
            tok(prompts_dataset.preprocess_data(p, input_key="chat", apply_chat_template=tok.apply_chat_template)[0], add_special_tokens=False)["input_ids"]
            for p in prompts]

        std = os.path.join(folder, "labels-trl.jsonl")
        conv = os.path.join(folder, "labels-trl-conversational.jsonl")
        r["trl_reward_chosen_ids"], r["trl_reward_rejected_ids"] = reward_ids(folder, tok, std)
        r["trl_dpo_prompt_ids"], r["trl_dpo_chosen_ids"] = dpo_ids(folder, tok, std)
        r["trl_conv_reward_chosen_ids"], _ = reward_ids(folder, tok, conv)
        r["trl_conv_dpo_prompt_ids"], _ = dpo_ids(folder, tok, conv)

        ds = load_dataset("json", data_files=std, split="train")
        rd = RewardDataset(ds, tok, 512, Strategy(prompt_key="prompt", chosen_key="chosen", rejected_key="rejected", apply_chat_template=False),
                           num_processors=1)
        r["openrlhf_reward_chosen_ids"] = [rd[i][0][0].tolist() for i in range(len(rd))]
        ds = load_dataset("json", data_files=conv, split="train")
        rd = RewardDataset(ds, tok, 512, Strategy(prompt_key="prompt", chosen_key="chosen", rejected_key="rejected", apply_chat_template=True),
                           num_processors=1)
        r["openrlhf_conv_reward_chosen_ids"] = [rd[i][0][0].tolist() for i in range(len(rd))]
        ref[case] = r
        print(case, len(r["trl_reward_chosen_ids"]), "pairs")
    with open(os.path.join(here, "trl_reference.json"), "w") as f:
        # One line per case and list, so a diff shows what changed.
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
