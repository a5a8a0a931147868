"""A SmolLM-style tokenizer.json (the GPT-2-style fixture tokenizer with the pre-tokenizer
Sequence[Digits(individual_digits=True), ByteLevel]) and reference encodings from Hugging Face
`tokenizers`. Run: python3 make_smollm_style.py FIXTURES_HF_DIR (tokenizers 0.23.3 wrote the
committed files)."""
import json, os, sys
import tokenizers
from tokenizers import Tokenizer, pre_tokenizers
HERE = sys.argv[1]
src = Tokenizer.from_file(os.path.join(HERE, "tokenizer", "tokenizer.json"))
d = json.loads(src.to_str())
d["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
    {"type": "Digits", "individual_digits": True},
    {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}]}
os.makedirs(os.path.join(HERE, "smollm-style"), exist_ok=True)
out = os.path.join(HERE, "smollm-style", "tokenizer.json")
tok = Tokenizer.from_str(json.dumps(d))
tok.save(out)
texts = ["Numbers: 12345, 3.14159 and 1,000,000; 2024-12-01", " 42 apples", "x1y22z333", "٣٤٥ Arabic-Indic and ½ ⅔ and Ⅻ roman",
         "Hello world", "  leading spaces 7  ", "tabs\t9\n10\n", "emoji 😀 1️⃣ keycap", "<|endoftext|>5<|endoftext|>", "", "0", "mixed123abc 456def"]
cases = [{"text": t, "code_points": [ord(c) for c in t], "ids": tok.encode(t).ids} for t in texts]
json.dump({"tokenizers": tokenizers.__version__, "pre_tokenizer": d["pre_tokenizer"], "cases": cases},
          open(os.path.join(HERE, "smollm-style", "encodings.json"), "w"), ensure_ascii=False, indent=1)
print("ok", len(cases))
