#!/usr/bin/env python3
"""Build tiny random Llama / Qwen2 / Llama-reward checkpoints and reference
outputs computed by Hugging Face transformers, for architecture parity tests.

Everything is seeded (torch.manual_seed / torch.Generator), so rerunning with
the same library versions rewrites byte-identical weight files and the same
reference numbers.

Run (CPU is enough):

    python3 -m venv /tmp/archfix/venv
    /tmp/archfix/venv/bin/pip install torch transformers safetensors tokenizers numpy jinja2
    /tmp/archfix/venv/bin/python make_arch_fixtures.py [OUT_DIR]

OUT_DIR defaults to this script's folder. It writes:

  llama-tiny/         LlamaForCausalLM, bf16, sharded (model-0000k-of-0000n.safetensors
                      + model.safetensors.index.json), config.json,
                      generation_config.json (eos [604, 605]), tokenizer.json
                      (copied from ../llama3-style/tokenizer.json)
  qwen2-tiny/         Qwen2ForCausalLM, bf16, tied embeddings, random q/k/v biases,
                      sharded, config.json, generation_config.json (eos 605),
                      tokenizer.json (copied from ../qwen2-style/tokenizer.json)
  llama-tiny-reward/  LlamaForSequenceClassification (num_labels=1, pad_token_id=0)
                      with the llama-tiny trunk (bf16 values) + random score head,
                      float32, single model.safetensors, tokenizer.json
  arch_reference.json reference outputs of the models loaded back from those
                      folders in float32, eval mode, attn_implementation="eager".

All reference computation is done in float32 on the bf16-rounded weights.
"""
import hashlib
import json
import os
import platform
import shutil
import sys

import numpy
import safetensors
import tokenizers
import torch
import transformers
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    GenerationConfig,
    LlamaConfig,
    LlamaForCausalLM,
    LlamaForSequenceClassification,
    Qwen2Config,
    Qwen2ForCausalLM,
)

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else HERE)
HF_FIXTURES = os.path.dirname(HERE)  # .../Fixtures/hf
LLAMA_TOKENIZER = os.path.join(HF_FIXTURES, "llama3-style", "tokenizer.json")
QWEN_TOKENIZER = os.path.join(HF_FIXTURES, "qwen2-style", "tokenizer.json")

torch.use_deterministic_algorithms(True)
torch.set_num_threads(1)

LLAMA_KW = dict(
    vocab_size=608,
    hidden_size=64,
    intermediate_size=96,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=128,
    rms_norm_eps=1e-5,
    rope_theta=500000.0,
    rope_scaling={
        "rope_type": "llama3",
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 16,
    },
    tie_word_embeddings=False,
    attention_bias=False,
    mlp_bias=False,
    hidden_act="silu",
    bos_token_id=603,
    eos_token_id=[604, 605],
    pad_token_id=None,
    initializer_range=0.1,
)

QWEN_KW = dict(
    vocab_size=606,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=128,
    rms_norm_eps=1e-6,
    rope_theta=1000000.0,
    tie_word_embeddings=True,
    use_sliding_window=False,
    initializer_range=0.1,
    eos_token_id=605,
    bos_token_id=None,
)

# Weight init (all seeded): RMSNorm weights 1 + 0.1*N(0,1); embeddings and
# lm_head N(0, 0.3^2) so logits are far from uniform; other matrices N(0, s^2)
# with s = 0.1 for llama-tiny and 0.3 for qwen2-tiny (with tied embeddings and
# s = 0.1 the token's own embedding dominates the final hidden state and greedy
# decoding just repeats the last token); biases N(0, 0.3^2).
NORM_STD, EMBED_STD, BIAS_STD, SCORE_STD = 0.1, 0.3, 0.3, 0.1
LLAMA_MATRIX_STD, QWEN_MATRIX_STD = 0.1, 0.3

CASE_LENGTHS = [1, 5, 17, 40]
PADDED_LENGTHS = [6, 11]
PAD_ID = 0
GREEDY_PROMPT_LENGTHS = [3, 8, 12]
MAX_NEW_TOKENS = 12
ID_HIGH = 600  # random ids are drawn from [0, 600)


def init_weights(model, seed, matrix_std):
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():  # tied params are listed once
            if name.endswith("norm.weight"):
                p.copy_(1.0 + NORM_STD * torch.randn(p.shape))
            elif "embed_tokens" in name or "lm_head" in name:
                p.normal_(0.0, EMBED_STD)
            elif name.endswith(".bias"):
                p.normal_(0.0, BIAS_STD)
            elif name == "score.weight":
                p.normal_(0.0, SCORE_STD)
            else:
                p.normal_(0.0, matrix_std)


