"""`d2i models …` and `d2i download`: the model list, the Hugging Face cache and downloads from the command line."""

from __future__ import annotations

import datetime
import sys
import threading
from pathlib import Path

from .core.models.registry import SD2_DEPTH_REPO


def add_models_parsers(commands) -> None:
    models = commands.add_parser("models", help="list, add or remove models; show those in the Hugging Face cache")
    actions = models.add_subparsers(dest="action", required=True, parser_class=type(models))
    actions.add_parser("list", help="the models set up so far: name, kind, size, last use, source")
    actions.add_parser("cache", help="depth models and depth estimators already in the Hugging Face cache")
    add = actions.add_parser("add", help="check a model (folder, hub id or single file) and add it to the list")
    add.add_argument("source", help="a diffusers folder, a Hugging Face id, or a .safetensors/.ckpt file")
    add.add_argument("--config", type=Path, help="single files: the diffusers folder whose configs match the file "
                                                  "(default: the bundled SD2-depth configs)")
    add.add_argument("--depth-estimator", type=Path, help="single files: a DPT depth-estimator folder "
                                                           "(default: one found in the cache, else supply depth maps)")
    remove = actions.add_parser("remove", help="forget a model (its files stay where they are)")
    remove.add_argument("source")

    download = commands.add_parser("download", help="download a model into the Hugging Face cache (resumes)")
    download.add_argument("repo", nargs="?", default=SD2_DEPTH_REPO, help=f"a Hugging Face id (default: {SD2_DEPTH_REPO})")
    download.add_argument("--variant", default="fp16", help="weights variant to prefer ('' for full precision)")
    download.add_argument("--endpoint", help="a Hub mirror (default: HF_ENDPOINT or huggingface.co)")


def _size(count: int) -> str:
    from .core.models.downloads import format_bytes

    return format_bytes(count) if count else "-"


def cmd_models(args) -> int:
    from .core.models import registry as models
    from .core.models.hf_cache import scan_cached_models

    registry = models.ModelRegistry()
    if args.action == "list":
        for entry in sorted(registry.entries(), key=lambda e: -e.last_used):
            used = datetime.datetime.fromtimestamp(entry.last_used).strftime("%Y-%m-%d %H:%M") if entry.last_used else "never"
            print(f"{entry.name}\t{entry.kind}\t{_size(entry.size_bytes)}\t{used}\t{entry.source}")
    elif args.action == "cache":
        for cached in scan_cached_models():
            print(f"{cached.repo_id}\t{cached.kind}\t{_size(cached.size_bytes)}\t{cached.snapshot}")
    elif args.action == "add":
        entry = models.add_model(args.source, args.config, args.depth_estimator, registry)
        print(f"added {entry.name}\t{entry.kind}\t{_size(entry.size_bytes)}")
    else:
        registry.remove(args.source)
    return 0


def cmd_download(args) -> int:
    from .core.models import registry as models
    from .core.models.downloads import download_model

    def show(progress):
        print(f"\r{progress.text():<60}", end="", file=sys.stderr, flush=True)

    try:
        snapshot = download_model(args.repo, variant=args.variant or None, endpoint=args.endpoint, on_progress=show,
                                  cancel=threading.Event())
    finally:
        print(file=sys.stderr)
    entry = models.add_model(args.repo)
    print(f"{snapshot}\t{entry.name}")
    return 0
