#!/usr/bin/env python3
"""Write three small chat templates (our own text, in the style of real model
templates) and reference renderings / token ids produced by Hugging Face
transformers' apply_chat_template.

Run:

    /tmp/archfix/venv/bin/pip install torch transformers tokenizers jinja2
    /tmp/archfix/venv/bin/python make_chat_fixtures.py [OUT_DIR]

OUT_DIR defaults to this script's folder. It writes:

  chatml.jinja                 ChatML in the style of SmolLM2-Instruct (default system
                               message "You are a helpful AI assistant named SmolLM,
                               trained by Hugging Face" when messages[0] is not system,
                               decided inside the loop with loop.first)
  chatml-default-system.jinja  ChatML in the style of Qwen2.5-Instruct (default system
                               "You are Qwen, created by Alibaba Cloud. You are a helpful
                               assistant.", decided before the loop; no tool calling)
  llama3.jinja                 Llama-3.x-Instruct style (bos_token, system header with
                               "Cutting Knowledge Date" / "Today Date: " + date_string,
                               content | trim, <|eot_id|>)
  chat_reference.json          rendered strings (tokenize=False) and ids (tokenize=True)
                               for several conversations, with and without
                               add_generation_prompt.

Tokenizers: ../qwen2-style/tokenizer.json (ChatML templates, eos <|im_end|>) and
../llama3-style/tokenizer.json (llama3.jinja, bos <|begin_of_text|>, eos <|eot_id|>).

Everything is deterministic except the one llama3 case that leaves date_string at its
default: transformers defines strftime_now, so it renders today's date
(strftime("%d %b %Y")) on the day the script runs; the JSON records what it rendered.
"""
import json
import os
import platform
import sys

import jinja2
import tokenizers
import transformers
from jinja2.sandbox import ImmutableSandboxedEnvironment
from transformers import PreTrainedTokenizerFast

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else HERE)
HF_FIXTURES = os.path.dirname(HERE)
LLAMA_TOKENIZER = os.path.join(HF_FIXTURES, "llama3-style", "tokenizer.json")
QWEN_TOKENIZER = os.path.join(HF_FIXTURES, "qwen2-style", "tokenizer.json")

# ---------------------------------------------------------------- templates
# Files end right after a block tag: with trim_blocks the final newline is dropped.

CHATML_SMOL = """\
{#- ChatML in the style of SmolLM2-Instruct, written for these fixtures. #}
{%- set default_system = "You are a helpful AI assistant named SmolLM, trained by Hugging Face" %}
{%- for message in messages %}
    {%- if loop.first and message['role'] != 'system' %}
        {{- '<|im_start|>system\\n' + default_system + '<|im_end|>\\n' }}
    {%- endif %}
    {{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
{%- endif %}
"""

CHATML_QWEN = """\
{#- ChatML with a default system prompt, in the style of Qwen2.5-Instruct (no tools). #}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_text = messages[0]['content'] %}
{%- else %}
    {%- set system_text = 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' %}
{%- endif %}
{{- '<|im_start|>system\\n' ~ system_text ~ '<|im_end|>\\n' }}
{%- for message in messages %}
    {%- if message.role == 'system' and loop.first %}
    {%- elif message.role == 'user' or message.role == 'system' %}
        {{- '<|im_start|>' ~ message.role ~ '\\n' ~ message.content ~ '<|im_end|>\\n' }}
    {%- elif message.role == 'assistant' %}
        {{- '<|im_start|>assistant\\n' }}
        {%- if message.content is defined and message.content %}
            {{- message.content }}
        {%- endif %}
        {{- '<|im_end|>\\n' }}
    {%- else %}
        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt is defined and add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
{%- endif %}
"""

LLAMA3 = """\
{#- Llama-3.x-Instruct style template, written for these fixtures. #}
{{- bos_token }}
{%- if date_string is not defined %}
    {%- if strftime_now is defined %}
        {%- set date_string = strftime_now("%d %b %Y") %}
    {%- else %}
        {%- set date_string = "26 Jul 2024" %}
    {%- endif %}
{%- endif %}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content'] | trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}
{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}
{{- "Cutting Knowledge Date: December 2023\\n" }}
{{- "Today Date: " + date_string + "\\n\\n" }}
{{- system_message }}
{{- "<|eot_id|>" }}
{%- for message in messages %}
    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}
{%- endif %}
"""

