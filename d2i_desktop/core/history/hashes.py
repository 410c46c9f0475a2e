"""Full sha256 of files (model weights, LoRAs, inputs), computed once per file version.

A file is known again by its absolute path, size and modification time; the digests are kept in
`hashes.json` in the app-data folder, so a multi-gigabyte model is hashed once, not at every picture.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import threading
from pathlib import Path

from ..files.app_data import locked, read_json
from ..paths import data_dir

_lock = threading.Lock()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _valid(data) -> bool:
    return isinstance(data, dict) and all(
        isinstance(value, list) and len(value) == 3 and isinstance(value[2], str) for value in data.values())


class HashCache:
    """sha256 of files, remembered by (path, size, mtime) in a JSON file."""

    def __init__(self, path: Path | None = None):
        self.path = Path(path) if path else data_dir() / "hashes.json"

    def sha256(self, path: str | Path) -> str:
        path = Path(path).resolve()
        stat = path.stat()
        key, stamp = str(path), [stat.st_size, stat.st_mtime_ns]
        with _lock:
            known = read_json(self.path, "The file hash cache", _valid) or {}
        if key in known and known[key][:2] == stamp:
            return known[key][2]
        digest = _sha256_file(path)
        with _lock, locked(self.path):
            known = read_json(self.path, "The file hash cache", _valid) or {}
            known[key] = [*stamp, digest]
            self._write(known)
        return digest

    def folder_sha256(self, folder: str | Path) -> tuple[str, dict[str, str]]:
        """One digest for every file under `folder` (by relative path), and each file's own digest."""
        folder = Path(folder)
        files = sorted(p for p in folder.rglob("*") if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts))
        digests = {p.relative_to(folder).as_posix(): self.sha256(p) for p in files}
        combined = sha256_bytes("".join(f"{name}\0{digest}\n" for name, digest in digests.items()).encode())
        return combined, digests

    def _write(self, known: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temp = self.path.with_name(f".d2i-{secrets.token_hex(6)}.json.tmp")
        temp.write_text(json.dumps(known), encoding="utf-8")
        os.replace(temp, self.path)
