"""The LoRA and embedding library: a folder in app data plus folders scanned in place.

Files are described from what they say about themselves (safetensors metadata,
sidecar `.txt` / `.json` / `.civitai.info` files, sidecar preview images),
never by loading their weights. The user's edits (trigger words, default
weight, thumbnail) live in `library.json` beside the library folder; the LoRA
files themselves are never written.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from filelock import Timeout
from PIL import Image

from ..files.app_data import locked, read_json, sweep_stale_temporaries
from ..errors import D2IError
from .lora_files import (
    EMBEDDING, LORA, WEIGHT_SUFFIXES, FileFacts, LibraryFileError, inspect_file, sha256_file, short_hash,
)
from ..paths import data_dir

PREVIEW_SUFFIXES = (".preview.png", ".preview.jpg", ".preview.jpeg", ".preview.webp", ".png", ".jpg", ".jpeg", ".webp")
TEXT_SIDECARS = (".civitai.info", ".json", ".txt")
SUGGESTED_WORDS = 6
IMPORT_LOCK_SECONDS = 600  # an import copies whole files, so another may hold the lock a while


@dataclass
class LibraryItem:
    name: str  # the file name without suffix: what `<lora:name:w>` and embedding tokens refer to
    path: Path
    kind: str  # LORA or EMBEDDING ("" when the file cannot be used)
    base_model: str
    size: int
    trigger_words: tuple[str, ...] = ()
    suggested_words: tuple[str, ...] = ()
    default_weight: float = 1.0
    thumbnail: Path | None = None
    notes: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    problem: str = ""  # why it cannot be used; empty when it can

    @property
    def usable(self) -> bool:
        return not self.problem

    @property
    def short_hash(self) -> str:
        """The hash AUTOMATIC1111 records: kohya's addnet hash for LoRA safetensors, else the file's sha256, 12 digits."""
        compute = (lambda: short_hash(self.path)) if self.kind == LORA else (lambda: sha256_file(self.path)[:12])
        return _cached(("hash", self.kind, self.path), self.path, compute)


class AlreadyInLibrary(LibraryFileError):
    """An identical file is already in the library."""

    def __init__(self, path: Path, item: LibraryItem):
        super().__init__(f"{path.name} is already in the library as '{item.name}'.", "Nothing was copied.")
        self.item = item


_cache: dict[tuple, tuple[tuple[int, int], object]] = {}


def _cached(key: tuple, path: Path, compute):
    """`compute()`, remembered until the file's size or modification time changes."""
    stat = path.stat()
    stamp = (stat.st_size, stat.st_mtime_ns)
    hit = _cache.get(key)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    value = compute()
    _cache[key] = (stamp, value)
    return value


