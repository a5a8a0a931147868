#!/usr/bin/env python3
"""A local stand-in for the Hugging Face Hub, for rlhf's tests (Python's standard library only).

Usage: local_hub.py SOURCE_DIR [--log FILE]

Serves on 127.0.0.1 at a free port, printed as the first line of stdout ("port N"). The model
repositories below all hold the files of SOURCE_DIR (a model folder with sharded safetensors
weights), plus a tokenizer_config.json, a README.md, and pickled weights that rlhf must never ask
for (pytorch_model.bin, original/consolidated.00.pth). *.safetensors, *.bin and *.pth are large
(LFS) files; the others are kept "in git".

  tiny/llama    behaves as the Hub does
  tiny/gated    answers 401 unless the request carries "Authorization: Bearer hf_test_token"
  tiny/cut      the first GET of each .safetensors file is cut (connection closed) halfway
  tiny/corrupt  model-00002-of-00003.safetensors is served with one byte changed
  tiny/slow     the storage sends half of each .safetensors file, then nothing for 30 s
  tiny/missing  the listing names model-00003-of-00003.safetensors, but resolve answers 404
  tiny/old-name a renamed repository: every API and resolve request is redirected (307, same
                host) to tiny/llama's
  tiny/throttled  the storage pauses 0.5 s halfway through each .safetensors file (so that
                concurrent pulls overlap)
  anything else 404 (RepoNotFound)

Endpoints, as the Hub's:
  GET  /api/models/ORG/NAME/revision/REV[?blobs=true]   {"id", "sha", "siblings": [...]}
  GET  /api/models/ORG/NAME/tree/REV[?recursive=...]     [{"type", "oid", "size", "path", "lfs"}]
  HEAD|GET /ORG/NAME/resolve/REV/PATH   small files: 200 with ETag (git blob id), X-Repo-Commit;
        large files: 302 to http://localhost:PORT/storage/ORG/NAME/SHA256 (another host name,
        as the Hub's storage is) with X-Repo-Commit, X-Linked-Etag, X-Linked-Size
  HEAD|GET /storage/ORG/NAME/SHA256      the bytes, with Range support (206, Content-Range)
  GET  /_log                             every request so far: method, host, path, range and
                                         whether an Authorization header came
REV is "main" or the repository's commit id; any other revision is 404 (RevisionNotFound).
"""
import hashlib
import json
import os
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOKEN = "hf_test_token"
REPOS = ["tiny/llama", "tiny/gated", "tiny/cut", "tiny/corrupt", "tiny/slow", "tiny/missing", "tiny/throttled"]
TOKENIZER_CONFIG = json.dumps(
    {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<|begin_of_text|>",
        "eos_token": "<|eot_id|>",
        "model_max_length": 131072,
        "clean_up_tokenization_spaces": True,
    },
    indent=2,
).encode()


