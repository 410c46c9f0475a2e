"""Runs file work that can take longer than a frame (reading, hashing) in a thread pool, so the window never freezes;
each answer is handed to its callback on the GUI thread."""

from __future__ import annotations

import itertools
import logging
from typing import Any, Callable

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from ..core.errors import D2IError

log = logging.getLogger(__name__)


class _Call(QRunnable):
    def __init__(self, loader: FileLoader, request: int, work: Callable[[], Any]):
        super().__init__()
        self.loader, self.request, self.work = loader, request, work

    def run(self) -> None:
        try:
            answer, error = self.work(), None
        except D2IError as exc:
            answer, error = None, exc
        except Exception as exc:  # noqa: BLE001 - a bug on a strange file: one line, the traceback to the log
            log.exception("file work %r failed", self.work)
            answer, error = None, D2IError(f"The files could not be read: {type(exc).__name__}.",
                                           "Details are in the log file.")
        self.loader.sig_answer.emit(self.request, answer, error)


class FileLoader(QObject):
    sig_answer = Signal(int, object, object)
    """A piece of work ended (in the pool); carries the request, its answer or None, the D2IError or None."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(1)  # one after the other, in the order asked
        self._ids = itertools.count(1)
        self._waiting: dict[int, tuple[Callable, Callable]] = {}
        self.sig_answer.connect(self._answered)  # queued: this object lives in the GUI thread

    def run(self, work: Callable[[], Any], then: Callable[[Any], None], failed: Callable[[D2IError], None]) -> None:
        """Call `work()` in the pool; later, on the GUI thread, `then(answer)` or `failed(error)`."""
        request = next(self._ids)
        self._waiting[request] = (then, failed)
        self.pool.start(_Call(self, request, work))

    def _answered(self, request: int, answer: Any, error: D2IError | None) -> None:
        then, failed = self._waiting.pop(request)
        if error is None:
            then(answer)
        else:
            failed(error)

    def shutdown(self) -> None:
        """Start no more work and wait for the piece under way."""
        self.pool.clear()
        self.pool.waitForDone(2000)