def floats(t):
    """Tensor -> list of Python floats (the exact float32 values)."""
    return [float(x) for x in t.detach().to(torch.float32).reshape(-1).tolist()]


def ints(t):
    return [int(x) for x in t.reshape(-1).tolist()]


def rand_ids(gen, n, low=0, high=ID_HIGH):
    return torch.randint(low, high, (n,), generator=gen)


def load_causal(path):
    m = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="eager")
    return m.eval()


def load_reward(path):
    m = AutoModelForSequenceClassification.from_pretrained(path, dtype=torch.float32, attn_implementation="eager")
    return m.eval()


def save_causal(model, path, tokenizer_src, gen_cfg, shard):
    if os.path.isdir(path):
        shutil.rmtree(path)
    model.to(torch.bfloat16)
    model.save_pretrained(path, max_shard_size=shard)
    gen_cfg.save_pretrained(path)  # overwrite whatever save_pretrained derived
    shutil.copy(tokenizer_src, os.path.join(path, "tokenizer.json"))
    shards = sorted(f for f in os.listdir(path) if f.endswith(".safetensors"))
    assert os.path.exists(os.path.join(path, "model.safetensors.index.json")), shards
    assert 2 <= len(shards) <= 4, shards
    return shards


def check_weights_match(saved_bf16_model, reloaded):
    """Reloaded float32 weights must be exactly the bf16 values."""
    a = saved_bf16_model.state_dict()
    b = reloaded.state_dict()
    assert set(a) == set(b), (set(a) ^ set(b))
    for k in a:
        assert b[k].dtype == torch.float32, (k, b[k].dtype)
        assert torch.equal(a[k].float(), b[k]), k


@torch.no_grad()
def manual_greedy(model, ids, n, eos=None):
    """No-cache argmax loop, the plain definition of greedy decoding.
    Returns (new ids, smallest top1-top2 logit margin over the steps)."""
    seq = ids.clone()
    out = []
    margin = float("inf")
    for _ in range(n):
        logits = model(input_ids=seq[None]).logits[0, -1]
        top2 = torch.topk(logits, 2).values
        margin = min(margin, float(top2[0] - top2[1]))
        nxt = int(torch.argmax(logits))
        out.append(nxt)
        seq = torch.cat([seq, torch.tensor([nxt])])
        if eos is not None and nxt in eos:
            break
    return out, margin