def git_blob_id(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def is_lfs(path):
    return path.endswith((".safetensors", ".bin", ".pth"))


def build_repo(name, source):
    files = {}
    for entry in sorted(os.listdir(source)):
        with open(os.path.join(source, entry), "rb") as f:
            files[entry] = f.read()
    files["tokenizer_config.json"] = TOKENIZER_CONFIG
    files["README.md"] = b"---\nlicense: apache-2.0\n---\n# %s\nA tiny test model.\n" % name.encode()
    files["pytorch_model.bin"] = b"PICKLE" * 100
    files["original/consolidated.00.pth"] = b"PICKLE" * 50
    commit = hashlib.sha1(name.encode() + b"".join(hashlib.sha256(v).digest() for v in files.values())).hexdigest()
    return {"commit": commit, "files": files}


class Hub:
    def __init__(self, source):
        self.repos = {name: build_repo(name, source) for name in REPOS}
        self.log = []
        self.lock = threading.Lock()
        self.cut_done = set()
        self.port = 0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hub = None

    def log_message(self, *args):
        pass

    def record(self):
        with self.hub.lock:
            self.hub.log.append(
                {
                    "method": self.command,
                    "host": self.headers.get("Host", ""),
                    "path": self.path,
                    "authorization": self.headers.get("Authorization") is not None,
                    "range": self.headers.get("Range"),
                }
            )

    def send(self, status, body=b"", headers=None, head=False):
        self.send_response(status)
        headers = dict(headers or {})
        headers.setdefault("Content-Length", str(len(body)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if not head and body:
            self.wfile.write(body)

    def error(self, status, code, message, head=False, extra=None):
        headers = {"Content-Type": "application/json", "X-Error-Code": code, "X-Error-Message": message}
        headers.update(extra or {})
        self.send(status, json.dumps({"error": message}).encode(), headers, head)

    def do_HEAD(self):
        self.handle_any(head=True)

    def do_GET(self):
        self.handle_any(head=False)

    def handle_any(self, head):
        self.record()
        url = urllib.parse.urlsplit(self.path)
        parts = [urllib.parse.unquote(p) for p in url.path.split("/")[1:]]
        if parts == ["_log"]:
            with self.hub.lock:
                body = json.dumps(self.hub.log).encode()
            return self.send(200, body, {"Content-Type": "application/json"}, head)
        if "tiny/old-name" in url.path:
            location = self.path.replace("tiny/old-name", "tiny/llama")
            return self.send(307, b"", {"Location": location}, head)
        if len(parts) >= 5 and parts[0] == "api" and parts[1] == "models":
            return self.api(parts[2] + "/" + parts[3], parts[4:], head)
        if len(parts) >= 4 and parts[0] == "storage":
            return self.storage(parts[1] + "/" + parts[2], parts[3], head)
        if len(parts) >= 5 and parts[2] == "resolve":
            return self.resolve(parts[0] + "/" + parts[1], parts[3], "/".join(parts[4:]), head)
        self.error(404, "RepoNotFound", "Repository not found", head)

    def repo(self, name, head):
        repo = self.hub.repos.get(name)
        if repo is None:
            self.error(404, "RepoNotFound", "Repository not found", head)
            return None
        if name == "tiny/gated" and self.headers.get("Authorization") != "Bearer " + TOKEN:
            self.error(401, "GatedRepo", "Access to model tiny/gated is restricted. You must have access to it and be authenticated.", head)
            return None
        return repo

    def revision_ok(self, repo, rev, head):
        if rev in ("main", repo["commit"]):
            return True
        self.error(404, "RevisionNotFound", "Invalid rev id: " + rev, head)
        return False

    def api(self, name, rest, head):
        repo = self.repo(name, head)
        if repo is None:
            return
        kind, rev = rest[0], "/".join(rest[1:])
        if not self.revision_ok(repo, rev, head):
            return
        if kind == "revision":
            siblings = []
            for path, data in repo["files"].items():
                s = {"rfilename": path, "size": len(data), "blobId": git_blob_id(data)}
                if is_lfs(path):
                    s["lfs"] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
                siblings.append(s)
            body = {"id": name, "modelId": name, "sha": repo["commit"], "private": False, "gated": name == "tiny/gated" and "manual",
                    "disabled": False, "tags": [], "siblings": siblings}
        elif kind == "tree":
            body = []
            for path, data in repo["files"].items():
                e = {"type": "file", "oid": git_blob_id(data), "size": len(data), "path": path}
                if is_lfs(path):
                    e["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
                body.append(e)
            body.append({"type": "directory", "oid": "0" * 40, "size": 0, "path": "original"})
        else:
            return self.error(404, "EntryNotFound", "Unknown API", head)
        self.send(200, json.dumps(body).encode(), {"Content-Type": "application/json"}, head)

    def resolve(self, name, rev, path, head):
        repo = self.repo(name, head)
        if repo is None or not self.revision_ok(repo, rev, head):
            return
        data = repo["files"].get(path)
        commit = {"X-Repo-Commit": repo["commit"]}
        if data is None or (name == "tiny/missing" and path == "model-00003-of-00003.safetensors"):
            return self.error(404, "EntryNotFound", "Entry not found", head, commit)
        if is_lfs(path):
            sha = hashlib.sha256(data).hexdigest()
            location = "http://localhost:%d/storage/%s/%s" % (self.hub.port, name, sha)
            headers = dict(commit)
            headers.update({"Location": location, "X-Linked-Etag": '"%s"' % sha, "X-Linked-Size": str(len(data)),
                            "ETag": '"%s"' % git_blob_id(data)})
            return self.send(302, b"", headers, head)
        headers = dict(commit)
        headers.update({"ETag": '"%s"' % git_blob_id(data), "Content-Type": "application/octet-stream"})
        self.send(200, data, headers, head)

    def storage(self, name, sha, head):
        repo = self.hub.repos.get(name)
        found = [(p, d) for p, d in (repo or {"files": {}})["files"].items() if is_lfs(p) and hashlib.sha256(d).hexdigest() == sha]
        if not found:
            return self.error(404, "EntryNotFound", "No such object", head)
        path, data = found[0]
        if name == "tiny/corrupt" and path == "model-00002-of-00003.safetensors":
            data = data[:1000] + bytes([data[1000] ^ 0xFF]) + data[1001:]
        start, status = 0, 200
        rng = self.headers.get("Range")
        headers = {"ETag": '"%s"' % sha, "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
        if rng and rng.startswith("bytes=") and rng.endswith("-"):
            start = int(rng[len("bytes="):-1])
            if start >= len(data):
                return self.send(416, b"", {"Content-Range": "bytes */%d" % len(data)}, head)
            status = 206
            headers["Content-Range"] = "bytes %d-%d/%d" % (start, len(data) - 1, len(data))
        body = data[start:]
        headers["Content-Length"] = str(len(body))
        if head:
            return self.send(status, b"", headers, True)
        key = (name, path)
        if name == "tiny/cut" and path.endswith(".safetensors") and key not in self.hub.cut_done:
            self.hub.cut_done.add(key)
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        if name in ("tiny/slow", "tiny/throttled") and path.endswith(".safetensors"):
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            if name == "tiny/slow":
                time.sleep(30)
                self.close_connection = True
                return
            time.sleep(0.5)
            self.wfile.write(body[len(body) // 2 :])
            return
        self.send(status, body, headers)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    hub = Hub(sys.argv[1])
    Handler.hub = hub
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    hub.port = server.server_address[1]
    print("port %d" % hub.port, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
