#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets (Tests/Fuzz/Corpus/TARGET/*). Standard library only.

Each seed is a small valid input (so the fuzzer starts deep inside each parser) or a near miss.
Run it from anywhere: python3 Tests/Fuzz/Corpus/make_seeds.py
"""
import json, os, struct

HERE = os.path.dirname(os.path.abspath(__file__))


def put(target, name, data):
    d = os.path.join(HERE, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def safetensors(tensors, metadata=None):
    """tensors: list of (name, dtype, shape, raw bytes)."""
    header, off, blob = {}, 0, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(raw)]}
        off += len(raw)
        blob += raw
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + blob


def f32(values):
    return struct.pack("<%df" % len(values), *values)


# safetensors
put("safetensors", "f32.safetensors", safetensors([("a", "F32", [2, 3], f32([1, 2, 3, 4, 5, 6])), ("b", "F32", [], f32([7]))], {"format": "pt"}))
put("safetensors", "half.safetensors", safetensors([("h", "F16", [4], struct.pack("<4H", 0x3C00, 0xC000, 0x7C00, 0x0001)),
                                                    ("bf", "BF16", [2, 2], struct.pack("<4H", 0x3F80, 0x4000, 0x7FC0, 0x8000))]))
put("safetensors", "mixed.safetensors", safetensors([("i", "I64", [2], struct.pack("<2q", 1, -1)), ("e", "F32", [0, 5], b""),
                                                     ("u", "U8", [3], b"\x01\x02\x03")]))
put("safetensors", "empty.safetensors", safetensors([]))
put("safetensors", "gap.safetensors", struct.pack("<Q", 60) + b'{"x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}    ' + b"\0" * 8)

# config.json: the harness loads it with the weights of a 1-layer, 2-head, width-8, context-16,
# 258-token model.
tiny = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_layer": 1, "n_head": 2, "n_embd": 8,
        "n_positions": 16, "vocab_size": 258, "layer_norm_epsilon": 1e-5, "activation_function": "gelu_new"}
put("config", "tiny.json", json.dumps(tiny, indent=2))
put("config", "hf-names.json", json.dumps({"num_hidden_layers": 1, "num_attention_heads": 2, "hidden_size": 8, "n_ctx": 16,
                                           "vocab_size": 258, "rlhf_prompt_template": "Q: {prompt}\nA:", "rlhf_reward_gain": 1.5}))
put("config", "huge.json", json.dumps(dict(tiny, n_embd=65536, vocab_size=1 << 24, n_layer=1024)))
put("config", "llama.json", json.dumps({"model_type": "llama", "hidden_size": 8}))

# model.safetensors.index.json: the harness has the 1-layer model's tensors in two shards, slots
# alternating between them in this order.
slots = ["wte.weight", "wpe.weight"] + ["h.0." + n for n in [
    "ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight", "attn.c_proj.bias",
    "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias"]] + ["ln_f.weight", "ln_f.bias"]
shard = lambda i: "model-%05d-of-00002.safetensors" % (i % 2 + 1)
weight_map = {n: shard(i) for i, n in enumerate(slots)}
put("safetensors-index", "valid.json", json.dumps({"metadata": {"total_size": 0}, "weight_map": weight_map}, indent=2))
put("safetensors-index", "traversal.json", json.dumps({"weight_map": dict(weight_map, **{"wte.weight": "../model/model.safetensors"})}))
put("safetensors-index", "wrong-shard.json", json.dumps({"weight_map": dict(weight_map, **{"wte.weight": shard(1)})}))
put("safetensors-index", "missing-shard.json", json.dumps({"weight_map": dict(weight_map, **{"wpe.weight": "model-00003-of-00003.safetensors"})}))

# tokenizer.json and vocab.json + merges.txt: GPT-2's byte alphabet and a few merges.
def byte_alphabet():
    bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}

alpha = byte_alphabet()
vocab = {alpha[b]: i for i, b in enumerate(range(256))}
merges = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("l", "l"), ("e", "ll"), ("Ġ", "w")]
for a, b in merges:
    vocab.setdefault(a + b, len(vocab))
vocab["<|endoftext|>"] = len(vocab)
tok = {"version": "1.0", "truncation": None, "padding": None,
       "added_tokens": [{"id": vocab["<|endoftext|>"], "content": "<|endoftext|>", "single_word": False, "lstrip": False,
                         "rstrip": False, "normalized": True, "special": True}],
       "normalizer": None, "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
       "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
       "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
       "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "", "end_of_word_suffix": "",
                 "fuse_unk": False, "byte_fallback": False, "vocab": vocab, "merges": [a + " " + b for a, b in merges]}}
put("tokenizer-json", "gpt2-style.json", json.dumps(tok, ensure_ascii=False))
tok2 = json.loads(json.dumps(tok))
tok2["model"]["merges"] = [[a, b] for a, b in merges]
tok2["model"]["ignore_merges"] = True
tok2["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [dict(tok["pre_tokenizer"], add_prefix_space=True)]}
put("tokenizer-json", "pair-merges.json", json.dumps(tok2, ensure_ascii=False))
# Llama 3 and Qwen2 shaped tokenizers: copies of Tests/TransformerCoreTests/Fixtures/hf/*-style/tokenizer.json.
for style in ("llama3-style", "qwen2-style"):
    src = os.path.join(HERE, "..", "..", "TransformerCoreTests", "Fixtures", "hf", style, "tokenizer.json")
    put("tokenizer-json", style + ".json", open(src, "rb").read())
put("tokenizer-json", "metaspace.json", json.dumps({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [], "byte_fallback": True},
                                                    "pre_tokenizer": {"type": "Metaspace"}}))
merges_txt = "#version: 0.2\n" + "".join(a + " " + b + "\n" for a, b in merges)
put("vocab-merges", "gpt2-style", json.dumps(vocab, ensure_ascii=False).encode() + b"\0" + merges_txt.encode())
put("vocab-merges", "crlf", json.dumps({"a": 0, "b": 1, "ab": 2}).encode() + b"\0" + b"a b\r\n")

# prompt files
put("prompts", "plain.txt", "Write a haiku about the sea.\nExplain RLHF in one sentence.\n\n  \nWhat is 2+2?\n")
put("prompts", "prompts.jsonl", '{"prompt": "Tell me a story", "topic": "fiction", "n": 3}\n{"prompt": "Caf\\u00e9 \\ud83d\\ude00", "tags": ["a", null]}\n')
put("prompts", "bom-crlf.jsonl", b"\xef\xbb\xbf" + b'{"prompt": "one"}\r\n{"prompt": "two"}\r\n')
put("prompts", "conversational.jsonl", '{"prompt": [{"role": "user", "content": "Name a colour."}], "id": 1}\n{"prompt": [{"role": "user", "content": [{"type": "text", "text": "Two "}, {"type": "text", "text": "parts"}]}]}\n')
put("prompts", "bad.jsonl", '{"prompt": "ok"}\n{"prompt": 3}\n{"text": "no prompt key"}\n')

# TRL preference pairs
put("trl-pairs", "pairs.jsonl", '{"prompt": "Q1", "chosen": " good", "rejected": " bad"}\n{"prompt": "Q2", "chosen": "x", "rejected": "y", "score": 1}\n')
put("trl-pairs", "conversational.jsonl", '{"prompt": [{"role": "user", "content": "hi"}], "chosen": [{"role": "assistant", "content": "a"}], "rejected": []}\n')
put("trl-pairs", "trailing-comma.jsonl", '{"prompt": "Q", "chosen": "a", "rejected": "b",}\n')

# Chat templates (chat_template.jinja): the three fixture templates, snippets of the filters,
# tests and loop controls, and a near miss
FIXTURES = os.path.join(HERE, "..", "..", "TransformerCoreTests", "Fixtures", "hf", "arch")
for name in ("chatml.jinja", "chatml-default-system.jinja", "llama3.jinja"):
    with open(os.path.join(FIXTURES, name), "rb") as f:
        put("chat-template", name, f.read())
put("chat-template", "filters.jinja",
    "{%- set ns = namespace(n=0) %}{%- set tools = ['search', 'code', 'calc'] %}\n"
    "{{- 'Tools: ' + tools | reject('equalto', 'code') | join(', ') + '\\n' }}\n"
    "{%- for m in messages | selectattr('role', 'ne', 'system') %}{% if loop.index is divisibleby 3 %}{% break %}{% endif %}"
    "{% set ns.n = ns.n + m.content | length %}{{ m.role[:1] | upper ~ loop.index }}{% endfor %}\n"
    "{%- for k, v in {'a': 1, 'b': [2, 3]} | items %} {{ k }}={{ v | tojson(indent=2) }}{% endfor %}\n"
    "{{ ns.n | string + (messages | map(attribute='role') | list | length * 2.5) | string }}{{ '1' | int + 2 | float }}\n")
put("chat-template", "unclosed.jinja", "{% for m in messages %}{{ m.content | trim }}{% if m.role == 'user' %}x{% endfor %}\n")
