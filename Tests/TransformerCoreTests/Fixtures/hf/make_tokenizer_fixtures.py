#!/usr/bin/env python3
"""Build two small byte-level BPE tokenizer.json files shaped like Llama 3 and
Qwen2, and a fixture of reference encodings produced by Hugging Face
`tokenizers`.

Deterministic: fixed corpus, fixed test texts, fixed random seed.
Run with the venv that has `tokenizers` installed:

    pip install tokenizers   (0.23.3 wrote the committed files)
    python3 make_tokenizer_fixtures.py [OUT_DIR]

Writes OUT_DIR/llama3-style/tokenizer.json, OUT_DIR/qwen2-style/tokenizer.json,
OUT_DIR/tokenizer_encodings.json (OUT_DIR defaults to this script's folder).
"""
import json
import os
import random
import sys
import unicodedata

import tokenizers
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from tokenizers import AddedToken

OUT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__)))

# Exact pattern strings as they appear (JSON-decoded) in the real files.
LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN2_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

LLAMA3_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>"]
QWEN2_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

# Whole pre-tokens injected into the vocab WITHOUT any merges that build them
# (like tiktoken-derived vocabularies such as Llama 3's).  With ignore_merges
# true (llama3-style) each one encodes to its single id; with ignore_merges
# false (qwen2-style) they are unreachable and are never produced.
# Values are the raw text of one pre-token; they get byte-level mapped.
UNREACHABLE_PRETOKENS = [" xylophone", "Zyzzyva", " 東京都"]

# --------------------------------------------------------------------------
# Training corpus (fixed).  Lines are also used as test texts.
# --------------------------------------------------------------------------
CORPUS_LINES = [
    "The quick brown fox jumps over the lazy dog.",
    "It's a truth universally acknowledged that a single man in possession of a good fortune must be in want of a wife.",
    "DON'T PANIC. It's only a test, and we'LL be fine; they'RE sure she'd agree, I'M told, you'VE seen it.",
    "We'll see what they've done; I'd say it isn't what you'd expect, but it's what we've got.",
    "Numbers: 12345, 3.14159, 2.71828, 1,000,000 and 0.001; also 42 and 7 and 1999-12-31.",
    "Version 10.2.3 was released in 2024 with 256 new features and 4096 bug fixes.",
    "def fibonacci(n: int) -> int:\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n",
    "for (int i = 0; i < 100; ++i) {\n\tprintf(\"%d\\n\", i * i);\n}\n",
    "let xs = [1, 2, 3].map { $0 * 2 }  // Swift closure\r\nprint(xs)\r\n",
    "SELECT name, COUNT(*) FROM users WHERE age >= 21 GROUP BY name;",
    "<html><body><p class=\"x\">Hello &amp; welcome!</p></body></html>",
    "Tabs\tseparate\tthese\tcolumns\tand  runs   of    spaces     too.",
    "Windows line endings\r\nare here\r\n\r\nand blank lines\n\n\nand trailing spaces   \n",
    "Café, naïve, résumé, façade, coöperate, Ångström, über, señor, Øresund.",
    "Cafe\u0301, nai\u0308ve, re\u0301sume\u0301 (decomposed with combining marks).",
    "Straße, İstanbul, Ωmega, Ελληνικά, Русский текст, Українська мова.",
    "日本語のテキストと中文文本，还有한국어 문장도 있습니다。",
    "東京は日本の首都です。北京是中国的首都。",
    "Emoji: 😀 👍🏽 👨‍👩‍👧‍👦 🇺🇸 🇯🇵 ❤️ 🎉🎉🎉 and ✨sparkles✨.",
    "العربية نص قصير. हिन्दी पाठ. ภาษาไทยง่ายๆ",
    "Math: x² + y² = z², ½ + ¼ = ¾, α→β, ∑ᵢ aᵢ ≤ ∞.",
    "Punctuation!!! Really??? Yes... No -- maybe; (parentheses) [brackets] {braces} 'quotes' \"double\".",
    "email@example.com https://example.org/path?q=1&r=two#frag",
    "   leading spaces and trailing spaces   ",
    "ALL CAPS SHOUTING IS HERE AND IT'S LOUD, ISN'T IT? YOU'VE HEARD, WE'D GUESS.",
    "mixedCase camelCaseIdentifiers snake_case_names kebab-case-names SCREAMING_SNAKE",
    "The year 1066, the number 31415926535, the phone 555-0123, the price $19.99.",
    "She said, \u201cHello,\u201d and he replied \u2018hi\u2019 \u2014 then left\u2026",
    "Non-breaking\u00a0space and ideographic\u3000space and em\u2003space.",
    "A line with a tab\tand a vertical tab\x0b and form feed\x0c inside.",
]
# repeat a few lines so the trainer has frequent pairs to merge
TRAIN_TEXT = CORPUS_LINES * 3 + [
    "the the the and and and of of to to in in is is it it that that",
    "123 456 789 1234 5678 90 12 34 56 78 90 000 111 222 333",
    "    indented code block\n        deeper\n            deepest\n",
    "hello world hello world hello world Hello World HELLO WORLD",
]

