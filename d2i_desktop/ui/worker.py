"""The worker: one QObject in its own QThread that owns the Engine.

Requests arrive as queued signals from the GUI thread; results leave as signals
carrying plain values (numpy arrays, PIL images, dataclasses). Each job has its own
cancel token (a threading.Event) that the GUI sets directly, because a queued signal
would wait behind the running job; a job cancelled before the worker reaches it never runs.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from PySide6.QtCore import QObject, QThread, Signal, Slot

from ..core.depth.estimators import DepthSettings
from ..core.speed.acceleration import PerformanceSettings
from ..core.models.demo import make_demo_model
from ..core.depth.maps import load_depth
from ..core.files.images import load_image
from ..core.generation.batch import BatchItem
from ..core.generation.depth_origin import DepthOrigin
from ..core.generation.engine import Engine, GenerationResult, ModelInfo, StepInfo
from ..core.errors import Cancelled, D2IError
from ..core.history.index import History
from ..core.history.record import depth_levels, levels_to_depth, read_record, save_result
from ..core.history.reproduce import reproduce
from ..core.extras.lora_mix import export_mix
from ..core.generation.masks import levels_to_mask
from ..core.files.outputs import next_number
from ..core.generation.params import GenerationParams
from ..core.generation.preview import PREVIEW_INTERVAL

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Output:
    """Where a job's pictures go: the folder, and the file the input image was read from (None when pasted)."""

    folder: Path
    input_path: str | None = None


class CancelTokens:
    """One threading.Event per job id, shared by the GUI thread (which sets them) and the worker (which watches
    its job's). A token set before its job starts stops the job before it runs; after cancel_all (the window
    closing) every job, also one started later, is cancelled."""

    def __init__(self):
        self._lock = threading.Lock()
        self._tokens: dict[int, threading.Event] = {}
        self._all = False

    def token(self, job_id: int) -> threading.Event:
        with self._lock:
            token = self._tokens.setdefault(job_id, threading.Event())
            if self._all:
                token.set()
            return token

    def cancel(self, job_id: int) -> None:
        self.token(job_id).set()

    def cancel_all(self) -> None:
        with self._lock:
            self._all = True
            for token in self._tokens.values():
                token.set()

    def release(self, job_id: int) -> None:
        with self._lock:
            self._tokens.pop(job_id, None)