TEMPLATES = {
    "chatml": ("chatml.jinja", CHATML_SMOL, "qwen2-style", "SmolLM2-Instruct style ChatML, default system inside loop (loop.first)"),
    "chatml-default-system": ("chatml-default-system.jinja", CHATML_QWEN, "qwen2-style", "Qwen2.5-Instruct style ChatML, default system before loop, no tools"),
    "llama3": ("llama3.jinja", LLAMA3, "llama3-style", "Llama-3.x-Instruct style"),
}

# ---------------------------------------------------------------- conversations
TRICKY = ("  Line one\nline two\n\n  indented line\ttab  \n"
          "unicode: café, naïve, 日本語, Ελληνικά, emoji 🙂👍🏽, math ∑x²\n"
          "a literal <|im_end|> and <|eot_id|> inside the text   ")
CONVERSATIONS = {
    "single_user": [
        {"role": "user", "content": "Hello! How are you today?"},
    ],
    "system_user": [
        {"role": "system", "content": "You answer in one short sentence."},
        {"role": "user", "content": "What is the capital of France?"},
    ],
    "user_assistant_user": [
        {"role": "user", "content": "Give me a number between 1 and 10."},
        {"role": "assistant", "content": "Seven."},
        {"role": "user", "content": "Now double it, please."},
    ],
    "tricky_content": [
        {"role": "system", "content": "  Be careful with whitespace.  \n"},
        {"role": "user", "content": TRICKY},
        {"role": "assistant", "content": "\n Noted: 'quotes', \"double quotes\", back\\slash. \n"},
        {"role": "user", "content": "ok"},
    ],
    "assistant_last": [
        {"role": "user", "content": "Say hi."},
        {"role": "assistant", "content": "Hi!"},
    ],
}

LLAMA_DATE = "01 Dec 2026"


def make_tokenizer(kind):
    if kind == "llama3-style":
        tok = PreTrainedTokenizerFast(tokenizer_file=LLAMA_TOKENIZER, bos_token="<|begin_of_text|>",
                                      eos_token="<|eot_id|>")
    else:
        tok = PreTrainedTokenizerFast(tokenizer_file=QWEN_TOKENIZER, eos_token="<|im_end|>",
                                      pad_token="<|endoftext|>")
    return tok


def ids_of(x):
    """apply_chat_template(tokenize=True) returns a BatchEncoding in transformers 5."""
    if hasattr(x, "keys") and "input_ids" in x:
        x = x["input_ids"]
    return [int(i) for i in x]


def plain_jinja_render(template, **ctx):
    """Same environment options as transformers, but without strftime_now."""
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=["jinja2.ext.loopcontrols"])
    return env.from_string(template).render(**ctx)