# --------------------------------------------------------------------------
# Adversarial test texts (fixed).
# --------------------------------------------------------------------------
ADVERSARIAL = [
    # contractions, mixed case
    "'s", "'S", "'t", "'T", "'re", "'RE", "'Re", "'rE", "'ve", "'VE", "'m", "'M", "'ll", "'LL", "'Ll", "'d", "'D",
    "I'M", "I'm", "it's", "IT'S", "It'S", "we'll", "We'LL", "they're", "THEY'RE", "you've", "YOU'VE", "he'd", "HE'D",
    "don't", "DON'T", "can't've", "'x", "'X", "'ss", "''s", "x'sy", "'s's", "’s curly apostrophe", "'ſ long s",
    "rock 'n' roll", " 's", "  'll",
    # numbers
    "1", "12", "123", "1234", "12345", "123456", "1234567", "abc123def", "1,234,567.89", "3.14159", "x1y22z333w4444",
    "٠١٢٣٤٥٦٧٨٩ Arabic-Indic", "①②③ Ⅻ ½¾ ²³", "１２３４ fullwidth",
    # whitespace
    " ", "  ", "   ", " a", "  a", "   a", "a ", "a  ", "a  b", "a   b", "hello   world  ", " hello world ",
    "\n", "\n\n\n", " \n ", "\r\n", "\r\n\r\n", "\r", "a\r\nb", "a \r\n b", "\t", "\t\t", "a\tb", "a \t b", "\t\n",
    "x  \n  y", "end.\n\n", "  \n\n  \n", "tab\t\tend\t",
    # punctuation runs
    "!!!???", "...\n", "...\r\n\n", " !!", "a!!b", "--\n--", "(){}[]<>", "#$%&*+/=@\\^_`|~", "'''", "\"\"\"",
    # non-ASCII letters
    "é", "e\u0301", "\u00e9t\u00e9 vs e\u0301te\u0301", "ß", "SS ß ẞ", "İ", "ı i I İ", "Ω", "Ω (ohm sign)",
    "Å Å Å", "Привет, мир!", "مرحبا بالعالم", "नमस्ते दुनिया", "क्षि", "สวัสดีครับ", "ﬁ ﬂ ligatures", "ǅungla",
    # CJK
    "中文", "中 文", "你好世界", "你好 世界", "こんにちは世界", "カタカナ ひらがな 漢字", "한국어텍스트", "東京都",
    "a xylophone", "Zyzzyva", " xylophone", "東京都 東京都",
    # emoji
    "😀", "👍🏽", "👨‍👩‍👧‍👦", "🇺🇸🇯🇵", "🏳️‍🌈", "❤️", "a😀b", " 😀 ", "😀😀😀", "#️⃣ keycap",
    # unicode spaces & invisibles
    "a\u00a0b", "a\u3000b", "a\u2003b", "a\u200bb", "\ufeffbom", "a\u2028b", "a\u2029b", "a\u1680b", "a\u202fb",
    "a\u205fb", "a\u00a0\u00a0b", "\u3000\u3000中", " \u00a0 ", "a\u180eb",
    # control characters
    "a\x00b", "\x00", "bell\x07", "esc\x1b[31mred\x1b[0m", "a\x85b", "\x85", "a\x1cb\x1dc\x1ed\x1ff", "a\x0bb\x0cc",
    "\x7f del", "\u2028",
    # special tokens embedded in text
    "hi<|eot_id|>there", "<|begin_of_text|>Hello", "<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>",
    "<|im_start|>user\nhello<|im_end|>", "<|endoftext|>", "a <|im_end|> b", "<|im_start|>system\nYou are helpful.<|im_end|>\n",
    "<|eot_id|><|eot_id|>", "<|not_special|>",
]

