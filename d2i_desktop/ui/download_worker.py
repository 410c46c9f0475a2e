"""The Models dialog's worker: a queue of downloads and Hub connection tests, run one after another in its own
thread, so the window and the generation worker stay free."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot

from ..core.depth.estimator_catalogue import EstimatorSpec
from ..core.errors import Cancelled, D2IError
from ..core.models.catalogue import Source
from ..core.models.downloads import download_estimator, download_sd2_depth
from ..core.models.hub_endpoint import check_endpoint, remember_endpoint
from ..core.models.registry import ModelRegistry, add_model

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sd2DepthDownload:
    """SD2-depth from the first of `sources` the Hub has, added to the model list; used at once when `use`."""

    sources: tuple[Source, ...]
    use: bool = False


@dataclass(frozen=True)
class EstimatorDownload:
    """A depth estimator into the Hugging Face cache."""

    spec: EstimatorSpec

    @property
    def label(self) -> str:
        return self.spec.label


@dataclass(frozen=True)
class ModelCheck:
    """A folder, cache entry or single file checked as loading does (a .ckpt is read whole) and added to the list."""

    source: str

    @property
    def label(self) -> str:
        return Path(self.source).name or self.source


@dataclass(frozen=True)
class ConnectionTest:
    """Ask the Hub whether it answers and has one of `repo_ids`."""

    repo_ids: tuple[str, ...]


@dataclass(frozen=True)
class HubAddress:
    """Where the jobs go (`endpoint`, an http(s) address), and what to remember after one succeeds
    (`typed`: the dialog's field; None when the field is empty, which forgets a remembered mirror)."""

    endpoint: str
    typed: str | None


class DownloadWorker(QObject):
    """Lives in the download thread; `run` takes a list of jobs and works through it, stopping at the first failure."""

    sig_started = Signal(object, int, int)
    """A job began: the job, its 1-based place in the list, the list's length."""
    sig_progress = Signal(object)
    """Bytes so far, total, speed and time left (a DownloadProgress)."""
    sig_note = Signal(str)
    """Something worth knowing about the download in progress, e.g. a source the Hub does not have."""
    sig_downloaded = Signal(object, str)
    """A download completed: the job, and the repo id it came from."""
    sig_added = Signal(str)
    """A model was checked and added to the list: its source."""
    sig_checked = Signal(object)
    """A connection test ended (an EndpointCheck)."""
    sig_failed = Signal(object, str, str)
    """A job failed and the rest of the list was dropped: the job, message and hint."""
    sig_cancelled = Signal()
    """The user cancelled; partial files are kept for a resume and the rest of the list was dropped."""
    sig_finished = Signal()
    """The list is done, whichever way it ended."""

    def __init__(self, registry: ModelRegistry):
        super().__init__()
        self.registry = registry
        self.cancel_event = threading.Event()  # set from the GUI thread directly: a queued call would wait its turn

    @Slot(object, object)
    def run(self, jobs: list, address: HubAddress | None) -> None:
        try:
            for place, job in enumerate(jobs, 1):
                if self.cancel_event.is_set():
                    self.sig_cancelled.emit()
                    return
                self.sig_started.emit(job, place, len(jobs))
                if not self._run_one(job, address):
                    return
        finally:
            self.sig_finished.emit()

    def _run_one(self, job, address: HubAddress | None) -> bool:
        try:
            if isinstance(job, ModelCheck):
                add_model(job.source, registry=self.registry)
                self.sig_added.emit(job.source)
                return True
            if isinstance(job, ConnectionTest):
                check = check_endpoint(address.endpoint, repo_ids=job.repo_ids)
                if check.ok:
                    self._remember(address)
                self.sig_checked.emit(check)
                return True
            self.sig_downloaded.emit(job, self._download(job, address.endpoint))
        except Cancelled:
            self.sig_cancelled.emit()
            return False
        except D2IError as exc:
            self.sig_failed.emit(job, exc.message, exc.hint)
            return False
        except Exception as exc:  # never let a download take the thread down
            log.exception("download failed")
            self.sig_failed.emit(job, f"The download failed: {type(exc).__name__}: {str(exc)[:200]}", "Try again.")
            return False
        self._remember(address)
        return True

    def _download(self, job, endpoint: str) -> str:
        if isinstance(job, Sd2DepthDownload):
            source, _ = download_sd2_depth(job.sources, endpoint=endpoint, on_progress=self.sig_progress.emit,
                                           on_note=self.sig_note.emit, cancel=self.cancel_event)
            add_model(source.repo_id, registry=self.registry)  # only once every file is there and checked
            return source.repo_id
        download_estimator(job.spec.name, endpoint=endpoint, on_progress=self.sig_progress.emit,
                           cancel=self.cancel_event)
        return job.spec.repo_id

    @staticmethod
    def _remember(address: HubAddress) -> None:
        try:
            remember_endpoint(address.typed)
        except (OSError, D2IError):  # the download itself succeeded; the address is asked for again next time
            log.warning("could not remember the Hub address %s", address.typed, exc_info=True)
