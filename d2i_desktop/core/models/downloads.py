"""Downloading a model into the Hugging Face cache, through huggingface_hub, with progress, cancel, resume
and a checksum for every file.

The hub library's own `hf_hub_download` (huggingface_hub 2.4) writes each file to a temporary name of
its own and deletes it when a transfer stops, and writes refs/<branch> before the file is there: a
cancelled multi-GB download would start again from zero and leave a ref to an incomplete snapshot. So
this module asks the library for the model info and each file's metadata (public API) and lets its
`http_get` move the bytes into `blobs/<etag>.incomplete`, which a later download continues with a
Range request. Every file is checked against the sha256 (weights, stored with LFS) or git blob id
(the others) the Hub lists for it before it becomes a blob; the snapshot links and refs/<branch> are
written only once every file is there and checked. The finished cache has the layout the hub library
writes (blobs, snapshots/<commit>/..., refs/<branch>), so any tool finds it.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import shutil
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from ..depth.estimator_catalogue import estimator_spec
from ..errors import Cancelled, ModelError
from .catalogue import SD2_DEPTH_REPO, SD2_DEPTH_SINGLE_FILE, SD2_DEPTH_SOURCES, Source
from .hf_cache import hf_cache_dir, repo_folder
from .hub_endpoint import DownloadError, fetch_model_info, hub_error, hub_online, resolve_endpoint

_CONFIG_PATTERNS = {
    "pipeline": ("model_index.json", "*/config.json", "*/*_config.json", "tokenizer/*.txt", "tokenizer/*.json"),
    "transformers": ("config.json", "preprocessor_config.json"),
}
REPO_KINDS = tuple(_CONFIG_PATTERNS)  # "pipeline": diffusers (model_index.json); "transformers": one model at the top
_WEIGHT_SUFFIXES = (".safetensors", ".bin")
_SKIPPED_PARTS = ("safety_checker",)
_DISK_MARGIN = 200 * 1024 * 1024
_HASH_CHUNK_BYTES = 4 * 1024 * 1024
_REPORT_EVERY_S = 0.1


@dataclass(frozen=True)
class RemoteFile:
    path: str
    size: int
    sha256: str | None = None  # files stored with LFS (weights): the content's sha256
    git_sha1: str | None = None  # the other files: the git blob id

    @property
    def is_weights(self) -> bool:
        return self.path.endswith(_WEIGHT_SUFFIXES)


@dataclass(frozen=True)
class DownloadProgress:
    done_bytes: int
    total_bytes: int
    bytes_per_second: float
    seconds_left: float | None
    current_file: str
    checking: bool = False  # the file is being checked against its sha256

    @property
    def fraction(self) -> float:
        return self.done_bytes / self.total_bytes if self.total_bytes else 0.0

    def text(self) -> str:
        amount = f"{format_bytes(self.done_bytes)} of {format_bytes(self.total_bytes)}"
        if self.checking:
            return f"{amount} · checking {self.current_file}"
        left = "" if self.seconds_left is None else f" · {format_duration(self.seconds_left)} left"
        return f"{amount} · {format_bytes(self.bytes_per_second)}/s{left}"


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


# -- which files ----------------------------------------------------------------------------------
def _variant_of(name: str) -> str | None:
    """"fp16" for model.fp16.safetensors, model.fp16-00001-of-00002.safetensors and
    model.safetensors.index.fp16.json; None for plain weights and their index."""
    base = name.removesuffix(".json")
    base, _, after_index = base.partition(".index")
    if after_index:
        return after_index.lstrip(".")
    for suffix in _WEIGHT_SUFFIXES:
        base = base.removesuffix(suffix)
    return base.split(".", 1)[1].split("-")[0] if "." in base else None


def _is_index(name: str) -> bool:  # model.safetensors.index.json, diffusion_pytorch_model.safetensors.index.fp16.json
    return ".index." in name and name.endswith(".json")


def _weights_group(path: str, kind: str) -> str | None:
    """The folder whose one set of weights `path` belongs to, or None when it is not weights the app takes."""
    folder, _, name = path.rpartition("/")
    if not (name.endswith(_WEIGHT_SUFFIXES) or _is_index(name)):
        return None
    if kind == "pipeline":  # one set per part folder; single-file checkpoints at the top are not part of it
        return folder if folder and "/" not in folder and folder not in _SKIPPED_PARTS else None
    return "" if not folder and name.startswith(("model", "pytorch_model")) else None


def select_files(files: list[RemoteFile], variant: str | None = "fp16", kind: str = "pipeline") -> list[RemoteFile]:
    """What a `kind` of repository needs: its configs (and tokenizer) and one set of weights per part,
    the variant's safetensors when there are some, then plain safetensors, then .bin; shard indexes with them."""
    if kind not in _CONFIG_PATTERNS:
        raise ValueError(f"unknown kind of repository {kind!r}; one of {REPO_KINDS}")
    chosen = [f for f in files if any(fnmatch.fnmatch(f.path, p) for p in _CONFIG_PATTERNS[kind])]
    groups: dict[str, list[RemoteFile]] = {}
    for f in files:
        if (group := _weights_group(f.path, kind)) is not None:
            groups.setdefault(group, []).append(f)
    tiers = [(suffix, wanted) for suffix in _WEIGHT_SUFFIXES for wanted in dict.fromkeys((variant or None, None))]
    for group in groups.values():
        for suffix, wanted in tiers:
            matching = [f for f in group if _variant_of(f.path.rpartition("/")[2]) == wanted]
            weights = [f for f in matching if f.path.endswith(suffix)]
            if weights:
                chosen += weights + [f for f in matching if _is_index(f.path) and f"{suffix}.index" in f.path]
                break
    return sorted({f.path: f for f in chosen}.values(), key=lambda f: f.path)


