#!/usr/bin/env python3
"""Writes bos_reference.json: the token ids transformers gives for a few texts with the Llama 3
style tokenizer the local Hub serves as tiny/llama (tokenizer.json of
../../TransformerCoreTests/Fixtures/hf/arch/llama-tiny with local_hub.py's tokenizer_config.json,
PreTrainedTokenizerFast as Llama 3.x has it, whose post-processor puts <|begin_of_text|> first).

    ids_default  = tokenizer(text).input_ids                            (rlhf tokenize's default)
    ids_bare     = tokenizer(text, add_special_tokens=False).input_ids  (--no-special-tokens)

Run with a Python that has transformers (not needed by the tests, which read the JSON):
    python make_bos_reference.py
"""
import json
import os
import shutil
import sys
import tempfile

from transformers import AutoTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import local_hub  # noqa: E402

SOURCE = os.path.join(HERE, "..", "..", "TransformerCoreTests", "Fixtures", "hf", "arch", "llama-tiny")
TEXTS = ["The quick brown fox jumps over the lazy dog.", "Hello world", "<|eot_id|> after a special token", " leading space"]

with tempfile.TemporaryDirectory() as d:
    for name in ("tokenizer.json", "config.json"):
        shutil.copy(os.path.join(SOURCE, name), d)
    with open(os.path.join(d, "tokenizer_config.json"), "wb") as f:
        f.write(local_hub.TOKENIZER_CONFIG)
    tok = AutoTokenizer.from_pretrained(d)
    cases = [
        {"text": t, "ids_default": tok(t).input_ids, "ids_bare": tok(t, add_special_tokens=False).input_ids} for t in TEXTS
    ]
import transformers  # noqa: E402

out = {"generator": "make_bos_reference.py", "transformers_version": transformers.__version__,
       "tokenizer_class": type(tok).__name__, "bos_token": tok.bos_token, "cases": cases}
with open(os.path.join(HERE, "bos_reference.json"), "w") as f:
    json.dump(out, f, indent=1, ensure_ascii=False)
    f.write("\n")
print(json.dumps(out, ensure_ascii=False)[:600])
