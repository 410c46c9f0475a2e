"""`d2i models …` and `d2i download`: the model list, the Hugging Face cache and downloads from the command line."""

from __future__ import annotations

import datetime
import sys
from pathlib import Path

from .core.models.catalogue import SD2_DEPTH_SOURCES


def add_models_parsers(commands) -> None:
    models = commands.add_parser("models", help="list, add or remove models; show those in the Hugging Face cache")
    actions = models.add_subparsers(dest="action", required=True, parser_class=type(models))
    actions.add_parser("list", help="the models set up so far: name, kind, size, last use, source")
    actions.add_parser("cache", help="depth models and depth estimators already in the Hugging Face cache")
    actions.add_parser("sources", help="where SD2-depth can be downloaded from, in the order 'd2i download' tries: "
                                       "name, repository, licence, size, available or withdrawn, what it holds")
    add = actions.add_parser("add", help="check a model (folder, hub id or single file) and add it to the list")
    add.add_argument("source", help="a diffusers folder, a Hugging Face id, or a .safetensors/.ckpt file")
    add.add_argument("--config", type=Path, help="single files: the diffusers folder whose configs match the file "
                                                  "(default: the bundled SD2-depth configs)")
    add.add_argument("--depth-estimator", type=Path, help="single files: a DPT depth-estimator folder "
                                                           "(default: one found in the cache, else supply depth maps)")
    remove = actions.add_parser("remove", help="forget a model (its files stay where they are)")
    remove.add_argument("source")

    download = commands.add_parser("download", help="download a model into the Hugging Face cache (resumes, checks "
                                                    "every file's sha256) and add it to the model list")
    download.add_argument("repo", nargs="?", help="a Hugging Face id of a diffusers SD2-depth model (default: the known "
                                                  "sources in order: " + ", ".join(s.repo_id for s in SD2_DEPTH_SOURCES) + ")")
    download.add_argument("--estimator", metavar="NAME", help="download this depth estimator instead of a model "
                                                              "(the names: d2i estimators)")
    download.add_argument("--variant", default="fp16", help="weights variant to prefer ('' for full precision)")
    download.add_argument("--endpoint", help="a Hub mirror such as https://hf-mirror.com, remembered for the next "
                                             "downloads once it worked (default: the remembered one, else HF_ENDPOINT, "
                                             "else https://huggingface.co)")
    download.add_argument("--test-endpoint", action="store_true",
                          help="only check that the Hub (or --endpoint) answers and has SD2-depth (or REPO); "
                               "exit 0 if so, else 2")


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
    elif args.action == "sources":
        for source in SD2_DEPTH_SOURCES:
            state = "withdrawn" if source.withdrawn else "available"
            print(f"{source.name}\t{source.repo_id}\t{source.licence}\t{_size(source.size_bytes)}\t{state}\t{source.holds}")
    elif args.action == "add":
        entry = models.add_model(args.source, args.config, args.depth_estimator, registry)
        print(f"added {entry.name}\t{entry.kind}\t{_size(entry.size_bytes)}")
    else:
        registry.remove(args.source)
    return 0


def cmd_download(args) -> int:
    from .core.depth.estimator_catalogue import estimator_spec
    from .core.errors import D2IError
    from .core.models import registry as models
    from .core.models.downloads import download_estimator, download_model, download_sd2_depth
    from .core.models.hub_endpoint import check_endpoint, resolve_endpoint

    endpoint = resolve_endpoint(args.endpoint)
    if args.test_endpoint:
        check = check_endpoint(endpoint, **({"repo_ids": (args.repo,)} if args.repo else {}))
        if not check.ok:
            raise D2IError(check.message)
        print(check.message)
        _remember(args.endpoint, endpoint)
        return 0

    shown = False

    def show(progress):
        nonlocal shown
        shown = True
        print(f"\r{progress.text():<60}", end="", file=sys.stderr, flush=True)

    def note(text: str):
        print(f"\r{'':<60}\rnote: {text}", file=sys.stderr)

    if args.estimator and args.repo:
        raise D2IError("Give a repository or --estimator, not both.", "Run d2i download once for each.")
    if args.estimator:
        estimator_spec(args.estimator)  # an unknown name is refused before anything goes online
    print(f"Downloading from {endpoint}", file=sys.stderr)
    options = dict(variant=args.variant or None, endpoint=endpoint, on_progress=show)
    try:
        if args.estimator:
            snapshot = download_estimator(args.estimator, endpoint=endpoint, on_progress=show)
        elif args.repo:
            repo_id, snapshot = args.repo, download_model(args.repo, **options)
        else:
            source, snapshot = download_sd2_depth(on_note=note, **options)
            repo_id = source.repo_id
    finally:
        if shown:
            print(file=sys.stderr)  # the end of the progress line
    _remember(args.endpoint, endpoint)
    if args.estimator:
        print(f"{snapshot}\t{args.estimator}")
        return 0
    entry = models.add_model(repo_id)  # only now: every file is there and checked
    print(f"{snapshot}\t{entry.name}")
    return 0


def _remember(given: str | None, endpoint: str) -> None:
    """An endpoint given on the command line that worked is the one the next downloads use."""
    from .core.models.hub_endpoint import remember_endpoint

    if given:
        remember_endpoint(endpoint)
        print(f"{endpoint} is remembered for the next downloads.", file=sys.stderr)
