"""Golden fixtures for the tokenizer, safetensors and Hugging Face folder tests.

Run with a Python that has `tokenizers`, `transformers`, `torch`, `safetensors` and `regex`
installed (from PyPI; they are needed only here, never by the project or its tests):

    python make_hf_fixtures.py            # writes the fixtures next to this file
    python make_hf_fixtures.py --check-export DIR   # checks a folder the Swift side exported

Everything is seeded, so rerunning gives the same files. The reference for every expected value
is Hugging Face's own code: `tokenizers` (the Rust BPE) and the slow `GPT2Tokenizer` (OpenAI's
original algorithm with the `regex` module) must agree on every text before it is written.
"""
import hashlib, json, os, random, sys
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))

TEXTS = [
    "Hello world",
    "Hello, world! How's it going? I'm fine, you'll see; we'd've said 'no'.",
    "  leading spaces and trailing spaces   ",
    "tabs\tand\nnewlines\n\n\nand\r\nCRLF",
    "numbers 12345 and 3.14159 and 1,000,000",
    "emoji 😀👍🏽 and flags 🇩🇪 and ZWJ 👩‍👩‍👧",
    "CJK 日本語のテキスト 中文 한국어",
    "combining marks: e\u0301 a\u0308 n\u0303 and precomposed é ä ñ",
    "long     whitespace          runs" + " " * 40 + "end",
    "\u00a0non-breaking\u2003em space\u3000ideographic",
    "<|endoftext|>special in the middle<|endoftext|>",
    "apostrophes: don't DON'T 'quoted' ''double'' rock'n'roll",
    "symbols ~!@#$%^&*()_+{}|:\"<>?`-=[]\\;',./",
    "mixed123abc 456def ghi789",
    "Ünïcödé Ελληνικά русский עברית العربية",
    "",
    " ",
    "\n",
    "a",
    "Q: Can you help me write a kind reply?\nA: Of course! Here is a gentle answer.",
    "control chars \x01\x02\x1b[31mred\x1b[0m bell\x07",
    "x" * 300,
]

CORPUS_SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Q: What is the capital of France?\nA: Paris is the capital of France.",
    "I'm sure you'll like it; we've tried it and they'd agree.",
    "Numbers like 42, 1999 and 3.14 appear in text.",
    "Thank you so much for your kind help!",
    "That is a rude and unhelpful answer.",
    "日本語 and 中文 and emoji 😀 appear sometimes.",
    "Spaces    and\ttabs\nand newlines.",
]


def corpus_text():
    rng = random.Random(1234)
    syllables = ["ka", "ro", "mi", "te", "lu", "sa", "on", "er", "th", "ing", "qu", "ex", "ba", "ne", "ä", "ö", "ß", "é"]
    lines = []
    for _ in range(3000):
        s = rng.choice(CORPUS_SENTENCES)
        words = s.split(" ")
        rng.shuffle(words)
        for _ in range(rng.randint(0, 4)):
            w = "".join(rng.choice(syllables) for _ in range(rng.randint(1, 4)))
            words.insert(rng.randint(0, len(words)), w.capitalize() if rng.random() < 0.2 else w)
        lines.append(" ".join(words))
    return "\n".join(lines) + "\n"


def train_tokenizer(folder):
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers, processors
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=700, special_tokens=["<|endoftext|>", "<|pad|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus_text().split("\n"), trainer=trainer)
    os.makedirs(folder, exist_ok=True)
    tok.save(os.path.join(folder, "tokenizer.json"))
    tok.model.save(folder)  # vocab.json + merges.txt
    return tok


def encode_both(folder):
    from transformers import GPT2Tokenizer, GPT2TokenizerFast
    slow = GPT2Tokenizer(os.path.join(folder, "vocab.json"), os.path.join(folder, "merges.txt"),
                         unk_token="<|endoftext|>", bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                         pad_token="<|pad|>")
    fast = GPT2TokenizerFast(tokenizer_file=os.path.join(folder, "tokenizer.json"),
                             unk_token="<|endoftext|>", bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                             pad_token="<|pad|>")
    out = []
    for t in TEXTS:
        a = fast(t, add_special_tokens=False)["input_ids"]
        b = slow(t, add_special_tokens=False)["input_ids"]
        assert a == b, f"fast and slow GPT-2 tokenizers disagree on {t!r}: {a} vs {b}"
        out.append({"text": t, "ids": a, "decoded": fast.decode(a, clean_up_tokenization_spaces=False)})
    return fast, out


def tiny_model(folder, vocab_size):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel
    torch.manual_seed(7)
    cfg = GPT2Config(n_layer=2, n_head=2, n_embd=32, n_positions=64, vocab_size=vocab_size,
                     bos_token_id=0, eos_token_id=0, resid_pdrop=0, embd_pdrop=0, attn_pdrop=0)
    model = GPT2LMHeadModel(cfg).eval()
    # Larger weights than the default init, so logits spread out and greedy choices are clear.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                p.normal_(0, 0.15)
            elif "ln" in name and name.endswith("weight"):
                p.uniform_(0.7, 1.3)
            else:
                p.normal_(0, 0.05)
    model.save_pretrained(folder, safe_serialization=True)
    return model


def logits_fixture(model, fast):
    import torch
    seqs = [fast(t, add_special_tokens=False)["input_ids"][:40] for t in TEXTS[:6] + TEXTS[19:20]]
    seqs = [s for s in seqs if s]
    out = []
    for s in seqs:
        with torch.no_grad():
            lg = model(torch.tensor([s])).logits[0].numpy().astype(np.float64)
        out.append({"ids": s, "logits": lg.round(7).tolist()})
    return out


def greedy_fixture(model, fast, eos):
    import torch
    candidates = ["Hello world", "Q: What is the capital", "Thank you so", "日本語", "The quick brown",
                  "Numbers like", "I'm sure", "That is a", "Spaces", "emoji 😀"]
    out = []
    for p in candidates:
        if len(out) == 4:
            break
        ids = fast(p, add_special_tokens=False)["input_ids"]
        # Greedy decoding step by step, checking that no choice is a near tie (so float32 rounding
        # differences between implementations cannot flip it).
        seq = list(ids)
        margin = float("inf")
        for _ in range(20):
            with torch.no_grad():
                lg = model(torch.tensor([seq])).logits[0, -1].double()
            top2 = torch.topk(lg, 2).values
            margin = min(margin, float(top2[0] - top2[1]))
            nxt = int(torch.argmax(lg))
            seq.append(nxt)
            if nxt == eos:
                break
        with torch.no_grad():
            gen = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                 do_sample=False, max_new_tokens=20, eos_token_id=eos, pad_token_id=eos)[0].tolist()
        assert gen == seq[: len(gen)], (gen, seq)
        if margin < 1e-3:
            print(f"skipping {p!r}: near tie in greedy decoding (margin {margin})")
            continue
        out.append({"prompt_ids": ids, "continuation": gen[len(ids):], "min_margin": margin})
    assert len(out) == 4, "too few prompts without near ties"
    return out


