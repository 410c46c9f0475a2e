"""The app's own files: JSON read without ever losing a damaged file, and stale temporaries of interrupted saves removed.

A damaged file is renamed `NAME.corrupt-<time>` beside itself (so the next save cannot overwrite it), a one-line
notice is queued for the user, and the caller goes on with defaults. The CLI prints the notices; the window shows them.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Callable

from filelock import FileLock

log = logging.getLogger(__name__)

STALE_AFTER_S = 24 * 3600
# Every temporary name this app writes before renaming into place.
TEMP_PATTERNS = (".d2i-*.tmp", ".models-*.json", ".library-*.json", ".import-*", ".thumb-*.png")

_lock = threading.Lock()
_notices: list[str] = []
_swept: set[Path] = set()


def take_notices() -> list[str]:
    """The notices queued since the last call (damaged files kept aside), oldest first."""
    with _lock:
        taken = list(_notices)
        _notices.clear()
    return taken


def locked(path: Path) -> FileLock:
    """Hold while reading, changing and writing `path`, so two running copies of the app never lose each other's changes."""
    return FileLock(f"{path}.lock", timeout=10)


def keep_aside(path: Path, what: str, why: str) -> Path | None:
    """Rename a damaged `path` to `NAME.corrupt-<time>` and queue a notice; None if it is not kept aside."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    kept = next(candidate for number in range(1_000_000)
                if not os.path.lexists(candidate := path.with_name(f"{path.name}.corrupt-{stamp}" + (f"-{number}" if number else ""))))
    try:
        os.rename(path, kept)
        notice = f"{what} was damaged ({why}); it was kept as {kept.name} and defaults are used."
    except FileNotFoundError:  # another thread kept it aside first
        return None
    except OSError as exc:
        notice, kept = f"{what} ({path}) is damaged ({why}) and could not be kept aside ({exc.strerror}); defaults are used.", None
    log.warning("%s", notice)
    with _lock:
        _notices.append(notice)
    return kept


def read_json(path: Path, what: str, valid: Callable[[object], bool]):
    """The JSON value stored in `path`, or None when there is none or it is damaged (then it is kept aside)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("cannot read %s: %s", path, exc)
        return None
    try:
        data = json.loads(raw)
    except ValueError:  # includes text that is not UTF-8
        keep_aside(path, what, "not valid JSON: a half-written or edited file")
        return None
    if not valid(data):
        keep_aside(path, what, "its contents are not what the app writes there")
        return None
    return data


def sweep_stale_temporaries(folder: Path, max_age_s: float = STALE_AFTER_S) -> int:
    """Delete this app's temporary files older than `max_age_s` in `folder` (once per folder per process)."""
    folder = Path(folder)
    with _lock:
        if folder in _swept:
            return 0
        _swept.add(folder)
    removed = 0
    cutoff = time.time() - max_age_s
    for pattern in TEMP_PATTERNS:
        for temp in folder.glob(pattern):
            try:
                if temp.is_file() and temp.stat().st_mtime < cutoff:
                    temp.unlink()
                    removed += 1
            except OSError:
                continue
    if removed:
        log.info("removed %d stale temporary files in %s", removed, folder)
    return removed
