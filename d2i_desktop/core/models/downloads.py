"""Downloading a model into the Hugging Face cache, through huggingface_hub, with progress,
cancel and resume.

The hub library's own `hf_hub_download` throws away a half-downloaded file, so for multi-GB
weights this module drives the library's `http_get` itself: bytes go to `blobs/<etag>.incomplete`
in the cache, and a later download picks up where that file ends. The finished cache has the
layout the hub library writes (blobs, snapshots/<commit>/..., refs/<branch>), so any tool finds it.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import os
import shutil
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import Cancelled, ModelError
from .hf_cache import hf_cache_dir, repo_folder

_CONFIG_PATTERNS = ("model_index.json", "*/config.json", "*/*_config.json", "tokenizer/*.txt", "tokenizer/*.json")
_SKIPPED_PARTS = ("safety_checker",)
_DISK_MARGIN = 200 * 1024 * 1024
_CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class RemoteFile:
    path: str
    size: int


@dataclass(frozen=True)
class DownloadProgress:
    done_bytes: int
    total_bytes: int
    bytes_per_second: float
    seconds_left: float | None
    current_file: str

    @property
    def fraction(self) -> float:
        return self.done_bytes / self.total_bytes if self.total_bytes else 0.0

    def text(self) -> str:
        left = "" if self.seconds_left is None else f" · {format_duration(self.seconds_left)} left"
        return (f"{format_bytes(self.done_bytes)} of {format_bytes(self.total_bytes)}"
                f" · {format_bytes(self.bytes_per_second)}/s{left}")


def format_bytes(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(count) < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} GB"


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def select_files(files: list[RemoteFile], variant: str | None = "fp16") -> list[RemoteFile]:
    """Configs, tokenizer and one set of weights per part: the variant's safetensors when there are some."""
    chosen = [f for f in files if any(fnmatch.fnmatch(f.path, p) for p in _CONFIG_PATTERNS)]
    parts: dict[str, list[RemoteFile]] = {}
    for f in files:
        folder, _, name = f.path.partition("/")
        if name and "/" not in name and folder not in _SKIPPED_PARTS and name.endswith((".safetensors", ".bin")):
            parts.setdefault(folder, []).append(f)
    for weights in parts.values():
        def pick(suffix: str, want_variant: bool) -> list[RemoteFile]:
            return [f for f in weights if f.path.endswith(suffix)
                    and (f".{variant}." in f.path or f".{variant}-" in f.path) == want_variant]
        for suffix, want_variant in ((".safetensors", True), (".safetensors", False), (".bin", True), (".bin", False)):
            if (want_variant and not variant) or not pick(suffix, want_variant):
                continue
            chosen += pick(suffix, want_variant)
            break
    return sorted({f.path: f for f in chosen}.values(), key=lambda f: f.path)


