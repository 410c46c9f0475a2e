"""A small stand-in for the Hugging Face Hub on 127.0.0.1, serving one model folder.

It answers the few endpoints huggingface_hub uses for a download: model info with file sizes,
and HEAD/GET on resolve URLs with ETag, X-Repo-Commit, Content-Length and byte ranges. It is
here because tests cannot reach the internet; it stops on its own after `lifetime` seconds.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

DEMO_REPO = "example/depth-demo"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


class LocalHub:
    def __init__(self, repo_id: str, folder: Path, lifetime: float = 120.0):
        self.repo_id, self.folder = repo_id, folder
        self.files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
        self.etags = {path: hashlib.sha256(data).hexdigest() for path, data in self.files.items()}
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Range header)
        self.fail_with: int | None = None  # answer every request with this status
        self.delay_per_piece = 0.0  # seconds between 16 KB pieces of a body, to make transfers observable
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.timer = threading.Timer(lifetime, self.stop)
        self.timer.daemon = True

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> "LocalHub":
        self.thread.start()
        self.timer.start()
        return self

    def stop(self) -> None:
        self.timer.cancel()
        self.server.shutdown()
        self.server.server_close()

    def _handler(self):
        hub = self
        info_path = re.compile(rf"^/api/models/{re.escape(hub.repo_id)}/revision/([^/?]+)")
        resolve_path = re.compile(rf"^/{re.escape(hub.repo_id)}/resolve/([^/]+)/(.+)$")

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _refuse(self) -> bool:
                if hub.fail_with is None:
                    return False
                self.send_response(hub.fail_with)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return True

            def do_GET(self):
                self._answer(head=False)

            def do_HEAD(self):
                self._answer(head=True)

            def _answer(self, head: bool):
                hub.requests.append((self.command, self.path, self.headers.get("Range")))
                if self._refuse():
                    return
                path = self.path.split("?", 1)[0]
                if match := info_path.match(path):
                    body = json.dumps({
                        "id": hub.repo_id, "modelId": hub.repo_id, "sha": COMMIT, "private": False,
                        "siblings": [{"rfilename": p, "size": len(d), "blobId": hub.etags[p][:40]} for p, d in hub.files.items()],
                    }).encode()
                    return self._send(200, body, {"Content-Type": "application/json"}, head)
                if path.startswith("/api/models/"):  # what the Hub answers for a repository it does not have
                    return self._send(401, b"", {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"}, head)
                match = resolve_path.match(path)
                if not match or match.group(2) not in hub.files:
                    return self._send(404, b"", {"X-Error-Code": "EntryNotFound"}, head)
                data, etag = hub.files[match.group(2)], hub.etags[match.group(2)]
                headers = {"ETag": f'"{etag}"', "X-Repo-Commit": COMMIT, "Accept-Ranges": "bytes"}
                start = 0
                if (wanted := self.headers.get("Range")) and (m := re.match(r"bytes=(\d+)-", wanted)):
                    start = int(m.group(1))
                    headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
                self._send(206 if start else 200, data[start:], headers, head)

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