class Library:
    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root else data_dir() / "library"
        self.root.mkdir(parents=True, exist_ok=True)
        self.settings_path = self.root.parent / "library.json"
        self.thumbnail_dir = self.root.parent / "library-thumbnails"
        for folder in (self.root, self.root.parent, self.thumbnail_dir):
            sweep_stale_temporaries(folder)

    # -- settings beside the library -------------------------------------------------
    def _settings(self) -> dict:
        return read_json(self.settings_path, "The library settings", _valid_settings) or {"folders": [], "items": {}}

    def _save_settings(self, settings: dict) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.settings_path.parent, prefix=".library-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            json.dump(settings, stream, indent=1, ensure_ascii=False)
        os.replace(tmp, self.settings_path)

    def folders(self) -> list[Path]:
        """The library folder, then the extra folders scanned in place."""
        return [self.root] + [Path(folder) for folder in self._settings().get("folders", [])]

    def add_folder(self, folder: str | Path) -> None:
        folder = Path(folder).expanduser().resolve()
        if not folder.is_dir():
            raise LibraryFileError(f"{folder} is not a folder.", "Choose a folder that holds LoRA or embedding files.")
        with locked(self.settings_path):
            settings = self._settings()
            folders = settings.setdefault("folders", [])
            if folder != self.root.resolve() and str(folder) not in folders:
                folders.append(str(folder))
                self._save_settings(settings)

    def remove_folder(self, folder: str | Path) -> None:
        """Stop scanning an extra folder (its files stay where they are)."""
        folder = Path(folder).expanduser().resolve()
        with locked(self.settings_path):
            settings = self._settings()
            folders = settings.get("folders", [])
            if str(folder) not in folders:
                raise LibraryFileError(f"{folder} is not one of the library's extra folders.",
                                       "See the folders with 'd2i library folders'.")
            settings["folders"] = [f for f in folders if f != str(folder)]
            self._save_settings(settings)

    def edit(self, name: str, *, trigger_words: list[str] | None = None, default_weight: float | None = None,
             thumbnail: Path | None = None) -> None:
        """Save the user's trigger words, default weight or thumbnail for `name` (the file is left alone)."""
        with locked(self.settings_path):
            settings = self._settings()
            edits = settings.setdefault("items", {}).setdefault(name, {})
            if trigger_words is not None:
                edits["trigger_words"] = [w.strip() for w in trigger_words if w.strip()]
            if default_weight is not None:
                edits["default_weight"] = float(default_weight)
            if thumbnail is not None:
                edits["thumbnail"] = str(thumbnail)
            self._save_settings(settings)

    def set_thumbnail(self, name: str, image: Image.Image, size: int = 256) -> Path:
        """Keep a small copy of `image` as `name`'s thumbnail."""
        self.thumbnail_dir.mkdir(parents=True, exist_ok=True)
        thumb = image.convert("RGB")
        thumb.thumbnail((size, size))
        target = self.thumbnail_dir / f"{name}.png"
        fd, tmp = tempfile.mkstemp(dir=self.thumbnail_dir, prefix=".thumb-", suffix=".png")
        os.close(fd)
        thumb.save(tmp, format="PNG")
        os.replace(tmp, target)
        self.edit(name, thumbnail=target)
        return target

    # -- scanning --------------------------------------------------------------------
    def items(self) -> list[LibraryItem]:
        """Every weights file in the library's folders; a second file with a name already seen is marked unusable.

        What each file is comes from the scan cache when its size and modification time are unchanged.
        """
        edits = self._settings().get("items", {})
        cache = ScanCache(self.root.parent / "library-cache.json")
        found: list[LibraryItem] = []
        first: dict[tuple[str, str], LibraryItem] = {}
        for folder in self.folders():
            if not folder.is_dir():
                continue
            try:
                paths = sorted(folder.iterdir(), key=lambda p: p.name.lower())
            except OSError:  # an extra folder on a drive that is gone or not readable
                continue
            for path in paths:
                if path.suffix.lower() not in WEIGHT_SUFFIXES or not path.is_file():
                    continue
                item = describe(path, edits.get(path.stem, {}), cache)
                earlier = first.get((item.kind, item.name))
                if earlier is not None and item.usable:
                    item.problem = f"Another {item.kind} named '{item.name}' comes first ({earlier.path})."
                elif item.usable:
                    first[(item.kind, item.name)] = item
                found.append(item)
        cache.save()
        return found

    def find(self, name: str, kind: str) -> LibraryItem:
        """The usable item called `name`, or a LibraryFileError saying why there is none."""
        same_name = [item for item in self.items() if item.name == name and item.kind in (kind, "")]
        for item in same_name:
            if item.usable:
                return item
        if same_name:
            raise LibraryFileError(f"The {kind} '{name}' cannot be used: {same_name[0].problem}",
                                   "Remove or replace the file in the library.")
        raise LibraryFileError(f"There is no {kind} named '{name}' in the library.",
                               "Import it first, or check the spelling (names are the file names without suffix).")

    def embeddings(self) -> list[LibraryItem]:
        return [item for item in self.items() if item.kind == EMBEDDING and item.usable]

    # -- import and remove -------------------------------------------------------------
    def import_file(self, source: str | Path) -> LibraryItem:
        """Copy `source` (and its sidecar files) into the library; a free name is chosen if the name is taken."""
        source = Path(source)
        if not source.is_file():
            raise LibraryFileError(f"{source} does not exist.", "Choose a LoRA or embedding file.")
        if source.suffix.lower() not in WEIGHT_SUFFIXES:
            raise LibraryFileError(f"{source.name} is not a LoRA or embedding file.",
                                   "Import .safetensors (best), .pt, .bin or .ckpt files.")
        inspect_file(source)  # refuse unreadable, damaged or unsafe files before copying anything
        digest = sha256_file(source)
        # Held from the duplicate check to the last copy: two imports at once (two threads or two running
        # copies of the app) would otherwise both pass the check or both take the same free name.
        lock = locked(self.root.parent / "library-import")
        lock.timeout = IMPORT_LOCK_SECONDS
        try:
            with lock:
                target = self._copy_in(source, digest)
        except Timeout as exc:
            raise LibraryFileError(f"Another import into the library did not finish; {source.name} was not imported.",
                                   "Import it again once the other import is done.") from exc
        return describe(target, self._settings().get("items", {}).get(target.stem, {}))

    def _copy_in(self, source: Path, digest: str) -> Path:
        for item in self.items():
            if item.size == source.stat().st_size and sha256_file(item.path) == digest:
                raise AlreadyInLibrary(source, item)
        target = self._free_name(prompt_name(source.stem), source.suffix.lower())
        _copy_atomic(source, target)
        for sidecar in _sidecars(source):
            extension = sidecar.name[len(source.stem):]
            destination = target.with_name(target.stem + extension)
            if not destination.exists():
                _copy_atomic(sidecar, destination)
        return target

    def _free_name(self, stem: str, suffix: str) -> Path:
        taken = {item.name for item in self.items()}
        name, number = stem, 1
        while name in taken or any((self.root / f"{name}{s}").exists() for s in WEIGHT_SUFFIXES):
            number += 1
            name = f"{stem}-{number}"
        return self.root / f"{name}{suffix}"

    def remove(self, item: LibraryItem) -> None:
        """Move the file and its sidecars to the system trash and forget the user's edits for it."""
        from send2trash import send2trash
        from send2trash.exceptions import TrashPermissionError

        try:
            for path in [item.path, *_sidecars(item.path)]:
                send2trash(str(path))
        except (OSError, TrashPermissionError) as exc:
            raise LibraryFileError(f"Could not move {item.path.name} to the trash: {exc}.",
                                   "Check that the file is not open elsewhere and that you may change its folder.") from exc
        with locked(self.settings_path):
            settings = self._settings()
            if settings.get("items", {}).pop(item.name, None) is not None:
                self._save_settings(settings)


