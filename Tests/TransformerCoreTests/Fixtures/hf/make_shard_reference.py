#!/usr/bin/env python3
"""Reference sharding of a tiny GPT-2 state dict using huggingface_hub's splitter.

huggingface_hub >= 1.0 no longer ships split_numpy_state_dict_into_shards; it only has the
generic split_state_dict_into_shards_factory. We call that with exactly what the old numpy
wrapper passed: get_storage_size=tensor.nbytes, no storage-id function, default pattern
"model{suffix}.safetensors". If the numpy wrapper exists (older versions), it is used instead.

The tensors are those rlhf export writes for Fixtures/hf/tiny-gpt2; ModelFolderTests checks that
its sharded export with a 20000-byte limit gives this weight_map and total_size. Regenerate with
`pip install numpy huggingface_hub` and `python3 make_shard_reference.py` (shard_reference.json
was written with huggingface_hub 2.4.0; 0.36.2 gives the same).
"""
import json
import os

import numpy as np
import huggingface_hub
from huggingface_hub import constants
from huggingface_hub.serialization import split_state_dict_into_shards_factory

MAX_SHARD_SIZE = 20000
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shard_reference.json")  # beside this script

N_EMBD, VOCAB, N_POS, N_LAYER = 32, 700, 64, 2


def specs():
    yield "transformer.wte.weight", (VOCAB, N_EMBD)
    yield "transformer.wpe.weight", (N_POS, N_EMBD)
    for l in range(N_LAYER):
        p = f"transformer.h.{l}."
        yield p + "ln_1.weight", (N_EMBD,)
        yield p + "ln_1.bias", (N_EMBD,)
        yield p + "attn.c_attn.weight", (N_EMBD, 3 * N_EMBD)
        yield p + "attn.c_attn.bias", (3 * N_EMBD,)
        yield p + "attn.c_proj.weight", (N_EMBD, N_EMBD)
        yield p + "attn.c_proj.bias", (N_EMBD,)
        yield p + "ln_2.weight", (N_EMBD,)
        yield p + "ln_2.bias", (N_EMBD,)
        yield p + "mlp.c_fc.weight", (N_EMBD, 4 * N_EMBD)
        yield p + "mlp.c_fc.bias", (4 * N_EMBD,)
        yield p + "mlp.c_proj.weight", (4 * N_EMBD, N_EMBD)
        yield p + "mlp.c_proj.bias", (N_EMBD,)
    yield "transformer.ln_f.weight", (N_EMBD,)
    yield "transformer.ln_f.bias", (N_EMBD,)


def build_state_dict():
    sd = {}  # dict preserves insertion order; the splitter iterates in this order
    offset = 0
    for name, shape in specs():
        n = int(np.prod(shape))
        # each tensor is its own fresh array with distinct values -> no shared storage
        sd[name] = np.arange(offset, offset + n, dtype=np.float32).reshape(shape)
        offset += n
    return sd


def split(sd):
    try:  # huggingface_hub < 1.0
        from huggingface_hub import split_numpy_state_dict_into_shards
    except ImportError:
        split_numpy_state_dict_into_shards = None
    if split_numpy_state_dict_into_shards is not None:
        return split_numpy_state_dict_into_shards(sd, max_shard_size=MAX_SHARD_SIZE), \
            "split_numpy_state_dict_into_shards"
    return split_state_dict_into_shards_factory(
        sd,
        max_shard_size=MAX_SHARD_SIZE,
        filename_pattern=constants.SAFETENSORS_WEIGHTS_FILE_PATTERN,  # "model{suffix}.safetensors"
        get_storage_size=lambda t: t.nbytes,
    ), "split_state_dict_into_shards_factory(get_storage_size=nbytes)"


def main():
    sd = build_state_dict()
    res, fn = split(sd)
    out = {
        "max_shard_size": MAX_SHARD_SIZE,
        "huggingface_hub_version": huggingface_hub.__version__,
        "splitter": fn,
        "total_size": res.metadata["total_size"],
        "weight_map": res.tensor_to_filename,
        "shards": list(res.filename_to_tensors.values()),
        "shard_files": list(res.filename_to_tensors.keys()),
        "shard_sizes": [sum(sd[k].nbytes for k in names) for names in res.filename_to_tensors.values()],
    }
    with open(OUT, "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
