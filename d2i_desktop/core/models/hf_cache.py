"""The Hugging Face cache, read without any network call: where it is, what it holds."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

DEPTH_ESTIMATOR_REPOS = ("Intel/dpt-hybrid-midas", "Intel/dpt-large")


def hf_cache_dir() -> Path:
    """The hub cache as the hub library would pick it now (HF_HUB_CACHE, then HF_HOME)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def repo_folder(repo_id: str, cache_dir: Path | None = None) -> Path:
    return (cache_dir or hf_cache_dir()) / ("models--" + repo_id.replace("/", "--"))


def cached_snapshot(repo_id: str, revision: str = "main", cache_dir: Path | None = None) -> Path | None:
    """The snapshot folder a branch (or commit) of `repo_id` points to in the cache, if it is there."""
    folder = repo_folder(repo_id, cache_dir)
    ref = folder / "refs" / revision
    commit = ref.read_text(encoding="utf-8").strip() if ref.is_file() else revision
    snapshot = folder / "snapshots" / commit
    return snapshot if snapshot.is_dir() else None


def read_json_object(path: Path) -> dict:
    """A JSON file's object, or {} when it is missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def is_depth_model_folder(folder: Path) -> bool:
    """A diffusers folder whose UNet takes latents plus depth (5 input channels)."""
    return read_json_object(folder / "unet" / "config.json").get("in_channels") == 5 and (folder / "model_index.json").is_file()


def is_dpt_folder(folder: Path) -> bool:
    return read_json_object(folder / "config.json").get("model_type") == "dpt"


@dataclass(frozen=True)
class CachedModel:
    repo_id: str
    snapshot: Path
    size_bytes: int
    kind: str  # "depth-model" or "depth-estimator"


def scan_cached_models(cache_dir: Path | None = None) -> list[CachedModel]:
    """Depth-capable models and DPT depth estimators already in the cache; nothing is copied."""
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        info = scan_cache_dir(cache_dir or hf_cache_dir())
    except CacheNotFound:
        return []
    found = []
    for repo in sorted(info.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model":
            continue
        for revision in sorted(repo.revisions, key=lambda r: "main" not in r.refs):  # the branch head first
            snapshot = Path(revision.snapshot_path)
            if is_depth_model_folder(snapshot):
                found.append(CachedModel(repo.repo_id, snapshot, revision.size_on_disk, "depth-model"))
                break
            if is_dpt_folder(snapshot):
                found.append(CachedModel(repo.repo_id, snapshot, revision.size_on_disk, "depth-estimator"))
                break
    return found


def find_depth_estimator(cache_dir: Path | None = None) -> Path | None:
    """A DPT depth estimator the user already has: a DPT repo, or the one inside a cached SD2-depth model."""
    cache_dir = cache_dir or hf_cache_dir()
    for repo_id in DEPTH_ESTIMATOR_REPOS:
        snapshot = cached_snapshot(repo_id, cache_dir=cache_dir)
        if snapshot and is_dpt_folder(snapshot):
            return snapshot
    for model in scan_cached_models(cache_dir):
        if model.kind == "depth-model" and is_dpt_folder(model.snapshot / "depth_estimator"):
            return model.snapshot / "depth_estimator"
    return None