def main():
    os.makedirs(OUT, exist_ok=True)
    ref = {
        "description": "apply_chat_template reference: rendered text (tokenize=False) and ids (tokenize=True)",
        "jinja_environment": {
            "class": "jinja2.sandbox.ImmutableSandboxedEnvironment",
            "trim_blocks": True,
            "lstrip_blocks": True,
            "extensions": ["jinja2.ext.loopcontrols"],
            "globals": ["raise_exception", "strftime_now", "dict", "namespace", "tojson (filter, ensure_ascii=False)"],
            "context": "messages, tools (None), documents (None), add_generation_prompt, every entry of "
                       "tokenizer.special_tokens_map (bos_token, eos_token, ... as strings), plus extra kwargs "
                       "such as date_string",
            "tokenize": "tokenizer(rendered, add_special_tokens=False)",
        },
        "templates": {},
        "versions": {
            "python": platform.python_version(),
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
            "jinja2": jinja2.__version__,
        },
    }

    for name, (fname, text, tok_kind, style) in TEMPLATES.items():
        with open(os.path.join(OUT, fname), "w") as f:
            f.write(text)
        tok = make_tokenizer(tok_kind)
        tok.chat_template = text
        entry = {
            "file": fname,
            "style": style,
            "tokenizer": f"../{tok_kind}/tokenizer.json",
            "special_tokens_map": dict(tok.special_tokens_map),
            "special_token_ids": {k: tok.convert_tokens_to_ids(v) for k, v in tok.special_tokens_map.items()},
            "cases": [],
        }
        extra = {"date_string": LLAMA_DATE} if name == "llama3" else {}

        for conv_name, conv in CONVERSATIONS.items():
            for agp in (False, True):
                text_out = tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=agp, **extra)
                ids = ids_of(tok.apply_chat_template(conv, tokenize=True, add_generation_prompt=agp, **extra))
                assert ids == tok(text_out, add_special_tokens=False)["input_ids"]
                case = {"conversation": conv_name, "messages": conv, "add_generation_prompt": agp,
                        "kwargs": extra, "rendered": text_out, "ids": ids}
                # literal control tokens in message text: default (False) encodes them as the
                # special token; sanitize_control_tokens=True encodes them as plain text.
                if conv_name == "tricky_content":
                    san = ids_of(tok.apply_chat_template(conv, tokenize=True, add_generation_prompt=agp,
                                                         sanitize_control_tokens=True, **extra))
                    case["ids_sanitize_control_tokens"] = san
                entry["cases"].append(case)

        # BOS / post-processor behaviour
        probe = entry["cases"][1]  # single_user + generation prompt
        with_special = tok(probe["rendered"], add_special_tokens=True)["input_ids"]
        bos_id = tok.convert_tokens_to_ids(tok.bos_token) if tok.bos_token else None
        entry["post_processor"] = {
            "apply_chat_template_uses_add_special_tokens": False,
            "ids_if_add_special_tokens_true": with_special,
            "post_processor_adds_tokens": with_special != probe["ids"],
            "note": (
                "apply_chat_template tokenizes with add_special_tokens=False, so the ids hold exactly one "
                "<|begin_of_text|> (written by the template via bos_token); encoding the same text with "
                "add_special_tokens=True would prepend a second one through the tokenizer.json "
                "TemplateProcessing post_processor."
                if name == "llama3" else
                "qwen2-style tokenizer.json post_processor is ByteLevel only: add_special_tokens adds nothing."
            ),
        }
        if name == "llama3":
            assert probe["ids"][0] == bos_id and probe["ids"][1] != bos_id
            assert with_special[:2] == [bos_id, bos_id], with_special[:3]
        else:
            assert with_special == probe["ids"]

        if name == "llama3":
            conv = CONVERSATIONS["single_user"]
            default_text = tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=True)
            default_ids = ids_of(tok.apply_chat_template(conv, tokenize=True, add_generation_prompt=True))
            rendered_date = default_text.split("Today Date: ")[1].split("\n")[0]
            no_strftime = plain_jinja_render(text, messages=conv, add_generation_prompt=True,
                                             **tok.special_tokens_map)
            assert "Today Date: 26 Jul 2024\n" in no_strftime
            entry["default_date"] = {
                "transformers_default": {
                    "conversation": "single_user", "add_generation_prompt": True, "kwargs": {},
                    "rendered_date": rendered_date,
                    "rendered": default_text, "ids": default_ids,
                    "note": "date_string not passed: transformers defines strftime_now, so this is "
                            "datetime.now().strftime('%d %b %Y') on the day the script ran",
                },
                "without_strftime_now": {
                    "conversation": "single_user", "add_generation_prompt": True, "kwargs": {},
                    "rendered_date": "26 Jul 2024",
                    "rendered": no_strftime,
                    "ids": tok(no_strftime, add_special_tokens=False)["input_ids"],
                    "note": "plain jinja2 environment (same trim_blocks/lstrip_blocks) with no strftime_now "
                            "global: the template falls back to '26 Jul 2024'",
                },
            }
        ref["templates"][name] = entry

    path = os.path.join(OUT, "chat_reference.json")
    with open(path, "w") as f:
        json.dump(ref, f, indent=1, ensure_ascii=False)
        f.write("\n")
    for fname in [t[0] for t in TEMPLATES.values()] + ["chat_reference.json"]:
        print(f"{os.path.getsize(os.path.join(OUT, fname)):>8}  {fname}")


if __name__ == "__main__":
    main()