RANDOM_ALPHABET = (
    list("abcXYZ019 '.,!?-_") +
    ["'s", "'LL", "'t", "I'M"] +
    ["é", "e\u0301", "ß", "İ", "Ω", "Ж", "ж", "ب", "न", "\u093f", "\u094d", "ก", "\u0e34", "中", "日", "한", "カ"] +
    ["😀", "👍🏽", "👨\u200d👩\u200d👧", "🇯🇵", "❤️"] +
    ["\n", "\r\n", "\r", "\t", "  ", "\u00a0", "\u3000", "\u2003", "\u200b", "\ufeff", "\u2028", "\u2029",
     "\x00", "\x07", "\x1b", "\x85", "\x0b", "\x0c", "\x1c"] +
    ["1234567", "3.14", "½", "²"] +
    ["<|eot_id|>", "<|im_end|>", "<|"]
)


def random_texts(n=30, seed=20240601):
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        target = rng.randint(1, 40)
        s = ""
        while len(s) < target:
            s += rng.choice(RANDOM_ALPHABET)
        s = s[:target] if rng.random() < 0.5 else s  # sometimes cut mid-element
        if s and s not in out:
            out.append(s)
    return out


def all_texts():
    texts = []
    for t in CORPUS_LINES + ADVERSARIAL + random_texts():
        if t not in texts:
            texts.append(t)
    return texts


# --------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------
BYTES_TO_UNICODE = None


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def byte_level(s):
    m = bytes_to_unicode()
    return "".join(m[b] for b in s.encode("utf-8"))


def split_pretokenizer(pattern):
    return pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False)


def build(kind):
    llama = kind == "llama3-style"
    pattern = LLAMA3_PATTERN if llama else QWEN2_PATTERN
    tok = Tokenizer(models.BPE())
    if not llama:
        tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        split_pretokenizer(pattern),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        min_frequency=2,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
    )
    tok.train_from_iterator(TRAIN_TEXT, trainer=trainer)

    # Rewrite the JSON so every field has exactly the real files' shape.
    j = json.loads(tok.to_str())
    model = j["model"]
    vocab = model["vocab"]
    for raw in UNREACHABLE_PRETOKENS:
        t = byte_level(raw)
        assert t not in vocab, t
        vocab[t] = len(vocab)
    model["dropout"] = None
    model["unk_token"] = None
    model["fuse_unk"] = False
    model["byte_fallback"] = False
    if llama:
        model["continuing_subword_prefix"] = None
        model["end_of_word_suffix"] = None
        model["ignore_merges"] = True
    else:
        model["continuing_subword_prefix"] = ""
        model["end_of_word_suffix"] = ""
        model["ignore_merges"] = False
    # key order as in the real files
    j["model"] = {k: model[k] for k in ["type", "dropout", "unk_token", "continuing_subword_prefix",
                                         "end_of_word_suffix", "fuse_unk", "byte_fallback", "ignore_merges",
                                         "vocab", "merges"]}
    tok = Tokenizer.from_str(json.dumps(j, ensure_ascii=False))

    specials = LLAMA3_SPECIALS if llama else QWEN2_SPECIALS
    tok.add_special_tokens([AddedToken(s, single_word=False, lstrip=False, rstrip=False, normalized=False, special=True)
                            for s in specials])
    if llama:
        bos = "<|begin_of_text|>"
        bos_id = tok.token_to_id(bos)
        tok.post_processor = processors.Sequence([
            processors.ByteLevel(add_prefix_space=True, trim_offsets=False, use_regex=True),
            processors.TemplateProcessing(
                single=f"{bos}:0 $A:0",
                pair=f"{bos}:0 $A:0 {bos}:1 $B:1",
                special_tokens=[(bos, bos_id)],
            ),
        ])
        tok.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    else:
        tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
        tok.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)

    # Final JSON: pre_tokenizer ByteLevel flags like the real files
    # (Llama 3: trim_offsets true; Qwen2: trim_offsets false).
    j = json.loads(tok.to_str())
    j["pre_tokenizer"]["pretokenizers"][1]["trim_offsets"] = bool(llama)
    # decoders.ByteLevel() in Python ignores its keyword arguments, so set the
    # decoder's flags (which do not change decoding) in the JSON directly.
    if llama:
        j["decoder"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}
    else:
        j["decoder"] = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
        j["post_processor"] = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
                               "use_regex": False}
    return j