class Worker(QObject):
    """Each request carries the id of its job; the worker says when that job started and when it ended."""

    sig_job_started = Signal(int, str)
    """A job started; carries its id and what it is doing, in words."""
    sig_job_ended = Signal(int)
    """A job ended, whatever its outcome; carries its id (its result or failure was signalled before)."""
    sig_model_loaded = Signal(object)
    """A model is ready; carries ModelInfo."""
    sig_depth_ready = Signal(str, object, object)
    """Depth estimated; carries the image key it belongs to, the core.depth.estimators.DepthEstimate (a float32 (H, W)
    map and notes) and the DepthSettings it was made with."""
    sig_step = Signal(object)
    """One denoising step done; carries StepInfo (with a uint8 preview or None)."""
    sig_result = Signal(object)
    """Generation finished; carries GenerationResult."""
    sig_made = Signal(int, object, object, object)
    """Follows sig_result: the job's id, its GenerationResult and what it was made from, the input image (PIL) and
    the float32 depth map used, so the result is shown beside its own input."""
    sig_saved = Signal(int, object)
    """The pictures of a job are written (with their record and depth map) and indexed; carries its id and their paths."""
    sig_cancelled = Signal()
    """The running job stopped because the user cancelled it."""
    sig_failed = Signal(str, str)
    """A job failed; carries a user-facing message and a hint (the traceback goes to the log)."""
    sig_fix_offered = Signal(object)
    """Follows sig_failed when the error has a one-click cure; carries the core.errors.Fix."""
    sig_idle = Signal()
    """The worker finished a job, whatever its outcome (after sig_job_ended)."""
    sig_performance = Signal(object)
    """Performance settings were applied; carries the PerformanceReport (None while no model is loaded)."""
    sig_mix_exported = Signal(object)
    """A LoRA mix was written; carries its core.library.LibraryItem."""
    sig_reproduced = Signal(str, object)
    """A recorded picture was made again; carries its path and the core.history.reproduce.Reproduction."""

    def __init__(self, engine: Engine):
        super().__init__()
        self.engine = engine
        self.cancel_tokens = CancelTokens()

    @Slot(int, str, bool)
    def load_model(self, job_id: int, source: str, make_demo: bool = False) -> None:
        def job(_cancel):
            if make_demo:
                make_demo_model(source)
            self.sig_model_loaded.emit(self.engine.load(source))
            self.sig_performance.emit(self.engine.performance_report)
        self._run(job_id, "Loading model…", job)

    @Slot(int, str, object, object)
    def estimate_depth(self, job_id: int, key: str, image: Image.Image, settings: DepthSettings) -> None:
        def job(cancel):
            self.sig_depth_ready.emit(key, self.engine.depth_estimate(image, cancel, settings), settings)
        self._run(job_id, "Estimating depth…", job)

    @Slot(int, object, object, object, object, object, object)
    def generate(self, job_id: int, params: GenerationParams, image: Image.Image, depth: np.ndarray | None,
                 output: Output, mask: np.ndarray | None, depth_origin: DepthOrigin | None) -> None:
        """`mask`: the 8-bit levels of the region to repaint (kept beside the pictures), None for all of it;
        `depth_origin`: what made `depth`, for the record (a map estimated here is estimated as `params` say)."""
        self._run(job_id, "Generating…",
                  lambda cancel: self._generate(job_id, cancel, params, image, depth, output, mask, depth_origin))

    @Slot(int, object, object, object, object)
    def repaint_file(self, job_id: int, params: GenerationParams, item: BatchItem, bright_is_near: bool | None,
                     output: Output) -> None:
        """Read `item`'s image and the depth map beside it (estimated when there is none), then generate."""
        def job(cancel):
            image = load_image(item.image).image
            depth = None if item.depth is None else load_depth(item.depth, image.size, bright_is_near)[0]
            self._generate(job_id, cancel, params, image, depth, output, None,
                           None if item.depth is None else DepthOrigin.loaded(item.depth))
        self._run(job_id, "Generating…", job)

    def _generate(self, job_id: int, cancel: threading.Event, params: GenerationParams, image: Image.Image,
                  depth: np.ndarray | None, output: Output, mask: np.ndarray | None,
                  depth_origin: DepthOrigin | None) -> None:
        if depth is None:
            depth = self.engine.estimate_depth(image, cancel, params.depth_settings)
            depth_origin = DepthOrigin.estimated(params.depth_settings)
        # Generation uses exactly the 16-bit map kept beside the pictures, as `d2i generate` does.
        levels = depth_levels(depth)
        result: GenerationResult = self.engine.generate(
            params, image, levels_to_depth(levels), on_step=self.sig_step.emit, cancel=cancel,
            preview_interval=PREVIEW_INTERVAL, mask=None if mask is None else levels_to_mask(mask),
            depth_origin=depth_origin)
        self.sig_result.emit(result)
        self.sig_made.emit(job_id, result, image, levels_to_depth(levels))
        first = next_number(output.folder)
        targets = [output.folder / f"{first + index:05d}-{seed}.png" for index, seed in enumerate(result.seeds)]
        saved = save_result(self.engine, result, output.input_path, image, levels, targets, mask_levels=mask)
        try:
            history = History()
            try:
                for path, record in saved:
                    history.add(path, record)
            finally:
                history.close()
        finally:  # written, even when the index failed
            self.sig_saved.emit(job_id, [path for path, _record in saved])

    @Slot(int, object)
    def apply_performance(self, job_id: int, settings: PerformanceSettings) -> None:
        def job(_cancel):
            before = self.engine.info
            report = self.engine.set_performance(settings)
            if self.engine.info is not None and self.engine.info is not before:  # device, precision or offload reloaded it
                self.sig_model_loaded.emit(self.engine.info)
            self.sig_performance.emit(report)
        self._run(job_id, "Applying performance settings…", job)

    @Slot(int, object, str)
    def export_mix(self, job_id: int, sources: tuple[tuple[str, float], ...], out: str) -> None:
        def job(_cancel):
            self.sig_mix_exported.emit(export_mix(self.engine.adapters(), sources, Path(out)))
        self._run(job_id, "Exporting LoRA mix…", job)

    @Slot(int, str, str)
    def reproduce(self, job_id: int, picture: str, out: str) -> None:
        """Make `picture` again from its record into `out`: with this engine when it holds the recorded model,
        else with an engine set up as recorded."""
        def job(_cancel):
            record = read_record(picture)
            if record is None:
                raise D2IError(f"{Path(picture).name} was not made by this app, so it has no record to run again.",
                               "Use settings in the gallery takes over the settings it carries.")
            same_model = self.engine.info is not None and self.engine.info.source == record["model"]["source"]
            self.sig_reproduced.emit(picture, reproduce(picture, record, out, engine=self.engine if same_model else None))
        self._run(job_id, "Reproducing…", job)

    def _run(self, job_id: int, what: str, job) -> None:
        """Run `job(cancel)` with the job's own cancel token; a job cancelled before it got here does not run."""
        cancel = self.cancel_tokens.token(job_id)
        self.sig_job_started.emit(job_id, what)
        try:
            if cancel.is_set():
                raise Cancelled()
            job(cancel)
        except Cancelled:
            self.sig_cancelled.emit()
        except D2IError as exc:
            log.warning("%s failed: %s", what, exc)
            self.sig_failed.emit(exc.message, exc.hint)
            if exc.fix is not None:
                self.sig_fix_offered.emit(exc.fix)
        except Exception as exc:  # noqa: BLE001 - anything else is a bug; report it without a traceback dialog
            log.exception("%s failed", what)
            self.sig_failed.emit(f"{what.rstrip('…')} failed: {type(exc).__name__}: {str(exc)[:300]}",
                                 "Details are in the log file.")
        finally:
            self.cancel_tokens.release(job_id)
            self.sig_job_ended.emit(job_id)
            self.sig_idle.emit()


class WorkerThread:
    """Starts the worker in its own QThread and stops it cleanly."""

    def __init__(self, engine: Engine):
        self.thread = QThread()
        self.thread.setObjectName("d2i-worker")
        self.worker = Worker(engine)
        self.worker.moveToThread(self.thread)
        self.thread.start()

    def cancel(self, job_ids) -> None:
        """Stop these jobs: the one running now, and any the worker has not started yet."""
        for job_id in job_ids:
            self.worker.cancel_tokens.cancel(job_id)

    def stop(self, timeout_ms: int = 2000) -> bool:
        """Cancel every job, also those still on their way to the worker, end the thread's loop and wait; True if it
        ended in time."""
        self.worker.cancel_tokens.cancel_all()
        self.thread.quit()
        return self.thread.wait(timeout_ms)


__all__ = ["Output", "Worker", "WorkerThread", "ModelInfo", "StepInfo"]
