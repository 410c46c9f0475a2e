"""`d2i history ...` and `d2i info PICTURE`: find past pictures, make them again, read what a picture says."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from .core.errors import D2IError


def add_history_parsers(commands) -> None:
    history = commands.add_parser("history", help="pictures made so far: list, show, reproduce")
    actions = history.add_subparsers(dest="action", required=True, parser_class=type(history))
    listing = actions.add_parser("list", help="newest first; the output folder is checked for deleted and new pictures")
    listing.add_argument("--search", default="", metavar="WORDS", help="words the prompt must contain (a word's beginning matches)")
    listing.add_argument("--model")
    listing.add_argument("--lora")
    listing.add_argument("--favourites", action="store_true")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true")
    show = actions.add_parser("show", help="everything recorded about one picture")
    show.add_argument("id", type=int)
    show.add_argument("--json", action="store_true")
    again = actions.add_parser("reproduce", help="make a picture again from its record and compare")
    again.add_argument("id", type=int)
    again.add_argument("--out", required=True, type=Path, help="the new picture (never overwritten: a free name is chosen)")

    info = commands.add_parser("info", help="what a picture says about how it was made (this app, AUTOMATIC1111, "
                                            "Fooocus, InvokeAI, ComfyUI, NovelAI)")
    info.add_argument("picture", type=Path)
    info.add_argument("--json", action="store_true")


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def cmd_history(args) -> int:
    from .core.history.index import History
    from .core.paths import default_output_dir

    history = History()
    try:
        if args.action == "list":
            report = history.sync([default_output_dir()])
            if report.added or report.moved or report.removed:
                _say(f"note: {report.added} new, {report.moved} moved and {report.removed} deleted pictures noticed")
            entries = history.search(args.search, model=args.model, lora=args.lora, favourite=args.favourites,
                                     limit=args.limit)
            if args.json:
                print(json.dumps([entry.to_dict() for entry in entries], indent=1))
            for entry in entries if not args.json else ():
                made = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.created))
                star = "*" if entry.favourite else " "
                print(f"{entry.id:>6} {star} {made}  seed {entry.seed}  {entry.prompt[:60]!r}  {entry.path}")
            return 0
        entry = history.get(args.id)
        if args.action == "show":
            return _show(Path(entry.path), args.json)
        return _reproduce(Path(entry.path), args.out)
    finally:
        history.close()


def _reproduce(picture: Path, out: Path) -> int:
    from .core.history.record import read_record
    from .core.history.reproduce import reproduce

    if not picture.is_file():
        raise D2IError(f"The picture {picture} is no longer there.", "Run 'd2i history list' to bring the history up to date.")
    record = read_record(picture)
    if record is None:
        raise D2IError(f"{picture.name} was not made by this app, so it has no record to run again.",
                       "'d2i info' shows the settings it carries.")
    print(reproduce(picture, record, out, say=_say).summary())
    return 0


def cmd_info(args) -> int:
    return _show(args.picture, args.json)


def _show(picture: Path, as_json: bool) -> int:
    from .core.history.foreign import read_settings

    if not picture.is_file():
        raise D2IError(f"The picture {picture} is not there.", "Check the path.")
    settings = read_settings(picture)
    print(json.dumps(settings.to_dict(), indent=1, ensure_ascii=False) if as_json else settings.text())
    return 0
