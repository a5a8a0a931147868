#!/usr/bin/env python3
"""Reference renderings of small chat-template snippets, produced by transformers'
apply_chat_template, for the chat-template interpreter's expression tests (filters, tests,
loops). The snippets are our own; they exercise constructs real instruct-model templates
use, e.g. Llama-3.1-Instruct's `builtin_tools | reject('equalto', 'code_interpreter')` and
`for name, value in arguments | items`.

Run:

    /tmp/archfix/venv/bin/pip install torch transformers tokenizers jinja2
    /tmp/archfix/venv/bin/python make_jinja_reference.py [OUT_DIR]

It writes jinja_reference.json (OUT_DIR defaults to this script's folder): for every case the
template, the messages, and transformers' rendering (tokenize=False, add_generation_prompt=False)
with the qwen2-style fixture tokenizer (its special tokens are in the context as strings).
"""
import json
import os
import platform
import sys

import jinja2
import transformers
from transformers import PreTrainedTokenizerFast

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else HERE)
QWEN_TOKENIZER = os.path.join(os.path.dirname(HERE), "qwen2-style", "tokenizer.json")

MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": "Sunny."},
    {"role": "user", "content": "And Oslo?"},
]

CASES = {
    "reject_equalto_join": (
        "{%- set builtin_tools = ['brave_search', 'code_interpreter', 'wolfram_alpha'] %}"
        "{{- 'Tools: ' + builtin_tools | reject('equalto', 'code_interpreter') | join(', ') + '\\n' }}"
    ),
    "items_loop": (
        "{%- set call = {'name': 'get_weather', 'arguments': {'city': 'Paris', 'unit': 'celsius', 'days': 3}} %}"
        "{{- call.name + '.call(' }}"
        "{%- for arg_name, arg_val in call.arguments | items %}"
        "{{- arg_name + '=\"' + arg_val | string + '\"' }}{% if not loop.last %}{{ ', ' }}{% endif %}"
        "{%- endfor %}{{ ')' }} {{ nothing | items | list | length }}"
    ),
    "select_reject_tests": (
        "{%- set n = [1, 2, 3, 4, 5, 6] %}"
        "{{ n | select('odd') | join(',') }} {{ n | reject('divisibleby', 3) | join(',') }} "
        "{{ n | select('gt', 3) | join(',') }} {{ n | select('le', 2) | join(',') }} "
        "{{ n | select('in', [2, 5, 9]) | join(',') }} {{ n | reject('even') | list | length }} "
        "{{ ['a', '', 'b', none] | select | join('+') }} {{ ['a', '', 'b'] | reject | list | length }} "
        "{{ ['x', 'Y', 'z'] | select('lower') | join }} {{ n | select('ne', 4) | select('>=', 3) | join }}"
    ),
    "selectattr_map_messages": (
        "{{ messages | selectattr('role', 'equalto', 'user') | map(attribute='content') | join(' | ') }}\n"
        "{{ messages | rejectattr('role', 'eq', 'system') | list | length }} "
        "{{ messages | selectattr('tool_calls') | list | length }} "
        "{{ messages | rejectattr('tool_calls', 'defined') | list | length }} "
        "{{ messages | map(attribute='name', default='anon') | join(',') }}\n"
        "{%- set calls = [{'function': {'name': 'a'}}, {'function': {'name': 'b'}}] %}"
        "{{ calls | map(attribute='function.name') | join('/') }} "
        "{{ calls | selectattr('function.name', 'equalto', 'b') | list | length }}"
    ),
    "map_filter_names": (
        "{{ ['a', 'b'] | map('upper') | join }} {{ [1, 2] | map('string') | join('+') }} "
        "{{ [' x ', 'y '] | map('trim') | join('|') }} {{ ['ab', 'c'] | map('length') | join(',') }} "
        "{{ [['p', 'q'], ['r']] | map('join', '-') | join(' ') }}"
    ),
    "tests_with_arguments": (
        "{%- for m in messages %}"
        "{{ loop.index }}{{ 'e' if loop.index is even else 'o' }}{{ '3' if loop.index is divisibleby 3 }}"
        "{{ '!' if m.role is equalto 'user' }}{{ '=' if m.role is eq('assistant') }}{{ '~' if m.role is not ne 'system' }} "
        "{%- endfor %}"
        "{{ 'a' is equalto 'a' | upper }} {{ 4 is divisibleby(2) }} {{ 2 is in [1, 2] }} {{ 'q' is not in 'abc' }} "
        "{{ 3 is lt 4 }} {{ 3 is gt 4 }} {{ 'abc' is lower }} {{ 'ABC' is upper }} {{ 'aBc' is upper }} "
        "{{ 2.5 is float }} {{ 2 is float }} {{ 7 is odd and 8 is even }}"
    ),
    "int_float_abs": (
        "{{ '3.7' | int }} {{ 'abc' | int }} {{ 'abc' | int(7) }} {{ 3.99 | int }} {{ -3.99 | int }} {{ true | int }} "
        "{{ none | int }} {{ ' 12 ' | int + 1 }} {{ '2' | float }} {{ 'x' | float }} {{ 4 | float / 8 }} "
        "{{ -3 | abs }} {{ -2.5 | abs }} {{ (2 | float) is float }} {{ '1_000' | int }} {{ '0x1A' | int }} {{ '0x1p3' | float }} "
        "{{ '1e3' | float }} {{ '1e3' | int }} {{ 'inf' | int }}"
    ),
    # Slices with a step (the `messages[::-1]` of Qwen-family templates) and reverse.
    "slices_and_reverse": (
        "{%- for m in messages[::-1] %}{{ m.role[0] }}{% endfor %} {{ messages[1::2] | map(attribute='role') | join(',') }} "
        "{{ 'abcdef'[::2] }} {{ 'abcdef'[-2:] }} {{ 'abcdef'[4:1:-1] }} {{ 'abcdef'[:-4:-1] }} {{ [1, 2, 3, 4, 5][-1:-4:-2] | join }} "
        "{{ [1, 2, 3][5:] | length }} {{ [1, 2, 3][::7] | join }} {{ 'abc' | reverse }} {{ messages | reverse | map(attribute='content') | first }} "
        "{{ [3, 1, 2] | reverse | join }} {{ 'abcdef'[none:2] }}"
    ),
    # transformers' {% generation %} block (assistant-token masks) renders its body.
    "generation_block": (
        "{%- for m in messages %}{{ '<' + m.role + '>' }}{% if m.role == 'assistant' %}{% generation %}"
        "{{ m.content }}{% endgeneration %}{% else %}{{ m.content }}{% endif %}\n{% endfor %}"
    ),
    # Whitespace: a `-` strips only the text right after its tag, even when another tag
    # follows at once; \r\n becomes \n; one final newline of the template is dropped.
    "strip_then_tag": (
        "{{ 'A' -}}{{ 'B' }}  C\n{% if true -%}\n{{ 'X' }}\n{% endif %}\n"
        "{%- for m in messages -%}{# c -#}{{ m.role[0] }} {% endfor %} end\n\n"
    ),
    "crlf_and_final_newline": "A\r\nB{% if true %}\r\nC{% endif %}\r\n  {{ 'D' }}\r\n\r\n",
    "loop_controls": (
        "{% for i in range(5) %}{% if i == 3 %}{% break %}{% endif %}{% if i == 1 %}{% continue %}{% endif %}{{ i }}{% endfor %} "
        "{% for i in range(3) %}{% for j in range(3) %}{% if j == 1 %}{% break %}{% endif %}{{ i }}{{ j }} {% endfor %}{% endfor %}"
        "{% for i in [1, 2] %}{{ i }}{% if i == 2 %}{% break %}{% endif %}{% else %}E{% endfor %} "
        "{% for i in [1, 2] %}{{ i }}{% if i == 1 %}{% break %}{% endif %}{% else %}E{% endfor %} "
        "{% for i in [1, 2] %}{{ i }}{% continue %}{% else %}E{% endfor %} "
        "{% for m in messages %}{% if m.role == 'system' %}{% continue %}{% endif %}{{ loop.index }}{% if m.role == 'assistant' %}{% break %}{% endif %}{% endfor %}"
    ),
}


def main():
    tok = PreTrainedTokenizerFast(tokenizer_file=QWEN_TOKENIZER, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    out = {
        "description": "chat-template snippets rendered by transformers apply_chat_template(tokenize=False, "
                       "add_generation_prompt=False) with the qwen2-style fixture tokenizer",
        "special_tokens_map": dict(tok.special_tokens_map),
        "versions": {"python": platform.python_version(), "transformers": transformers.__version__,
                     "jinja2": jinja2.__version__},
        "cases": [],
    }
    for name, template in CASES.items():
        rendered = tok.apply_chat_template(MESSAGES, chat_template=template, tokenize=False, add_generation_prompt=False)
        out["cases"].append({"name": name, "template": template, "messages": MESSAGES, "rendered": rendered})
    with open(os.path.join(OUT, "jinja_reference.json"), "w") as f:
        json.dump(out, f, indent=1, ensure_ascii=False)
        f.write("\n")
    for c in out["cases"]:
        print(c["name"], repr(c["rendered"]))


if __name__ == "__main__":
    main()