def _require_layout(repo_id: str, kind: str, files: list[RemoteFile]) -> None:
    paths = {f.path for f in files}
    if kind == "pipeline" and "model_index.json" not in paths:
        raise DownloadError("wrong-kind", f"'{repo_id}' is not a diffusers model (it has no model_index.json).",
                            f"Download a diffusers SD2-depth model such as {SD2_DEPTH_REPO}.")
    if kind == "transformers" and not ("config.json" in paths and any(f.is_weights for f in files)):
        raise DownloadError("wrong-kind", f"'{repo_id}' is not a transformers model (it needs config.json and "
                                          "model.safetensors or pytorch_model.bin at its top).",
                            "Check the name: a depth estimator such as Intel/dpt-hybrid-midas.")


def _require_depth_unet(repo_id: str) -> Callable[[dict[str, Path]], None]:
    def check(configs: dict[str, Path]) -> None:
        try:
            unet = json.loads(configs["unet/config.json"].read_text(encoding="utf-8"))
        except (KeyError, OSError, ValueError) as exc:
            raise DownloadError("wrong-kind", f"'{repo_id}' has no readable UNet configuration (unet/config.json).",
                                f"Download a diffusers SD2-depth model such as {SD2_DEPTH_REPO}.") from exc
        if unet.get("in_channels") != 5:
            raise DownloadError("wrong-kind", f"'{repo_id}' is not a depth model: its UNet takes {unet.get('in_channels')} "
                                              "input channels, a depth model takes 5.",
                                f"Use {SD2_DEPTH_REPO} or another SD2-depth model.")

    return check


# -- progress -------------------------------------------------------------------------------------
class _Tracker:
    """Adds up bytes across files; rate over the last few seconds; cancels from inside the transfer."""

    def __init__(self, on_progress: Callable[[DownloadProgress], None] | None, cancel: threading.Event | None):
        self.total, self.done, self.file = 0, 0, ""
        self.on_progress, self.cancel = on_progress, cancel
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
        if now - self.last_report >= _REPORT_EVERY_S:
            self.report(now)

    def hashed(self) -> None:
        """A piece of the current file was checked: cancel, and say so now and then."""
        self.check_cancel()
        if (now := time.monotonic()) - self.last_report >= _REPORT_EVERY_S:
            self.report(now, checking=True)

    def report(self, now: float | None = None, checking: bool = False) -> None:
        now = now or time.monotonic()
        self.last_report = now
        if self.on_progress is None:
            return
        speed = 0.0
        if len(self.samples) >= 2 and self.samples[-1][0] > self.samples[0][0]:
            speed = (self.samples[-1][1] - self.samples[0][1]) / (self.samples[-1][0] - self.samples[0][0])
        left = (self.total - self.done) / speed if speed > 0 else None
        self.on_progress(DownloadProgress(self.done, self.total, speed, left, self.file, checking))

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


# -- downloading ----------------------------------------------------------------------------------
def download_repo(repo_id: str, *, kind: str = "pipeline", variant: str | None = None, revision: str = "main",
                  cache_dir: str | Path | None = None, endpoint: str | None = None, token: str | None = None,
                  on_progress: Callable[[DownloadProgress], None] | None = None,
                  cancel: threading.Event | None = None,
                  check_configs: Callable[[dict[str, Path]], None] | None = None) -> Path:
    """Fetch what a `kind` of repository needs (see select_files) into the cache; returns the snapshot folder.

    `endpoint` goes through resolve_endpoint (None: the remembered mirror, HF_ENDPOINT or the Hub).
    `check_configs` gets the downloaded configs ({repo path: local file}) before any weights and may raise
    ModelError to stop. Raises Cancelled when `cancel` is set (partial files are kept for a resume) and
    DownloadError (a ModelError, with a `reason`) on failure; then the snapshot is not linked.
    """
    endpoint = resolve_endpoint(endpoint)
    storage = repo_folder(repo_id, Path(cache_dir) if cache_dir else hf_cache_dir())
    try:
        with hub_online():
            download = _Download(repo_id, endpoint, token, storage, _Tracker(on_progress, cancel))
            return download.run(kind, variant, revision, check_configs)
    except (Cancelled, ModelError):
        raise
    except Exception as exc:  # network, HTTP and disk errors all reach the user as one clear line
        raise hub_error(exc, repo_id, endpoint) from exc