def dtype_fixture(folder):
    from safetensors.numpy import save_file
    rng = np.random.default_rng(3)
    vals = np.concatenate([rng.normal(0, 2, 29), [0.0, -0.0, 1e-8, 65504.0, -1.5e-5, 3.0e38]]).astype(np.float32)
    import torch
    f16 = np.where(np.abs(vals) > 65504, 60000.0, vals).astype(np.float16)  # F16 cannot hold 3e38
    bf16 = torch.tensor(vals).to(torch.bfloat16)
    save_file({"x": f16.reshape(5, 7)}, os.path.join(folder, "f16.safetensors"), metadata={"kind": "f16"})
    from safetensors.torch import save_file as save_torch
    save_torch({"x": bf16.reshape(5, 7), "y": torch.tensor(vals[:6]).reshape(2, 3)},
               os.path.join(folder, "bf16.safetensors"), metadata={"kind": "bf16"})
    return {"values": vals.tolist(), "f16": f16.astype(np.float32).tolist(),
            "bf16": bf16.to(torch.float32).numpy().tolist()}


def legacy_variant(src, dst):
    """The same weights written the way older checkpoints were: no `transformer.` prefix, a tied
    `lm_head.weight` and the causal-mask buffers `attn.bias` / `attn.masked_bias`."""
    import shutil, torch
    from safetensors.torch import load_file, save_file
    os.makedirs(dst, exist_ok=True)
    for f in os.listdir(src):
        if f != "model.safetensors":
            shutil.copy(os.path.join(src, f), os.path.join(dst, f))
    sd = load_file(os.path.join(src, "model.safetensors"))
    out = {}
    for k, v in sd.items():
        out[k.replace("transformer.", "")] = v.clone()
    out["lm_head.weight"] = out["wte.weight"].clone()
    for l in range(2):
        out[f"h.{l}.attn.bias"] = torch.tril(torch.ones(64, 64)).view(1, 1, 64, 64)
        out[f"h.{l}.attn.masked_bias"] = torch.tensor(-1e4)
    save_file(out, os.path.join(dst, "model.safetensors"), metadata={"format": "pt"})


def check_export(folder):
    """Loads a folder exported by the Swift side with transformers and returns its logits and ids."""
    import torch
    from transformers import AutoTokenizer, GPT2LMHeadModel
    model = GPT2LMHeadModel.from_pretrained(folder).eval()
    tok = AutoTokenizer.from_pretrained(folder)
    out = []
    for t in TEXTS[:4] + TEXTS[6:7]:
        ids = tok(t, add_special_tokens=False)["input_ids"][:40]
        with torch.no_grad():
            lg = model(torch.tensor([ids])).logits[0].numpy().astype(np.float64)
        out.append({"text": t, "ids": ids, "logits": lg.round(7).tolist()})
    files = {f: hashlib.sha256(open(os.path.join(folder, f), "rb").read()).hexdigest()
             for f in ["config.json", "model.safetensors", "tokenizer.json", "vocab.json", "merges.txt"]}
    return {"tokenizer_class": type(tok).__name__, "sha256": files, "cases": out}


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--check-export":
        res = check_export(sys.argv[2])
        with open(os.path.join(HERE, "export_check.json"), "w") as f:
            json.dump(res, f)
        print("wrote export_check.json; transformers loaded it with", res["tokenizer_class"])
        return
    tokdir = os.path.join(HERE, "tokenizer")
    train_tokenizer(tokdir)
    fast, tokcases = encode_both(tokdir)
    modeldir = os.path.join(HERE, "tiny-gpt2")
    model = tiny_model(modeldir, len(fast))
    fast.save_pretrained(modeldir)
    legacy_variant(modeldir, os.path.join(HERE, "tiny-gpt2-legacy"))
    golden = {
        "tokenizer": tokcases,
        "logits": logits_fixture(model, fast),
        "greedy": greedy_fixture(model, fast, eos=fast.convert_tokens_to_ids("<|endoftext|>")),
        "dtypes": dtype_fixture(HERE),
    }
    with open(os.path.join(HERE, "golden_hf.json"), "w") as f:
        json.dump(golden, f, allow_nan=False)
    print("vocab", len(fast), "greedy margins", [g["min_margin"] for g in golden["greedy"]])


if __name__ == "__main__":
    main()
