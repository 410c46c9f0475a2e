"""`d2i library …` and `d2i generate --lora`: the LoRA and embedding library from the command line."""

from __future__ import annotations

import argparse
from pathlib import Path

from .core.errors import ModelError, ParamError


def add_library_parser(commands) -> None:
    library = commands.add_parser("library", help="list, import or remove LoRAs and embeddings")
    actions = library.add_subparsers(dest="action", required=True, parser_class=type(library))
    actions.add_parser("list", help="every LoRA and embedding, with kind, base model, trigger words and size")
    imports = actions.add_parser("import", help="copy files into the library (identical files are skipped)")
    imports.add_argument("files", nargs="+", type=Path)
    remove = actions.add_parser("remove", help="move a LoRA or embedding (and its sidecar files) to the trash")
    remove.add_argument("name")
    folder = actions.add_parser("add-folder", help="scan a folder of LoRAs in place, without copying")
    folder.add_argument("folder", type=Path)
    unfolder = actions.add_parser("remove-folder", help="stop scanning an extra folder (its files stay)")
    unfolder.add_argument("folder", type=Path)
    actions.add_parser("folders", help="the library folder and the extra folders scanned in place")
    mix = actions.add_parser("export-mix", help="save LoRAs at their weights as one LoRA file, added to the library")
    mix.add_argument("--model", help="the model the LoRAs are for, checked against it (default: the model used last)")
    mix.add_argument("--lora", action="append", required=True, metavar="NAME:WEIGHT", help="a library LoRA (repeatable)")
    mix.add_argument("--out", required=True, type=Path, help="the .safetensors file to write (never overwritten)")
    mix.add_argument("--device", help="cuda, mps or cpu (default: the fastest available)")


def add_lora_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lora", action="append", default=[], metavar="NAME[:WEIGHT]",
                        help="a library LoRA to apply (repeatable); without a weight, its default weight")


def parse_lora_options(options: list[str]) -> tuple[tuple[str, float], ...]:
    """`name:0.8` / `name` options as (name, weight); a missing weight is the library's default for that LoRA."""
    from .core.extras.library import LORA, Library

    chosen = []
    for option in options:
        name, colon, weight = option.rpartition(":") if ":" in option else (option, "", "")
        if not colon:
            chosen.append((name, Library().find(name, LORA).default_weight))
            continue
        try:
            chosen.append((name, float(weight)))
        except ValueError:
            raise ParamError(f"--lora {option}: '{weight}' is not a weight.", "Write --lora name:0.8.") from None
    return tuple(chosen)


def last_used_model() -> str:
    from .core.models.registry import ModelRegistry

    used = [entry for entry in ModelRegistry().entries() if entry.last_used]
    if not used:
        raise ModelError("No model has been used yet, so there is none to check the LoRAs against.",
                               "Give one with --model (a model folder or a Hugging Face id).")
    return max(used, key=lambda entry: entry.last_used).source


def cmd_library(args) -> int:
    from .core.extras.library import AlreadyInLibrary, Library

    library = Library()
    if args.action == "list":
        for item in library.items():
            words = ", ".join(item.trigger_words or item.suggested_words)
            state = f"unusable: {item.problem}" if item.problem else (item.base_model or "base model unknown")
            print(f"{item.name}\t{item.kind or '?'}\t{state}\t{words}\t{item.size / 1e6:.1f} MB\t{item.path}")
    elif args.action == "import":
        for path in args.files:
            try:
                item = library.import_file(path)
            except AlreadyInLibrary as exc:
                print(f"note: {exc.message}")
                continue
            print(f"{item.name}\t{item.kind}\t{item.path}")
    elif args.action == "remove":
        matches = [item for item in library.items() if item.name == args.name]
        if not matches:
            raise ParamError(f"There is nothing named '{args.name}' in the library.", "See 'd2i library list'.")
        library.remove(matches[0])
        print(f"moved {matches[0].path} to the trash")
    elif args.action in ("add-folder", "remove-folder"):
        (library.add_folder if args.action == "add-folder" else library.remove_folder)(args.folder)
        print(f"{len(library.items())} files in the library's folders")
    elif args.action == "folders":
        print("\n".join(str(folder) for folder in library.folders()))
    elif args.action == "export-mix":
        from .core.generation.engine import Engine
        from .core.extras.lora_mix import export_mix

        sources = parse_lora_options(args.lora)
        engine = Engine(device=args.device)
        engine.load(args.model or last_used_model())
        item = export_mix(engine.adapters(), sources, args.out, library)
        print(f"{item.name}\t{item.kind}\t{item.path}")
    return 0