def download_model(repo_id: str, *, variant: str | None = "fp16", revision: str = "main",
                   cache_dir: str | Path | None = None, endpoint: str | None = None, token: str | None = None,
                   on_progress: Callable[[DownloadProgress], None] | None = None,
                   cancel: threading.Event | None = None) -> Path:
    """Fetch what a depth-to-image pipeline needs from `repo_id`; refuses, before any weights, a repository
    whose UNet is not a depth model's. See download_repo."""
    return download_repo(repo_id, kind="pipeline", variant=variant, revision=revision, cache_dir=cache_dir,
                         endpoint=endpoint, token=token, on_progress=on_progress, cancel=cancel,
                         check_configs=_require_depth_unet(repo_id))


def download_estimator(name: str, *, endpoint: str | None = None, cache_dir: str | Path | None = None,
                       token: str | None = None, on_progress: Callable[[DownloadProgress], None] | None = None,
                       cancel: threading.Event | None = None) -> Path:
    """Fetch the depth estimator `name` (core.depth.estimator_catalogue) into the cache; see download_repo.
    Marigold is a diffusers pipeline (its fp16 weights are taken), the others transformers models."""
    spec = estimator_spec(name)
    diffusers = spec.library == "diffusers"
    return download_repo(spec.repo_id, kind="pipeline" if diffusers else "transformers",
                         variant="fp16" if diffusers else None, cache_dir=cache_dir, endpoint=endpoint, token=token,
                         on_progress=on_progress, cancel=cancel)


def download_sd2_depth(sources: Iterable[Source] = SD2_DEPTH_SOURCES, *, endpoint: str | None = None,
                       variant: str | None = "fp16", cache_dir: str | Path | None = None, token: str | None = None,
                       on_progress: Callable[[DownloadProgress], None] | None = None,
                       on_note: Callable[[str], None] | None = None,
                       cancel: threading.Event | None = None) -> tuple[Source, Path]:
    """Try the known SD2-depth sources in order; one the endpoint does not have gives a note and the next is tried.

    Returns the source it came from and the snapshot folder. Any other failure stops at once (see download_repo).
    """
    sources = tuple(sources)
    if not sources:
        raise ValueError("no sources to download SD2-depth from")
    endpoint = resolve_endpoint(endpoint)
    for source, following in zip(sources, sources[1:] + (None,)):
        try:
            return source, download_model(source.repo_id, variant=variant, cache_dir=cache_dir, endpoint=endpoint,
                                          token=token, on_progress=on_progress, cancel=cancel)
        except DownloadError as exc:
            if exc.reason != "not-found":
                raise
            if following is not None and on_note is not None:
                why = " (withdrawn in November 2025)" if source.withdrawn else ""
                on_note(f"{source.repo_id} was not found{why} on {endpoint}; trying {following.repo_id}.")
    raise DownloadError("not-found", f"SD2-depth was not found on {endpoint}: tried "
                                     f"{', '.join(s.repo_id for s in sources)}.",
                        f"Check the Hub mirror's address, or get the single file {SD2_DEPTH_SINGLE_FILE} "
                        "and add it as a model.")


