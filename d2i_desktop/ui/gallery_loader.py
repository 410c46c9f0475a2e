"""The gallery's work off the GUI thread: searching the index, making thumbnails, bringing the index in step.

Each runs in a QThreadPool on a connection of its own and hands back plain values (entries, a QImage, a report)
through a signal; the GUI thread makes the QPixmap and lists the entries.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, QRunnable, Signal
from PySide6.QtGui import QImage

from ..core.errors import D2IError
from ..core.history.index import Entry, History
from ..core.history.thumbnails import thumbnail
from .canvas import to_qimage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Query:
    """What the gallery asks of the index: a search's words and filters and the page wanted."""
    words: str = ""
    model: str | None = None
    lora: str | None = None
    favourite: bool = False
    since: float | None = None
    offset: int = 0
    limit: int = 200


@dataclass(frozen=True)
class Found:
    """A search's answer: the page of entries and the names offered in the model and LoRA filters."""
    entries: list[Entry]
    models: list[str]
    loras: list[str]


def run_query(history: History, query: Query) -> Found:
    entries = history.search(query.words, model=query.model, lora=query.lora, favourite=query.favourite,
                             since=query.since, limit=query.limit, offset=query.offset)
    return Found(entries, history.models(), history.loras())


class Searches(QObject):
    sig_found = Signal(int, object)
    """A search ended; carries its number and the Found, or the error that stopped it."""


class RunSearch(QRunnable):
    def __init__(self, database: Path, number: int, query: Query, done: Searches):
        super().__init__()
        self.database, self.number, self.query, self.done = database, number, query, done

    def run(self) -> None:
        try:
            history = History(self.database, check=False)
            try:
                found = run_query(history, self.query)
            finally:
                history.close()
        except (sqlite3.Error, D2IError) as exc:
            found = exc
        self.done.sig_found.emit(self.number, found)


class Thumbnails(QObject):
    sig_ready = Signal(str, QImage)
    """A thumbnail was made; carries the picture's path and the image."""


class MakeThumbnail(QRunnable):
    def __init__(self, path: str, done: Thumbnails):
        super().__init__()
        self.path, self.done = path, done

    def run(self) -> None:
        try:
            image = to_qimage(thumbnail(self.path))
        except (OSError, D2IError) as exc:
            log.info("no thumbnail for %s: %s", self.path, exc)
            return
        self.done.sig_ready.emit(self.path, image)


class Synced(QObject):
    sig_done = Signal(object)
    """The index is in step with the folders; carries the SyncReport, or the sqlite3 error that stopped it."""


class SyncIndex(QRunnable):
    """Bring the index in step with the folders on a connection of its own (it stats every indexed file)."""

    def __init__(self, database: Path, folders: list[str], done: Synced):
        super().__init__()
        self.database, self.folders, self.done = database, folders, done

    def run(self) -> None:
        try:
            history = History(self.database)
            try:
                report = history.sync(self.folders)
            finally:
                history.close()
        except (sqlite3.Error, D2IError) as exc:
            report = exc
        self.done.sig_done.emit(report)