@torch.no_grad()
def reference_for(model, gen, eos_list, name):
    ref = {}
    # --- single-sequence cases
    cases = []
    for L in CASE_LENGTHS:
        ids = rand_ids(gen, L)
        logits = model(input_ids=ids[None]).logits[0]  # [L, V] float32
        logp = torch.log_softmax(logits, dim=-1)
        tok_lp = [float(logp[t, ids[t + 1]]) for t in range(L - 1)]
        cases.append({
            "ids": ints(ids),
            "token_logprobs": tok_lp,
            "last_logits": floats(logits[-1]),
            "last_argmax": int(torch.argmax(logits[-1])),
            "logits_sum_abs": float(logits.double().abs().sum()),
        })
    ref["cases"] = cases

    # --- left-padded batch (row contents drawn from [1, 600) so no pad id inside)
    rows = [rand_ids(gen, L, low=1) for L in PADDED_LENGTHS]
    T = max(PADDED_LENGTHS)
    input_ids = torch.full((len(rows), T), PAD_ID, dtype=torch.long)
    mask = torch.zeros((len(rows), T), dtype=torch.long)
    for i, r in enumerate(rows):
        input_ids[i, T - len(r):] = r
        mask[i, T - len(r):] = 1
    pos = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)  # == transformers generate()
    logits = model(input_ids=input_ids, attention_mask=mask, position_ids=pos).logits
    unpadded_diff = 0.0
    for i, r in enumerate(rows):
        alone = model(input_ids=r[None]).logits[0, -1]
        unpadded_diff = max(unpadded_diff, float((alone - logits[i, -1]).abs().max()))
    assert unpadded_diff < 1e-4, unpadded_diff
    ref["padded_batch"] = {
        "pad_id": PAD_ID,
        "padding_side": "left",
        "lengths": PADDED_LENGTHS,
        "ids": [ints(x) for x in input_ids],
        "attention_mask": [ints(x) for x in mask],
        "position_ids": [ints(x) for x in pos],
        "last_logits": [floats(logits[i, -1]) for i in range(len(rows))],
        "max_abs_diff_vs_unpadded": unpadded_diff,
    }

    # --- greedy generation
    gen_kwargs = dict(max_new_tokens=MAX_NEW_TOKENS, do_sample=False, eos_token_id=None, pad_token_id=PAD_ID)
    greedy = []
    prompts = [rand_ids(gen, L) for L in GREEDY_PROMPT_LENGTHS]
    for p in prompts:
        out = model.generate(p[None], attention_mask=torch.ones_like(p[None]), **gen_kwargs)
        new = ints(out[0, len(p):])
        assert len(new) == MAX_NEW_TOKENS, new
        manual, margin = manual_greedy(model, p, MAX_NEW_TOKENS)
        assert new == manual, (name, new)
        greedy.append({"ids": ints(p), "new_ids": new, "min_top2_margin": margin})

    # greedy with the real eos list: the 3 prompts above, plus the first prompt
    # (seeded search over random prompts of length 4) whose greedy run stops on eos.
    eos_kwargs = dict(max_new_tokens=MAX_NEW_TOKENS, do_sample=False, eos_token_id=eos_list, pad_token_id=PAD_ID)

    def eos_run(p):
        out = model.generate(p[None], attention_mask=torch.ones_like(p[None]), **eos_kwargs)
        new = ints(out[0, len(p):])
        manual, margin = manual_greedy(model, p, MAX_NEW_TOKENS, eos=eos_list)
        assert new == manual, (name, new)
        stop = next((i for i, t in enumerate(new) if t in eos_list), None)
        return {"ids": ints(p), "new_ids": new, "stopped": stop is not None,
                "stop_index": stop, "stop_token": None if stop is None else new[stop], "min_top2_margin": margin}

    with_eos = [eos_run(p) for p in prompts]
    search_gen = torch.Generator().manual_seed(4242)
    found = None
    for attempt in range(2000):
        p = rand_ids(search_gen, 4)
        got, _ = manual_greedy(model, p, MAX_NEW_TOKENS, eos=eos_list)
        if got[-1] in eos_list and len(got) < MAX_NEW_TOKENS:
            found = eos_run(p)
            found["search"] = {"seed": 4242, "prompt_length": 4, "attempt": attempt}
            break
    assert found is not None, f"{name}: no greedy run stopped on eos"
    # the same prompt with eos_token_id=None runs on through the eos token: this is
    # what shows that eos_token_id=None really disables the generation_config eos.
    p = torch.tensor(found["ids"])
    out = model.generate(p[None], attention_mask=torch.ones_like(p[None]), **gen_kwargs)
    new = ints(out[0, len(p):])
    assert len(new) == MAX_NEW_TOKENS and new[: found["stop_index"] + 1] == found["new_ids"], new
    assert new == manual_greedy(model, p, MAX_NEW_TOKENS)[0]
    found["new_ids_without_eos"] = new
    ref["greedy"] = {
        "generate_kwargs": {**gen_kwargs, "attention_mask": "ones"},
        "note": "eos_token_id=None passed explicitly to generate() overrides the model's "
                "generation_config eos (see with_eos.stopping_run.new_ids_without_eos, which runs "
                "on through the eos token); every run is checked against a no-cache argmax loop. "
                "new_ids are the generated ids only; min_top2_margin is the smallest "
                "top1-top2 logit gap over the greedy steps.",
        "runs": greedy,
        "with_eos": {
            "generate_kwargs": {**eos_kwargs, "attention_mask": "ones"},
            "runs": with_eos,
            "stopping_run": found,
        },
    }
    rotary = model.model.rotary_emb
    ref["inv_freq"] = floats(rotary.inv_freq)
    ref["rope_attention_scaling"] = float(rotary.attention_scaling)
    return ref


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def dump_json(obj, path):
    """Indented JSON, but lists of scalars on one line (keeps the file small)."""
    def enc(o, ind):
        pad = " " * ind
        if isinstance(o, dict):
            if not o:
                return "{}"
            items = [f'{pad}  {json.dumps(k)}: {enc(v, ind + 2)}' for k, v in o.items()]
            return "{\n" + ",\n".join(items) + f"\n{pad}}}"
        if isinstance(o, list) and any(isinstance(x, (dict, list)) for x in o):
            items = [f"{pad}  {enc(v, ind + 2)}" for v in o]
            return "[\n" + ",\n".join(items) + f"\n{pad}]"
        return json.dumps(o, separators=(",", ":"))
    with open(path, "w") as f:
        f.write(enc(obj, 0) + "\n")