def with_code_points(cases):
    """Adds each string field as a list of code points too (`text_cp`, `normalized_cp`,
    `decoded_cp`, `regex_pieces_cp`): Foundation's JSON parser drops a U+FEFF that starts a
    string, so the Swift tests read the code points."""
    for c in cases:
        for key in ("text", "normalized", "decoded"):
            c[key + "_cp"] = [ord(ch) for ch in c[key]]
        c["regex_pieces_cp"] = [[ord(ch) for ch in piece] for piece in c["regex_pieces"]]
    return cases


def write_json(path, obj, indent=2):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=indent)
        f.write("\n")


def main():
    kinds = ["llama3-style", "qwen2-style"]
    toks = {}
    for kind in kinds:
        j = build(kind)
        path = os.path.join(OUT, kind, "tokenizer.json")
        write_json(path, j)
        toks[kind] = Tokenizer.from_file(path)  # must load
        print(f"{kind}: vocab {toks[kind].get_vocab_size(with_added_tokens=True)} -> {path}")

    texts = all_texts()
    cases = []
    roundtrip_failures = []
    for kind in kinds:
        tok = toks[kind]
        split_only = split_pretokenizer(LLAMA3_PATTERN if kind == "llama3-style" else QWEN2_PATTERN)
        for text in texts:
            normalized = tok.normalizer.normalize_str(text) if tok.normalizer is not None else text
            enc = tok.encode(text, add_special_tokens=False)
            enc_s = tok.encode(text, add_special_tokens=True)
            decoded = tok.decode(enc.ids, skip_special_tokens=False)
            if decoded != normalized:
                roundtrip_failures.append((kind, text, decoded))
            cases.append({
                "tokenizer": kind,
                "text": text,
                "normalized": normalized,
                "ids_no_special": enc.ids,
                "ids_with_special": enc_s.ids,
                "tokens": enc.tokens,
                # whole normalized text through the full pre_tokenizer (Split + ByteLevel);
                # NOTE: ignores added/special-token splitting that encode() does first.
                "pretokens": [p for p, _ in tok.pre_tokenizer.pre_tokenize_str(normalized)],
                # same but only the regex Split step: raw Unicode pieces
                "regex_pieces": [p for p, _ in split_only.pre_tokenize_str(normalized)],
                "decoded": decoded,
            })

    fixture = {
        "tokenizers_version": tokenizers.__version__,
        "generator": "make_tokenizer_fixtures.py",
        "notes": [
            "ids_no_special = encode(text, add_special_tokens=False).ids; ids_with_special = add_special_tokens=True",
            "normalized = tokenizer.normalizer.normalize_str(text) (NFC for qwen2-style; identity for llama3-style)",
            "pretokens = tokenizer.pre_tokenizer.pre_tokenize_str(normalized) (byte-level mapped strings); "
            "computed on the whole text, without the special-token splitting encode() applies first",
            "regex_pieces = only the Split(Regex, Isolated) step on normalized text (raw Unicode strings)",
            "decoded = decode(ids_no_special, skip_special_tokens=False)",
            "vocab contains a few whole pre-tokens with no merges building them: "
            + ", ".join(repr(byte_level(s)) for s in UNREACHABLE_PRETOKENS)
            + "; llama3-style (ignore_merges=true) emits them as single ids, qwen2-style (ignore_merges=false) never does",
        ],
        "cases": with_code_points(cases),
    }
    enc_path = os.path.join(OUT, "tokenizer_encodings.json")
    write_json(enc_path, fixture, indent=None)

    # self-check: file round-trips with identical texts
    with open(enc_path, encoding="utf-8") as f:
        back = json.load(f)
    assert [c["text"] for c in back["cases"]] == [c["text"] for c in cases]
    print(f"{len(texts)} texts x {len(kinds)} tokenizers = {len(cases)} cases -> {enc_path}")
    print(f"decode(encode(text)) != normalized(text): {len(roundtrip_failures)}")
    for k, t, d in roundtrip_failures:
        print("   ", k, repr(t), "->", repr(d))


if __name__ == "__main__":
    main()
