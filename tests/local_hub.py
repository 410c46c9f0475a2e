"""Small stand-ins on 127.0.0.1 for the Hugging Face Hub (or a mirror of it) and for a web site that is not one.

`LocalHub` answers what huggingface_hub asks for a download, as the real Hub does: model info with
each file's size and `blobId` (the git sha1; for LFS files that of the pointer file) and, for weights
stored with LFS, `lfs: {sha256, size}`; HEAD/GET on resolve URLs with X-Repo-Commit, byte ranges, an
ETag, and for LFS files X-Linked-Etag (the sha256) and X-Linked-Size. Repositories it does not hold
get 404 with X-Error-Code RepoNotFound. It is here because tests cannot reach the internet; the
servers stop on their own after `lifetime` seconds.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from huggingface_hub.utils.sha import git_hash

DEMO_REPO = "example/depth-demo"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
LFS_SUFFIXES = (".safetensors", ".bin", ".ckpt")  # what the Hub's default .gitattributes stores with LFS


class _Server:
    def __init__(self, handler, lifetime: float):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.timer = threading.Timer(lifetime, self.stop)
        self.timer.daemon = True

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self):
        self.thread.start()
        self.timer.start()
        return self

    def stop(self) -> None:
        self.timer.cancel()
        self.server.shutdown()
        self.server.server_close()


class ServedRepo:
    """One repository's files as the Hub describes them."""

    def __init__(self, repo_id: str, folder: Path, commit: str):
        self.repo_id, self.commit = repo_id, commit
        self.files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
        self.sha256 = {path: hashlib.sha256(data).hexdigest() for path, data in self.files.items()}
        self.lfs = {path for path in self.files if path.endswith(LFS_SUFFIXES)}
        # The name the client files each blob under: X-Linked-Etag (the sha256) for LFS files, ETag (the git sha1) for others.
        self.etags = {path: self.sha256[path] if path in self.lfs else git_hash(data) for path, data in self.files.items()}
        self.wrong_checksums: set[str] = set()  # files whose model info announces another content than the one served
        self.gated = False  # files answer 401 GatedRepo, as the Hub does for a gated repository without a login

    def pointer(self, path: str) -> bytes:
        return (f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.sha256[path]}\n"
                f"size {len(self.files[path])}\n").encode()

    def sibling(self, path: str) -> dict:
        data, wrong = self.files[path], path in self.wrong_checksums
        if path not in self.lfs:
            return {"rfilename": path, "size": len(data), "blobId": git_hash(data + b"changed" if wrong else data)}
        sha256 = hashlib.sha256(data + b"changed").hexdigest() if wrong else self.sha256[path]
        pointer = self.pointer(path)
        return {"rfilename": path, "size": len(data), "blobId": git_hash(pointer),
                "lfs": {"sha256": sha256, "size": len(data), "pointerSize": len(pointer)}}

    def info(self) -> dict:
        return {"id": self.repo_id, "modelId": self.repo_id, "sha": self.commit, "private": False,
                "gated": "auto" if self.gated else False, "siblings": [self.sibling(p) for p in self.files]}


class LocalHub(_Server):
    def __init__(self, repo_id: str, folder: Path, lifetime: float = 120.0):
        self.repos: dict[str, ServedRepo] = {}
        self.add_repo(repo_id, folder, COMMIT)
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Range header)
        self.fail_with: int | None = None  # answer every request with this status
        self.missing_status = 404  # the real Hub answers 401 instead when the request carries no token
        self.delay_per_piece = 0.0  # seconds between 16 KB pieces of a body, to make transfers observable
        super().__init__(self._handler(), lifetime)

    def add_repo(self, repo_id: str, folder: Path, commit: str | None = None) -> ServedRepo:
        commit = commit or hashlib.sha1(repo_id.encode()).hexdigest()
        self.repos[repo_id] = ServedRepo(repo_id, folder, commit)
        return self.repos[repo_id]

    @property
    def first(self) -> ServedRepo:
        return next(iter(self.repos.values()))

    @property
    def files(self) -> dict[str, bytes]:
        return self.first.files

    @property
    def etags(self) -> dict[str, str]:
        return self.first.etags

    def _handler(self):
        hub = self
        info_path = re.compile(r"^/api/models/([^/]+/[^/]+)(?:/revision/([^/?]+))?$")
        resolve_path = re.compile(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                self._answer(head=False)

            def do_HEAD(self):
                self._answer(head=True)

            def _answer(self, head: bool):
                hub.requests.append((self.command, self.path, self.headers.get("Range")))
                if hub.fail_with is not None:
                    return self._send(hub.fail_with, b"", {}, head)
                path = self.path.split("?", 1)[0]
                if match := info_path.match(path):
                    repo = hub.repos.get(match.group(1))
                    if repo is None:
                        return self._missing("RepoNotFound", "Repository not found", head)
                    return self._send(200, json.dumps(repo.info()).encode(), {"Content-Type": "application/json"}, head)
                match = resolve_path.match(path)
                repo = hub.repos.get(match.group(1)) if match else None
                if repo is None:
                    return self._missing("RepoNotFound", "Repository not found", head)
                if repo.gated:
                    return self._send(401, b'{"error": "Access restricted"}', {
                        "Content-Type": "application/json", "X-Error-Code": "GatedRepo",
                        "X-Error-Message": f"Access to model {repo.repo_id} is restricted. You must have access to it "
                                           "and be authenticated to access it. Please log in."}, head)
                name = match.group(3)
                if name not in repo.files:
                    return self._missing("EntryNotFound", "Entry not found", head)
                data = repo.files[name]
                headers = {"X-Repo-Commit": repo.commit, "Accept-Ranges": "bytes"}
                if name in repo.lfs:
                    headers.update({"ETag": f'"{git_hash(repo.pointer(name))}"', "X-Linked-Etag": f'"{repo.sha256[name]}"',
                                    "X-Linked-Size": str(len(data))})
                else:
                    headers["ETag"] = f'"{repo.etags[name]}"'
                start = 0
                if (wanted := self.headers.get("Range")) and (m := re.match(r"bytes=(\d+)-", wanted)):
                    start = int(m.group(1))
                    headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
                self._send(206 if start else 200, data[start:], headers, head)

            def _missing(self, code: str, message: str, head: bool):
                body = json.dumps({"error": message}).encode()
                self._send(hub.missing_status, body, {"Content-Type": "application/json", "X-Error-Code": code,
                                                      "X-Error-Message": message}, head)

            def _send(self, status: int, body: bytes, headers: dict, head: bool):
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if head:
                    return
                try:
                    for offset in range(0, len(body), 16384):
                        self.wfile.write(body[offset:offset + 16384])
                        if hub.delay_per_piece:
                            time.sleep(hub.delay_per_piece)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client cancelled

        return Handler


class HtmlSite(_Server):
    """A web server that answers every request with an HTML page: an address that is not a Hub."""

    def __init__(self, status: int = 200, lifetime: float = 60.0):
        self.requests: list[str] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_HEAD(self):
                self._page(head=True)

            def do_GET(self):
                self._page(head=False)

            def _page(self, head: bool):
                site.requests.append(self.path)
                body = b"<!doctype html><html><body><h1>Welcome</h1></body></html>"
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head:
                    self.wfile.write(body)

        super().__init__(Handler, lifetime)


def closed_port_endpoint() -> str:
    """The address of a port on this machine on which nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"