def compare_ref(a, b, path="", tol=1e-5):
    """Recursive compare: ints/str exact, floats within tol."""
    if isinstance(a, dict):
        assert set(a) == set(b), (path, set(a) ^ set(b))
        for k in a:
            compare_ref(a[k], b[k], f"{path}.{k}", tol)
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            compare_ref(x, y, f"{path}[{i}]", tol)
    elif isinstance(a, float) and isinstance(b, float):
        assert abs(a - b) <= tol * max(1.0, abs(a)), (path, a, b)
    else:
        assert a == b, (path, a, b)


def main():
    os.makedirs(OUT, exist_ok=True)
    llama_dir = os.path.join(OUT, "llama-tiny")
    qwen_dir = os.path.join(OUT, "qwen2-tiny")
    reward_dir = os.path.join(OUT, "llama-tiny-reward")

    # ---------------- llama-tiny
    llama_cfg = LlamaConfig(**LLAMA_KW)
    llama = LlamaForCausalLM(llama_cfg)
    init_weights(llama, seed=1001, matrix_std=LLAMA_MATRIX_STD)
    llama_shards = save_causal(
        llama, llama_dir, LLAMA_TOKENIZER,
        GenerationConfig(bos_token_id=603, eos_token_id=[604, 605]), shard="100KB")

    # ---------------- qwen2-tiny
    qwen_cfg = Qwen2Config(**QWEN_KW)
    qwen = Qwen2ForCausalLM(qwen_cfg)
    init_weights(qwen, seed=2002, matrix_std=QWEN_MATRIX_STD)
    assert qwen.lm_head.weight.data_ptr() == qwen.model.embed_tokens.weight.data_ptr()
    for n in ("q_proj", "k_proj", "v_proj"):
        assert getattr(qwen.model.layers[0].self_attn, n).bias.abs().sum() > 0
    qwen_shards = save_causal(
        qwen, qwen_dir, QWEN_TOKENIZER,
        GenerationConfig(eos_token_id=605), shard="100KB")

    # ---------------- reload + reference outputs
    llama_f32 = load_causal(llama_dir)
    qwen_f32 = load_causal(qwen_dir)
    check_weights_match(llama, llama_f32)
    check_weights_match(qwen, qwen_f32)
    assert qwen_f32.lm_head.weight.data_ptr() == qwen_f32.model.embed_tokens.weight.data_ptr()

    ref = {"models": {}}
    ref["models"]["llama-tiny"] = reference_for(llama_f32, torch.Generator().manual_seed(11), [604, 605], "llama")
    ref["models"]["qwen2-tiny"] = reference_for(qwen_f32, torch.Generator().manual_seed(22), [605], "qwen2")
    ref["models"]["llama-tiny"]["shards"] = llama_shards
    ref["models"]["qwen2-tiny"]["shards"] = qwen_shards

    # ---------------- llama-tiny-reward (same trunk, float32)
    reward_cfg = LlamaConfig(**{**LLAMA_KW, "pad_token_id": PAD_ID}, num_labels=1)
    reward = LlamaForSequenceClassification(reward_cfg)
    reward.model.load_state_dict(llama_f32.model.state_dict())
    torch.manual_seed(3003)
    with torch.no_grad():
        reward.score.weight.normal_(0.0, SCORE_STD)
    if os.path.isdir(reward_dir):
        shutil.rmtree(reward_dir)
    reward.to(torch.float32).save_pretrained(reward_dir)
    shutil.copy(LLAMA_TOKENIZER, os.path.join(reward_dir, "tokenizer.json"))
    assert os.path.exists(os.path.join(reward_dir, "model.safetensors"))
    assert not os.path.exists(os.path.join(reward_dir, "model.safetensors.index.json"))

    reward_f32 = load_reward(reward_dir)
    for k, v in llama_f32.model.state_dict().items():
        assert torch.equal(reward_f32.model.state_dict()[k], v), k
    with torch.no_grad():
        rewards = []
        for c in ref["models"]["llama-tiny"]["cases"]:
            ids = torch.tensor(c["ids"])[None]
            assert ids[0, -1] != PAD_ID  # HF pools at the last non-pad token
            pooled = reward_f32(input_ids=ids).logits[0, 0]
            h = reward_f32.model(input_ids=ids).last_hidden_state
            manual = reward_f32.score(h)[0, -1, 0]
            assert abs(float(pooled) - float(manual)) < 1e-6
            rewards.append(float(pooled))
        pb = ref["models"]["llama-tiny"]["padded_batch"]
        out = reward_f32(input_ids=torch.tensor(pb["ids"]), attention_mask=torch.tensor(pb["attention_mask"]),
                         position_ids=torch.tensor(pb["position_ids"]))
        padded_rewards = floats(out.logits[:, 0])
    ref["models"]["llama-tiny-reward"] = {
        "cases_from": "llama-tiny.cases (same ids)",
        "rewards": rewards,
        "padded_batch_from": "llama-tiny.padded_batch (same ids / attention_mask / position_ids)",
        "padded_batch_rewards": padded_rewards,
        "note": "score at the last position; HF pools at the last token != pad_token_id (0), "
                "which is the last position for every case here (no case ends in 0).",
    }

    ref["init"] = {
        "norm_weight": f"1 + {NORM_STD}*N(0,1)", "embed_and_lm_head_std": EMBED_STD,
        "matrix_std": {"llama-tiny": LLAMA_MATRIX_STD, "qwen2-tiny": QWEN_MATRIX_STD}, "bias_std": BIAS_STD, "score_std": SCORE_STD,
        "seeds": {"llama-tiny": 1001, "qwen2-tiny": 2002, "llama-tiny-reward.score": 3003,
                  "ids.llama-tiny": 11, "ids.qwen2-tiny": 22, "eos_search": 4242},
    }
    ref["computation"] = ("weights stored in bf16 (reward: float32), loaded with dtype=torch.float32, "
                          "eval(), attn_implementation='eager', CPU; logits/log-softmax in float32")
    ref["versions"] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "safetensors": safetensors.__version__,
        "tokenizers": tokenizers.__version__,
        "numpy": numpy.__version__,
    }
    ref["files_sha256"] = {}
    for d in (llama_dir, qwen_dir, reward_dir):
        for f in sorted(os.listdir(d)):
            if f.endswith(".safetensors"):
                ref["files_sha256"][f"{os.path.basename(d)}/{f}"] = sha256(os.path.join(d, f))

    ref_path = os.path.join(OUT, "arch_reference.json")
    dump_json(ref, ref_path)

    # ---------------- sanity: fresh reload reproduces the recorded numbers
    with open(ref_path) as f:
        saved = json.load(f)
    again = {"llama-tiny": load_causal(llama_dir), "qwen2-tiny": load_causal(qwen_dir)}
    with torch.no_grad():
        for name, m in again.items():
            r = saved["models"][name]
            for c in r["cases"]:
                logits = m(input_ids=torch.tensor(c["ids"])[None]).logits[0]
                compare_ref(c["last_logits"], floats(logits[-1]), f"{name}.last_logits")
                compare_ref(c["logits_sum_abs"], float(logits.double().abs().sum()), f"{name}.sum_abs")
                lp = torch.log_softmax(logits, -1)
                compare_ref(c["token_logprobs"], [float(lp[t, c["ids"][t + 1]]) for t in range(len(c["ids"]) - 1)])
            pb = r["padded_batch"]
            lg = m(input_ids=torch.tensor(pb["ids"]), attention_mask=torch.tensor(pb["attention_mask"]),
                   position_ids=torch.tensor(pb["position_ids"])).logits
            compare_ref(pb["last_logits"], [floats(lg[i, -1]) for i in range(lg.shape[0])], f"{name}.padded")
        rw = load_reward(reward_dir)
        got = [float(rw(input_ids=torch.tensor(c["ids"])[None]).logits[0, 0])
               for c in saved["models"]["llama-tiny"]["cases"]]
        compare_ref(saved["models"]["llama-tiny-reward"]["rewards"], got, "rewards")
    print("sanity: reloaded folders reproduce arch_reference.json")

    # ---------------- summary
    total = 0
    for root in (llama_dir, qwen_dir, reward_dir):
        for f in sorted(os.listdir(root)):
            p = os.path.join(root, f)
            total += os.path.getsize(p)
            print(f"{os.path.getsize(p):>9}  {os.path.relpath(p, OUT)}")
    total += os.path.getsize(ref_path)
    print(f"{os.path.getsize(ref_path):>9}  arch_reference.json")
    print(f"{total:>9}  total (without scripts)")
    for name in ("llama-tiny", "qwen2-tiny"):
        r = saved["models"][name]
        lp = torch.log_softmax(torch.tensor(r["cases"][-1]["last_logits"]), -1)
        ent = float(-(lp.exp() * lp).sum())
        print(f"{name}: last-logit entropy {ent:.3f} nats (uniform {float(torch.log(torch.tensor(float(lp.numel())))):.3f}),"
              f" eos stop run: {r['greedy']['with_eos']['stopping_run'] and r['greedy']['with_eos']['stopping_run']['new_ids']}")


if __name__ == "__main__":
    main()