def prompt_name(stem: str) -> str:
    """`stem` made writable in `<lora:name:w>`: colons, angle brackets, newlines and other control characters
    become underscores."""
    return re.sub(r"[:<>\x00-\x1f\x7f]+", "_", stem).strip() or "unnamed"


def _valid_settings(data) -> bool:
    return (isinstance(data, dict) and isinstance(data.get("folders", []), list)
            and all(isinstance(folder, str) for folder in data.get("folders", []))
            and isinstance(data.get("items", {}), dict) and all(isinstance(v, dict) for v in data.get("items", {}).values()))


class ScanCache:
    """What each file was found to be, by path, size and modification time, kept in app data: a big or damaged
    library is read once, not at every start. A damaged cache is simply rebuilt."""

    def __init__(self, path: Path):
        self.path = path
        try:
            entries = json.loads(path.read_bytes())
        except (OSError, ValueError):
            entries = {}
        self._old = entries if isinstance(entries, dict) else {}
        self._new: dict[str, dict] = {}

    def facts(self, file: Path) -> FileFacts:
        """`inspect_file(file)`, remembered; a remembered refusal is raised again."""
        stat = file.stat()
        stamp, key = [stat.st_size, stat.st_mtime_ns], str(file)
        entry = self._old.get(key)
        if isinstance(entry, dict) and entry.get("stamp") == stamp:
            try:
                return self._use(key, entry)
            except (TypeError, KeyError):  # an entry this version does not understand: read the file again
                pass
        try:
            entry = {"stamp": stamp, "facts": dataclasses.asdict(inspect_file(file))}
        except D2IError as exc:
            entry = {"stamp": stamp, "problem": exc.message}
        return self._use(key, entry)

    def _use(self, key: str, entry: dict) -> FileFacts:
        facts = None if "problem" in entry else FileFacts(**entry["facts"])
        self._new[key] = entry
        if facts is None:
            raise LibraryFileError(str(entry["problem"]))
        return facts

    def save(self) -> None:
        """Keep the files seen in this scan (forgetting removed ones); written only when something changed."""
        if self._new == self._old:
            return
        try:
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".library-", suffix=".json")
            with os.fdopen(fd, "w", encoding="utf-8") as stream:
                json.dump(self._new, stream, ensure_ascii=False)
            os.replace(tmp, self.path)
        except OSError:
            pass  # only a cache: the next scan reads the files again