class _Download:
    """One repository's download: the files of one commit into the cache's blobs, checked, then linked."""

    def __init__(self, repo_id: str, endpoint: str, token: str | None, storage: Path, tracker: _Tracker):
        self.repo_id, self.endpoint, self.token, self.storage, self.tracker = repo_id, endpoint, token, storage, tracker

    def run(self, kind: str, variant: str | None, revision: str, check_configs) -> Path:
        self.tracker.check_cancel()
        info = fetch_model_info(self.repo_id, self.endpoint, revision=revision, token=self.token)
        files = select_files([_remote_file(s) for s in info.siblings], variant, kind)
        _require_layout(self.repo_id, kind, files)
        snapshot = self.storage / "snapshots" / info.sha
        pending = [f for f in files if not (snapshot / f.path).exists()]  # linked files were checked when linked
        self.tracker.total = sum(f.size for f in files)
        self.tracker.add(self.tracker.total - sum(f.size for f in pending), counts_for_speed=False)
        self._require_space(sum(f.size for f in pending))
        blobs = {f.path: self._fetch(f, info.sha) for f in pending if not f.is_weights}
        if check_configs is not None:
            check_configs({f.path: blobs.get(f.path, snapshot / f.path) for f in files if not f.is_weights})
        blobs |= {f.path: self._fetch(f, info.sha) for f in pending if f.is_weights}
        for path, blob in blobs.items():
            _link(blob, snapshot / path)
        if revision != info.sha:
            (self.storage / "refs").mkdir(exist_ok=True)
            (self.storage / "refs" / revision).write_text(info.sha, encoding="utf-8")
        self.tracker.report()
        return snapshot

    def _require_space(self, download_bytes: int) -> None:
        self.storage.mkdir(parents=True, exist_ok=True)
        needed = download_bytes + _DISK_MARGIN
        if shutil.disk_usage(self.storage).free < needed:
            raise DownloadError("disk-full", f"Not enough disk space: the download needs {needed / 1e9:.1f} GB in "
                                             f"{self.storage.parent}.",
                                "Free some space, or point HF_HUB_CACHE at a larger disk, then download again.")

    def _fetch(self, remote: RemoteFile, commit: str) -> Path:
        """The file's blob, downloaded (or resumed) if it is not there yet, and checked."""
        from huggingface_hub import get_hf_file_metadata, hf_hub_url
        from huggingface_hub.file_download import http_get
        from huggingface_hub.utils import build_hf_headers

        self.tracker.check_cancel()
        self.tracker.file = remote.path
        meta = get_hf_file_metadata(hf_hub_url(self.repo_id, remote.path, revision=commit, endpoint=self.endpoint),
                                    token=self.token, endpoint=self.endpoint)
        etag = meta.etag or ""
        if not etag or etag.startswith(".") or any(c in etag for c in "/\\:"):  # it names a file in the cache
            raise DownloadError("server", f"{self.endpoint} gave no usable ETag for {remote.path} of {self.repo_id}.",
                                "Try again later, or use another Hub mirror.")
        blob = self.storage / "blobs" / etag
        if blob.exists():
            self.tracker.add(remote.size, counts_for_speed=False)
            self._check(remote, blob)
            return blob
        blob.parent.mkdir(parents=True, exist_ok=True)
        partial = blob.with_name(etag + ".incomplete")
        if partial.exists() and meta.size is not None and partial.stat().st_size > meta.size:
            partial.unlink()  # not a prefix of this file
        with partial.open("ab") as handle:
            resumed = handle.tell()
            self.tracker.add(resumed, counts_for_speed=False)
            http_get(meta.location, handle, resume_size=resumed, headers=build_hf_headers(token=self.token),
                     expected_size=meta.size, tqdm_class=self.tracker.bar_class())
        self._check(remote, partial)
        os.replace(partial, blob)
        return blob

    def _check(self, remote: RemoteFile, local: Path) -> None:
        """Compare `local` with the checksum the Hub lists; a file that differs is deleted."""
        if remote.sha256:
            what, expected, digest = "sha256", remote.sha256, hashlib.sha256()
        elif remote.git_sha1:  # git's blob id: the sha1 of a "blob <size>\0" header and the content
            what, expected, digest = "git blob id", remote.git_sha1, hashlib.sha1(b"blob %d\0" % local.stat().st_size)
        else:
            raise DownloadError("checksum", f"{self.endpoint} lists no checksum for {remote.path} of {self.repo_id}, "
                                            "so it cannot be checked.",
                                "Use another Hub mirror, or https://huggingface.co.")
        with local.open("rb") as handle:  # read in pieces, so the bar moves and Cancel works on multi-GB weights
            while piece := handle.read(_HASH_CHUNK_BYTES):
                digest.update(piece)
                self.tracker.hashed()
        if digest.hexdigest() != expected.lower():
            local.unlink(missing_ok=True)
            raise DownloadError("checksum", f"The file {remote.path} from {self.repo_id} is damaged or was changed "
                                            f"({what} mismatch).",
                                "Download again; if it happens again, this source (or mirror) holds a different file: "
                                "try another.")


def _remote_file(sibling) -> RemoteFile:
    if sibling.lfs:
        return RemoteFile(sibling.rfilename, sibling.size or sibling.lfs.size or 0, sha256=sibling.lfs.sha256)
    return RemoteFile(sibling.rfilename, sibling.size or 0, git_sha1=sibling.blob_id)


def _link(blob: Path, pointer: Path) -> None:
    """snapshots/<commit>/<path> -> ../../blobs/<etag>, as the hub library links them (a copy where links are not allowed)."""
    pointer.parent.mkdir(parents=True, exist_ok=True)
    pointer.unlink(missing_ok=True)
    try:
        pointer.symlink_to(os.path.relpath(blob, pointer.parent))
    except OSError:
        shutil.copyfile(blob, pointer)
