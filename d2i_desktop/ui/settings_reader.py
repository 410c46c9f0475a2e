"""Reads what pictures say about how they were made, in a thread pool: a picture's text can be large, and parsing it
must never hold up the window. Each answer is handed to its callback on the GUI thread."""

from __future__ import annotations

import itertools
import logging
from pathlib import Path
from typing import Callable

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from ..core.errors import D2IError
from ..core.generation.params import GenerationParams
from ..core.history.foreign import PictureSettings, read_settings

log = logging.getLogger(__name__)


class _Read(QRunnable):
    def __init__(self, reader: SettingsReader, request: int, path: Path, base: GenerationParams):
        super().__init__()
        self.reader, self.request, self.path, self.base = reader, request, path, base

    def run(self) -> None:
        try:
            found, error = read_settings(self.path, self.base), None
        except D2IError as exc:
            found, error = None, exc
        except Exception as exc:  # noqa: BLE001 - a parser's bug on a strange file: one line, the traceback to the log
            log.exception("reading the settings of %s failed", self.path)
            found, error = None, D2IError(f"The settings of {self.path.name} could not be read: {type(exc).__name__}.",
                                          "Details are in the log file.")
        self.reader.sig_answer.emit(self.request, found, error)


class SettingsReader(QObject):
    sig_answer = Signal(int, object, object)
    """A picture was read (in the pool); carries the request, the PictureSettings or None, the D2IError or None."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(1)
        self._ids = itertools.count(1)
        self._waiting: dict[int, tuple[Callable, Callable]] = {}
        self.sig_answer.connect(self._answered)  # queued: this object lives in the GUI thread

    def read(self, path: str | Path, base: GenerationParams, then: Callable[[PictureSettings], None],
             failed: Callable[[D2IError], None]) -> None:
        """Read `path` (settings it does not give are `base`'s); call `then(found)` or `failed(error)` later."""
        request = next(self._ids)
        self._waiting[request] = (then, failed)
        self.pool.start(_Read(self, request, Path(path), base))

    def _answered(self, request: int, found: PictureSettings | None, error: D2IError | None) -> None:
        then, failed = self._waiting.pop(request)
        if error is None:
            then(found)
        else:
            failed(error)

    def shutdown(self) -> None:
        """Start no more reads and wait for the one under way."""
        self.pool.clear()
        self.pool.waitForDone(2000)
