#!/usr/bin/env python3
"""Checks that rlhf's Hub cache and huggingface_hub's are interchangeable, both ways.

Not run by the tests (it needs huggingface_hub, a PyPI package). Run it from the repository's
root after `swift build -c release`, with a Python that has huggingface_hub:

    python3 -m venv /tmp/venv-hub && /tmp/venv-hub/bin/pip install huggingface_hub
    /tmp/venv-hub/bin/python Tests/HubTests/Fixtures/check_python_cache.py [--rlhf .build/release/rlhf]

It starts local_hub.py, then:
  1. `rlhf pull tiny/llama` into cache R, and huggingface_hub's snapshot_download of the same
     files into cache P, both from the local Hub (HF_ENDPOINT);
  2. compares the two caches: refs/main, the snapshot's entries, each link's target, the blobs'
     names and bytes;
  3. stops the local Hub, and with HF_HUB_OFFLINE=1: huggingface_hub finds the model in cache R
     (snapshot_download and hf_hub_download with local_files_only=True, identical bytes), and
     rlhf finds it in cache P (`rlhf pull` and `rlhf tokenize --model tiny/llama`);
  4. huggingface_hub's lock (filelock on .locks/models--tiny--llama/ETAG.lock) held by Python
     makes an rlhf pull of that blob wait until it is released;
  5. where transformers is importable, AutoConfig and AutoTokenizer load it from cache R offline.
Prints one line per check and "N passed, N failed" at the end; exits 1 on any failure.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
SOURCE = os.path.join(ROOT, "Tests", "TransformerCoreTests", "Fixtures", "hf", "arch", "llama-tiny")
FILES = ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors.index.json",
         "model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors"]
REPO = "tiny/llama"
results = []


def check(name, ok, detail=""):
    results.append(ok)
    print(("ok    " if ok else "FAIL  ") + name + ("" if ok or not detail else ": " + detail), flush=True)


def python(code, env):
    """Runs huggingface_hub in a fresh interpreter, so that HF_* variables are read at its import."""
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit("python failed:\n" + r.stderr)
    return r.stdout.strip().splitlines()[-1]


def layout(cache):
    """refs, snapshot entries with their link targets, and blobs with their bytes."""
    repo = os.path.join(cache, "models--tiny--llama")
    refs = {}
    for d, _, files in os.walk(os.path.join(repo, "refs")):
        for f in files:
            with open(os.path.join(d, f)) as fh:
                refs[os.path.relpath(os.path.join(d, f), os.path.join(repo, "refs"))] = fh.read()
    snaps = {}
    for commit in os.listdir(os.path.join(repo, "snapshots")):
        for f in sorted(os.listdir(os.path.join(repo, "snapshots", commit))):
            snaps[commit + "/" + f] = os.readlink(os.path.join(repo, "snapshots", commit, f))
    blobs = {}
    for b in os.listdir(os.path.join(repo, "blobs")):
        with open(os.path.join(repo, "blobs", b), "rb") as fh:
            blobs[b] = fh.read()
    return refs, snaps, blobs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rlhf", default=os.path.join(ROOT, ".build", "release", "rlhf"))
    args = ap.parse_args()
    import huggingface_hub

    print("huggingface_hub", huggingface_hub.__version__, "| rlhf", args.rlhf)
    tmp = tempfile.mkdtemp(prefix="hub-crosscheck-")
    cache_r, cache_p = os.path.join(tmp, "rlhf-cache"), os.path.join(tmp, "python-cache")
    server = subprocess.Popen([sys.executable, os.path.join(HERE, "local_hub.py"), SOURCE], stdout=subprocess.PIPE, text=True)
    port = int(server.stdout.readline().split()[1])
    base = dict(os.environ, HF_ENDPOINT="http://127.0.0.1:%d" % port, HF_HOME=os.path.join(tmp, "home"), HF_HUB_DISABLE_XET="1")
    base.pop("HF_TOKEN", None)
    base.pop("HF_HUB_OFFLINE", None)
    try:
        r = subprocess.run([args.rlhf, "pull", REPO], env=dict(base, HF_HUB_CACHE=cache_r), capture_output=True, text=True)
        check("rlhf pull into cache R", r.returncode == 0, r.stderr)
        snap_r = r.stdout.strip()
        snap_p = python(
            "from huggingface_hub import snapshot_download; print(snapshot_download(%r, allow_patterns=%r))" % (REPO, FILES),
            dict(base, HF_HUB_CACHE=cache_p))
        check("huggingface_hub snapshot_download into cache P", os.path.isdir(snap_p), snap_p)
        requests = json.loads(subprocess.run(["curl", "-s", "http://127.0.0.1:%d/_log" % port], capture_output=True, text=True).stdout or "[]")
        check("neither client asked for pickles", not any(x["path"].endswith((".bin", ".pth")) for x in requests))
        # The Python client's lock on a blob holds rlhf back until it is released.
        cache_l = os.path.join(tmp, "lock-cache")
        shard = [b for b in os.listdir(os.path.join(cache_r, "models--tiny--llama", "blobs")) if len(b) == 64][0]
        lock_path = os.path.join(cache_l, ".locks", "models--tiny--llama", shard + ".lock")
        holder = subprocess.Popen([sys.executable, "-c",
                                   "import sys, time; from huggingface_hub.utils import WeakFileLock\n"
                                   "with WeakFileLock(sys.argv[1]):\n    print('held', flush=True); time.sleep(3)", lock_path],
                                  stdout=subprocess.PIPE, text=True, env=base)
        holder.stdout.readline()
        started = time.time()
        r = subprocess.run([args.rlhf, "pull", REPO], env=dict(base, HF_HUB_CACHE=cache_l), capture_output=True, text=True)
        waited = time.time() - started
        holder.wait()
        check("rlhf waits on huggingface_hub's lock of a blob (%.1f s)" % waited,
              r.returncode == 0 and "waiting for it" in r.stderr and waited > 1.5, r.stderr)
    finally:
        server.terminate()
        server.wait()

    refs_r, snaps_r, blobs_r = layout(cache_r)
    refs_p, snaps_p, blobs_p = layout(cache_p)
    check("refs/main identical (%s)" % refs_r.get("main"), refs_r == refs_p, "%s vs %s" % (refs_r, refs_p))
    check("snapshot entries and link targets identical (%d)" % len(snaps_r), snaps_r == snaps_p,
          json.dumps({k: (snaps_r.get(k), snaps_p.get(k)) for k in set(snaps_r) | set(snaps_p) if snaps_r.get(k) != snaps_p.get(k)}))
    check("blob names identical (%d)" % len(blobs_r), sorted(blobs_r) == sorted(blobs_p), "%s vs %s" % (sorted(blobs_r), sorted(blobs_p)))
    check("blob bytes identical", all(blobs_r[k] == blobs_p.get(k) for k in blobs_r))
    check("same snapshot path inside each cache", os.path.relpath(snap_r, cache_r) == os.path.relpath(snap_p, cache_p),
          "%s vs %s" % (os.path.relpath(snap_r, cache_r), os.path.relpath(snap_p, cache_p)))

    offline = dict(base, HF_HUB_OFFLINE="1", HF_ENDPOINT="http://127.0.0.1:9")
    # huggingface_hub finds what rlhf pulled.
    found = python(
        "from huggingface_hub import snapshot_download; print(snapshot_download(%r, local_files_only=True))" % REPO,
        dict(offline, HF_HUB_CACHE=cache_r))
    check("huggingface_hub (offline) finds rlhf's snapshot", found == snap_r, "%s vs %s" % (found, snap_r))
    same = True
    for f in FILES:
        path = python(
            "from huggingface_hub import hf_hub_download; print(hf_hub_download(%r, %r, local_files_only=True))" % (REPO, f),
            dict(offline, HF_HUB_CACHE=cache_r))
        with open(path, "rb") as a, open(os.path.join(snap_p, f), "rb") as b:
            same = same and a.read() == b.read()
    check("hf_hub_download(local_files_only=True) of each file in rlhf's cache: bytes identical to Python's", same)
    # rlhf finds what huggingface_hub downloaded.
    r = subprocess.run([args.rlhf, "pull", REPO], env=dict(offline, HF_HUB_CACHE=cache_p), capture_output=True, text=True)
    check("rlhf pull (offline) finds huggingface_hub's snapshot", r.returncode == 0 and r.stdout.strip() == snap_p, r.stderr + r.stdout)
    r = subprocess.run([args.rlhf, "tokenize", "--model", REPO, "--text", "Hello world"], env=dict(offline, HF_HUB_CACHE=cache_p),
                       capture_output=True, text=True)
    check("rlhf tokenize --model tiny/llama (offline) from huggingface_hub's cache: %s" % r.stdout.strip(), r.returncode == 0, r.stderr)
    try:
        import transformers  # noqa: F401
    except ImportError:
        print("skip  transformers is not installed here: AutoConfig/AutoTokenizer not tried")
    else:
        out = python(
            "from transformers import AutoConfig, AutoTokenizer; c = AutoConfig.from_pretrained(%r); t = AutoTokenizer.from_pretrained(%r);"
            " print(c.model_type, t('Hello world').input_ids)" % (REPO, REPO), dict(offline, HF_HUB_CACHE=cache_r))
        check("transformers (offline) loads rlhf's cache: %s" % out, out.startswith("llama"))
    shutil.rmtree(tmp, ignore_errors=True)
    failed = results.count(False)
    print("%d passed, %d failed" % (len(results) - failed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