def describe(path: Path, edits: dict, cache: ScanCache | None = None) -> LibraryItem:
    """A LibraryItem for `path`: facts from the file (or `cache`) and its sidecars, overridden by the user's edits."""
    size = path.stat().st_size
    try:
        facts: FileFacts = cache.facts(path) if cache else _cached(("facts", path), path, lambda: inspect_file(path))
    except D2IError as exc:
        return LibraryItem(path.stem, path, "", "", size, problem=exc.message)
    sidecar = read_sidecars(path)
    suggested = suggested_trigger_words(facts.metadata)
    words = edits.get("trigger_words") or sidecar.get("trigger_words") or ()
    thumbnail = Path(edits["thumbnail"]) if edits.get("thumbnail") else preview_image(path)
    weight = edits.get("default_weight", sidecar.get("default_weight", 1.0))
    return LibraryItem(
        name=path.stem, path=path, kind=facts.kind, base_model=facts.base_model or sidecar.get("base_model", ""),
        size=size, trigger_words=tuple(words), suggested_words=suggested, default_weight=float(weight),
        thumbnail=thumbnail if thumbnail and thumbnail.is_file() else None, notes=sidecar.get("notes", ""),
        metadata=facts.metadata,
    )


def suggested_trigger_words(metadata: dict[str, str]) -> tuple[str, ...]:
    """The most frequent training tags (kohya's `ss_tag_frequency`), the usual hint at a LoRA's trigger words."""
    try:
        datasets = json.loads(metadata.get("ss_tag_frequency", "{}"))
    except ValueError:
        return ()
    counts: Counter[str] = Counter()
    for tags in datasets.values() if isinstance(datasets, dict) else ():
        if isinstance(tags, dict):
            counts.update({str(tag).strip(): int(n) for tag, n in tags.items()
                           if str(tag).strip() and isinstance(n, (int, float))})
    return tuple(tag for tag, _ in counts.most_common(SUGGESTED_WORDS))


def read_sidecars(path: Path) -> dict:
    """Trigger words, default weight, base model and notes from `.civitai.info`, A1111 `.json` or `.txt` files."""
    found: dict = {}
    info = path.with_name(path.stem + ".civitai.info")
    if info.is_file():
        data = _read_json(info)
        if words := data.get("trainedWords"):
            found["trigger_words"] = [str(w).strip() for w in words if str(w).strip()]
        if base := data.get("baseModel"):
            found["base_model"] = str(base)
        if description := data.get("description") or (data.get("model") or {}).get("name"):
            found["notes"] = str(description)
    a1111 = path.with_name(path.stem + ".json")
    if a1111.is_file():  # AUTOMATIC1111's per-network user metadata
        data = _read_json(a1111)
        if words := str(data.get("activation text", "")).strip():
            found.setdefault("trigger_words", [w.strip() for w in words.split(",") if w.strip()])
        if data.get("preferred weight"):
            found["default_weight"] = float(data["preferred weight"])
        if data.get("notes") or data.get("description"):
            found.setdefault("notes", str(data.get("notes") or data.get("description")))
    text = path.with_name(path.stem + ".txt")
    if text.is_file():
        words = text.read_text(encoding="utf-8", errors="replace").strip()
        if words:
            found.setdefault("trigger_words", [w.strip() for w in words.replace("\n", ",").split(",") if w.strip()])
    return found


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8", errors="replace"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def preview_image(path: Path) -> Path | None:
    for suffix in PREVIEW_SUFFIXES:
        candidate = path.with_name(path.stem + suffix)
        if candidate.is_file():
            return candidate
    return None


def _sidecars(path: Path) -> list[Path]:
    names = [path.stem + suffix for suffix in PREVIEW_SUFFIXES + TEXT_SIDECARS]
    return [path.with_name(name) for name in names if path.with_name(name).is_file()]


def _copy_atomic(source: Path, target: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".import-")
    os.close(fd)
    try:
        shutil.copyfile(source, tmp)
        if target.exists():  # never overwrite: a file appeared meanwhile
            raise LibraryFileError(f"{target.name} already exists in the library.", "Import it again.")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


__all__ = ["Library", "LibraryItem", "AlreadyInLibrary", "LORA", "EMBEDDING", "describe"]
