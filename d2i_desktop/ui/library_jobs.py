"""The library's slow work (hashing, copying, trashing, scanning) on one background thread, one job after another."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QObject, QThreadPool, Signal

from ..core.errors import D2IError
from ..core.extras.library import AlreadyInLibrary, Library, LibraryItem

log = logging.getLogger(__name__)

Notice = tuple[str, str, str]
"""A message for the notice bar: message, hint, level ("error", "warning" or "info")."""


def _tr(text: str) -> str:
    return QCoreApplication.translate("LibraryJobs", text)


class LibraryJobs(QObject):
    """Runs library work off the GUI thread, in the order asked; each job ends with a fresh scan of the library.

    One thread, so a rescan never overtakes the import before it; two running copies of the app are kept apart
    by the library's own file locks.
    """

    sig_finished = Signal(object, object)
    """The job's notice (a Notice or None), then the library's items after it (or the D2IError that stopped the scan)."""
    sig_busy = Signal(str)
    """What is being done now; empty once nothing is."""
    _sig_job_done = Signal(object, object)

    def __init__(self, library: Library):
        super().__init__()
        self.library = library
        self._pool = QThreadPool(maxThreadCount=1)
        self._waiting: list[str] = []  # what each job not yet finished does, the running one first
        self._sig_job_done.connect(self._job_done)

    @property
    def busy(self) -> bool:
        return bool(self._waiting)

    def run(self, doing: str, work: Callable[[Library], Notice | None]) -> None:
        """Do `work(library)` off the GUI thread, then scan; `doing` says what for as long as it runs."""
        self._waiting.append(doing)
        self.sig_busy.emit(self._waiting[0])
        library, done = self.library, self._sig_job_done

        def job():
            try:
                notice = work(library)
            except D2IError as exc:
                notice = (exc.message, exc.hint, "error")
            except Exception as exc:  # the job's end must still reach the panel, or it stays busy
                log.exception("library job failed")
                notice = (_tr("The library could not finish: {}").format(exc), _tr("See the log for details."), "error")
            try:
                found = library.items()
            except D2IError as exc:
                found = exc
            done.emit(notice, found)

        self._pool.start(job)

    def _job_done(self, notice: Notice | None, found) -> None:
        self._waiting.pop(0)
        self.sig_busy.emit(self._waiting[0] if self._waiting else "")
        self.sig_finished.emit(notice, found)


def import_files(library: Library, paths: list[Path]) -> Notice | None:
    """Copy files into the library; what was imported, skipped or refused, as one notice (a refusal matters most)."""
    imported, notes, error = [], [], None
    for path in paths:
        try:
            item = library.import_file(path)
        except AlreadyInLibrary as exc:
            notes.append(exc.message)
            continue
        except D2IError as exc:
            error = exc
            continue
        except OSError as exc:  # e.g. the disk is full or the file went away while it was copied
            error = D2IError(_tr("Could not import {}: {}.").format(path.name, exc.strerror or exc),
                             _tr("Check the file and the free space on the library's drive, then import it again."))
            continue
        imported.append(item)
        if item.name != path.stem:
            notes.append(f"{path.name} is called '{item.name}': the name '{path.stem}' was taken.")
    if error is not None:
        return error.message, error.hint, "error"
    if imported or notes:
        done = f"Imported {', '.join(item.name for item in imported)}." if imported else "Nothing was imported."
        return done, " ".join(notes), "info"
    return None


def remove_item(library: Library, item: LibraryItem) -> Notice:
    library.remove(item)
    return f"Moved {item.path.name} to the trash.", "Restore it from the trash to bring it back.", "info"