class _Tracker:
    """Adds up bytes across files; rate over the last few seconds; cancels from inside the transfer."""

    def __init__(self, total: int, on_progress: Callable[[DownloadProgress], None] | None,
                 cancel: threading.Event | None, every: float = 0.1):
        self.total, self.done, self.file = total, 0, ""
        self.on_progress, self.cancel, self.every = on_progress, cancel, every
        self.samples: deque[tuple[float, int]] = deque()
        self.last_report = 0.0

    def check_cancel(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled()

    def add(self, count: int, counts_for_speed: bool = True) -> None:
        self.done += count
        now = time.monotonic()
        if counts_for_speed:
            self.samples.append((now, self.done))
        while len(self.samples) > 2 and now - self.samples[0][0] > 5:
            self.samples.popleft()
        self.check_cancel()
        if now - self.last_report >= self.every:
            self.report(now)

    def report(self, now: float | None = None) -> None:
        now = now or time.monotonic()
        self.last_report = now
        if self.on_progress is None:
            return
        speed = 0.0
        if len(self.samples) >= 2 and self.samples[-1][0] > self.samples[0][0]:
            speed = (self.samples[-1][1] - self.samples[0][1]) / (self.samples[-1][0] - self.samples[0][0])
        left = (self.total - self.done) / speed if speed > 0 else None
        self.on_progress(DownloadProgress(self.done, self.total, speed, left, self.file))

    def bar_class(self):
        tracker = self

        class Bar:  # the part of tqdm's interface that huggingface_hub's http_get uses
            def __init__(self, *args, **kwargs):
                pass

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return False

            def update(self, n=1):
                tracker.add(int(n or 0))

            def close(self):
                pass

        return Bar


@contextlib.contextmanager
def _hub_online():
    """The app keeps the hub library offline (core/__init__.py); a download is the one place it goes online."""
    from huggingface_hub import constants

    previous = constants.HF_HUB_OFFLINE, constants.DOWNLOAD_CHUNK_SIZE
    constants.HF_HUB_OFFLINE = False
    # The library reads 10 MB between progress updates; 1 MB keeps the bar moving and Cancel prompt.
    constants.DOWNLOAD_CHUNK_SIZE = min(previous[1], _CHUNK_BYTES)
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE, constants.DOWNLOAD_CHUNK_SIZE = previous


def _user_error(exc: Exception, repo_id: str) -> ModelError:
    import httpx2
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, OfflineModeIsEnabled, RepositoryNotFoundError

    if isinstance(exc, (httpx2.TransportError, OfflineModeIsEnabled)):
        return ModelError("Cannot reach the Hugging Face Hub: the computer seems to be offline.",
                          "Connect to the internet and try again; what is already downloaded is kept.")
    if isinstance(exc, (GatedRepoError, RepositoryNotFoundError)):
        return ModelError(f"'{repo_id}' was not found on the Hugging Face Hub, or it needs a login.",
                          "Check the name; for gated models log in with 'hf auth login' first.")
    if isinstance(exc, HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else "?"
        return ModelError(f"The Hugging Face Hub answered with an error ({status}).",
                          "Try again later; what is already downloaded is kept.")
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return ModelError("The disk is full.", "Free some space and download again; it resumes where it stopped.")
    return ModelError(f"The download failed: {str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__}",
                      "Try again; it resumes where it stopped.")


def download_model(repo_id: str, *, variant: str | None = "fp16", revision: str = "main",
                   cache_dir: str | Path | None = None, endpoint: str | None = None, token: str | None = None,
                   on_progress: Callable[[DownloadProgress], None] | None = None,
                   cancel: threading.Event | None = None) -> Path:
    """Fetch what a depth-to-image pipeline needs from `repo_id` into the cache; returns the snapshot folder.

    Raises Cancelled when `cancel` is set (partial files are kept for a resume) and ModelError on failure.
    """
    cache_dir = Path(cache_dir) if cache_dir else hf_cache_dir()
    storage = repo_folder(repo_id, cache_dir)
    try:
        with _hub_online():
            return _download(repo_id, variant, revision, storage, endpoint, token, on_progress, cancel)
    except (Cancelled, ModelError):
        raise
    except Exception as exc:  # network, HTTP and disk errors all reach the user as one clear line
        raise _user_error(exc, repo_id) from exc


def _download(repo_id, variant, revision, storage: Path, endpoint, token, on_progress, cancel) -> Path:
    from huggingface_hub import HfApi

    tracker = _Tracker(0, on_progress, cancel)
    tracker.check_cancel()
    info = HfApi(endpoint=endpoint, token=token).model_info(repo_id, revision=revision, files_metadata=True)
    files = select_files([RemoteFile(s.rfilename, s.size or 0) for s in info.siblings or []], variant)
    if not any(f.path == "model_index.json" for f in files):
        raise ModelError(f"'{repo_id}' is not a diffusers model (it has no model_index.json).",
                         "Download a diffusers SD2-depth model such as stabilityai/stable-diffusion-2-depth.")
    snapshot = storage / "snapshots" / info.sha
    pending = [f for f in files if not (snapshot / f.path).exists()]
    tracker.total = sum(f.size for f in files)
    tracker.add(tracker.total - sum(f.size for f in pending), counts_for_speed=False)
    storage.mkdir(parents=True, exist_ok=True)
    needed = sum(f.size for f in pending) + _DISK_MARGIN
    if shutil.disk_usage(storage).free < needed:
        raise ModelError(f"Not enough disk space: the download needs {needed / 1e9:.1f} GB in {storage.parent}.",
                         "Free some space, or point HF_HUB_CACHE at a larger disk, then download again.")
    for remote in pending:
        _fetch(repo_id, remote, info.sha, storage, snapshot, endpoint, token, tracker)
    if revision != info.sha:
        (storage / "refs").mkdir(exist_ok=True)
        (storage / "refs" / revision).write_text(info.sha, encoding="utf-8")
    tracker.report()
    return snapshot


def _fetch(repo_id, remote: RemoteFile, commit: str, storage: Path, snapshot: Path, endpoint, token, tracker: _Tracker) -> None:
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.file_download import http_get
    from huggingface_hub.utils import build_hf_headers

    tracker.check_cancel()
    tracker.file = remote.path
    meta = get_hf_file_metadata(hf_hub_url(repo_id, remote.path, revision=commit, endpoint=endpoint),
                                token=token, endpoint=endpoint)
    if not meta.etag:
        raise ModelError(f"The server gave no checksum (ETag) for {remote.path}.", "Try again later, or use another mirror.")
    blob = storage / "blobs" / meta.etag
    if not blob.exists():
        blob.parent.mkdir(parents=True, exist_ok=True)
        partial = blob.with_name(meta.etag + ".incomplete")
        if partial.exists() and meta.size is not None and partial.stat().st_size > meta.size:
            partial.unlink()  # not a prefix of this file
        with partial.open("ab") as handle:
            resumed = handle.tell()
            tracker.add(resumed, counts_for_speed=False)
            http_get(meta.location, handle, resume_size=resumed, headers=build_hf_headers(token=token),
                     expected_size=meta.size, tqdm_class=tracker.bar_class())
        os.replace(partial, blob)
    else:
        tracker.add(remote.size, counts_for_speed=False)
    _link(blob, snapshot / remote.path)


def _link(blob: Path, pointer: Path) -> None:
    """snapshots/<commit>/<path> -> ../../blobs/<etag>, as the hub library links them (a copy where links are not allowed)."""
    pointer.parent.mkdir(parents=True, exist_ok=True)
    pointer.unlink(missing_ok=True)
    try:
        pointer.symlink_to(os.path.relpath(blob, pointer.parent))
    except OSError:
        shutil.copyfile(blob, pointer)
