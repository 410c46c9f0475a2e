"""The window's state without widgets: the current image, its depth map and its repaint mask, each with an undo
history, the results, and the jobs sent to the worker, each with an id.

Only QtCore is used (signals tell the panels what changed); no widget or GUI class is imported, so the state
is tested without a window and outlives any layout of panels.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QPointF, Signal

from .core.depth import edit as depth_edit
from .core.depth.edit import Brush, Patch, Stroke
from .core.generation.depth_origin import DepthOrigin
from .core.generation.depth_source import image_key
from .core.generation.engine import GenerationResult, ModelInfo
from .core.files.images import LoadedImage


class EditHistory:
    """Undo and redo of edits already made to an array (a depth map or a mask): each step is a Patch with its name."""

    def __init__(self):
        self._done: list[tuple[Patch, str]] = []
        self._undone: list[tuple[Patch, str]] = []

    def push(self, patch: Patch, text: str) -> None:
        self._done.append((patch, text))
        self._undone.clear()

    def take_undo(self) -> Patch | None:
        if not self._done:
            return None
        self._undone.append(self._done.pop())
        return self._undone[-1][0]

    def take_redo(self) -> Patch | None:
        if not self._undone:
            return None
        self._done.append(self._undone.pop())
        return self._done[-1][0]

    def clear(self) -> None:
        self._done.clear()
        self._undone.clear()

    def count(self) -> int:
        """Steps that can be undone."""
        return len(self._done)

    def undo_text(self) -> str:
        return self._done[-1][1] if self._done else ""

    def redo_text(self) -> str:
        return self._undone[-1][1] if self._undone else ""


class DepthDocument(QObject):
    """The current depth map (float32, edited in place), the estimate it started from, the file last loaded, and
    its history."""

    sig_painting = Signal(object)
    """A stroke in progress changed the map; carries the (top, left, bottom, right) box of its latest dabs."""
    sig_changed = Signal(object)
    """An edit finished; carries the box it changed, or None when the map itself was replaced or cleared."""
    sig_picked = Signal(float)
    """A depth was picked for the flatten brush; carries it in the map's own units."""
    sig_history_changed = Signal()
    """What Undo and Redo would do changed."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.depth: np.ndarray | None = None
        self.estimate: np.ndarray | None = None
        self.estimate_key = ""
        self._made: list[tuple[DepthOrigin, np.ndarray]] = []  # the estimate and the file last loaded, with their maps
        self.brush = Brush()
        self.history = EditHistory()
        self._stroke: Stroke | None = None

    def clear(self) -> None:
        """Forget the map, its estimate and its history (a new image is open)."""
        self._stroke = None
        self.depth = self.estimate = None
        self.estimate_key = ""
        self._made = []
        self.history.clear()
        self.sig_history_changed.emit()
        self.sig_changed.emit(None)

    def load(self, depth: np.ndarray, text: str, estimate_key: str | None = None,
             origin: DepthOrigin | None = None) -> np.ndarray:
        """Make `depth` the current map: undoably when it replaces one of the same size; the current array.
        `origin` says what made it (an estimate, with `estimate_key`, or a file); without one it counts as an edit."""
        depth = np.ascontiguousarray(depth, dtype=np.float32)
        self.end_stroke()
        if estimate_key is not None:
            self.estimate, self.estimate_key = depth.copy(), estimate_key
        if origin is not None:
            self._made = [made for made in self._made if made[0].kind != origin.kind] + [(origin, depth.copy())]
        if self.depth is None or self.depth.shape != depth.shape:
            self.depth = depth.copy()
            self.history.clear()
            self.sig_history_changed.emit()
        elif not np.array_equal(self.depth, depth):
            self._push(depth_edit.replace(self.depth, depth), text)
            return self.depth
        self.sig_changed.emit(None)
        return self.depth

    def origin(self) -> DepthOrigin | None:
        """What made the current map: the estimate or the file it still equals, else a hand edit; None without one."""
        if self.depth is None:
            return None
        made = next((origin for origin, depth in self._made if np.array_equal(depth, self.depth)), None)
        return made or DepthOrigin.edited()

    def is_edited(self) -> bool:
        """True when the map differs from the estimate (or there is no estimate to compare with)."""
        return self.depth is not None and (self.estimate is None or not np.array_equal(self.depth, self.estimate))

    def reset_to_estimate(self) -> bool:
        if self.estimate is None or self.depth is None:
            return False
        self.load(self.estimate, "Reset to the estimate")
        return True

    def apply(self, tool, text: str) -> None:
        """Run a whole-map tool (array -> new array) as one undoable edit."""
        if self.depth is None:
            return
        self.end_stroke()
        self._push(depth_edit.replace(self.depth, tool(self.depth)), text)

    def _push(self, patch: Patch, text: str) -> None:
        """Record an edit already made to the map, and announce it."""
        self.history.push(patch, text)
        self.sig_history_changed.emit()
        self.sig_changed.emit(patch.box)

    def undo(self) -> None:
        if self._stroke is None and (patch := self.history.take_undo()) is not None:  # never under a stroke
            patch.undo(self.depth)
            self.sig_history_changed.emit()
            self.sig_changed.emit(patch.box)

    def redo(self) -> None:
        if self._stroke is None and (patch := self.history.take_redo()) is not None:
            patch.redo(self.depth)
            self.sig_history_changed.emit()
            self.sig_changed.emit(patch.box)

    # -- brushes -------------------------------------------------------------------------
    def set_brush(self, **changes) -> None:
        self.brush = dataclasses.replace(self.brush, **changes)

    def begin_stroke(self, point: QPointF) -> None:
        if self.depth is None or self.brush.kind not in depth_edit.BRUSHES:
            return
        self.end_stroke()
        self._stroke = Stroke(self.depth, self.brush)
        self._emit_box(self._stroke.move_to(point.x(), point.y()))

    def continue_stroke(self, point: QPointF) -> None:
        if self._stroke is not None:
            self._emit_box(self._stroke.move_to(point.x(), point.y()))

    def end_stroke(self) -> None:
        stroke, self._stroke = self._stroke, None
        patch = stroke.finish() if stroke is not None else None
        if patch is not None:
            self._push(patch, f"{stroke.brush.kind.capitalize()} stroke")

    def pick(self, point: QPointF) -> float | None:
        if self.depth is None:
            return None
        value = depth_edit.pick(self.depth, point.x(), point.y())
        self.set_brush(target=value)
        self.sig_picked.emit(value)
        return value

    def _emit_box(self, box) -> None:
        if box is not None:
            self.sig_painting.emit(box)


@dataclass(frozen=True)
class Job:
    """One request to the worker, from the moment it is made until the worker says it ended."""

    id: int
    what: str  # in words, e.g. "Generating…"
    request: tuple = ()  # a queued generation's arguments for the worker, after the id
    cancellable: bool = True  # False for jobs that cannot stop half-way and leave nothing to show (a model load)


class Session(QObject):
    """Everything the window shows and works on, without the widgets that show it."""

    sig_image_changed = Signal()
    """Another image is open (its depth and results are gone)."""
    sig_result_changed = Signal()
    """A result arrived, or another of its images was chosen."""
    sig_model_changed = Signal()
    """A model finished loading, or loading one began (model is None meanwhile)."""
    sig_jobs_changed = Signal()
    """A job was asked for, queued, moved, started or ended."""
    sig_mask_changed = Signal()
    """The mask changed by an undoable step, or by its undo or redo."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.image: LoadedImage | None = None
        self.image_name = ""
        self.image_path: str | None = None  # the file it was read from; None when pasted
        self.image_key = ""
        self.depth = DepthDocument(self)
        self.mask: np.ndarray | None = None  # the region to repaint: float32 (H, W), 1 = repaint; None: all of it
        self.mask_history = EditHistory()
        self.result: GenerationResult | None = None
        self.result_index = 0
        self.result_paths: list[Path] = []  # where the result's pictures were written, once they are
        self.result_job: int | None = None  # the job that made the result
        self.model: ModelInfo | None = None
        self.waiting: list[Job] = []  # sent to the worker, not started yet
        self.running: Job | None = None
        self.queue: list[Job] = []  # generations kept here until the worker is free; they can be reordered or taken back
        self._ids = itertools.count(1)

    # -- image and results -------------------------------------------------------------------
    def open_image(self, loaded: LoadedImage, name: str, path: str | Path | None = None) -> None:
        self.image, self.image_name, self.image_key = loaded, name, image_key(loaded.image)
        self.image_path = str(path) if path else None
        self.result, self.result_index, self.result_paths, self.result_job = None, 0, [], None
        self.depth.clear()
        self.mask = None
        self.mask_history.clear()
        self.sig_image_changed.emit()

    def set_result(self, result: GenerationResult, job_id: int | None = None) -> None:
        """`result` of job `job_id`, made from the image open now."""
        self.result, self.result_index, self.result_paths = result, 0, []
        self.result_job = job_id
        self.sig_result_changed.emit()

    def set_saved(self, job_id: int, paths: list[Path]) -> None:
        """The pictures of job `job_id` were written to `paths`; they are the current result's when it is that job's."""
        if job_id == self.result_job and self.result is not None:
            self.result_paths = list(paths)

    def current_path(self) -> Path | None:
        """The file of the chosen picture of the result; None before it is written."""
        return self.result_paths[self.result_index] if self.result_index < len(self.result_paths) else None

    def select_result(self, index: int) -> bool:
        if self.result is None or not 0 <= index < len(self.result.images):
            return False
        self.result_index = index
        self.sig_result_changed.emit()
        return True

    def current_result(self):
        """The chosen image of the result, with its seed and settings text; None without a result."""
        if self.result is None:
            return None
        index = self.result_index
        return self.result.images[index], self.result.seeds[index], self.result.parameters_text(index)

    def set_model(self, model: ModelInfo | None) -> None:
        self.model = model
        self.sig_model_changed.emit()

    def can_generate(self) -> bool:
        return self.model is not None and self.image is not None

    # -- mask --------------------------------------------------------------------------------
    def mask_to_paint(self) -> np.ndarray | None:
        """The mask, made empty at the image's size when there is none; None without an image."""
        if self.mask is None and self.image is not None:
            width, height = self.image.image.size
            self.mask = np.zeros((height, width), dtype=np.float32)
        return self.mask

    def set_mask(self, mask: np.ndarray | None, text: str) -> None:
        """Make `mask` the mask (None: no mask) as one undoable step; an image must be open."""
        before = self.mask_to_paint().copy()
        after = np.zeros_like(before) if mask is None else np.asarray(mask, dtype=np.float32)
        self.mask = None if mask is None else after
        self._push_mask(Patch((0, 0, *before.shape), before, after.copy()), text)

    def record_mask(self, before: np.ndarray, text: str) -> None:
        """Record what was painted on the mask in place since `before` (a copy of it) as one undoable step."""
        changed = before != self.mask
        rows, columns = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
        if rows.size:
            box = (int(rows[0]), int(columns[0]), int(rows[-1]) + 1, int(columns[-1]) + 1)
            area = slice(box[0], box[2]), slice(box[1], box[3])
            self._push_mask(Patch(box, before[area].copy(), self.mask[area].copy()), text)

    def _push_mask(self, patch: Patch, text: str) -> None:
        self.mask_history.push(patch, text)
        self.sig_mask_changed.emit()

    def undo_mask(self) -> None:
        if (patch := self.mask_history.take_undo()) is not None:
            patch.undo(self.mask_to_paint())
            self.sig_mask_changed.emit()

    def redo_mask(self) -> None:
        if (patch := self.mask_history.take_redo()) is not None:
            patch.redo(self.mask_to_paint())
            self.sig_mask_changed.emit()

    # -- jobs --------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """True while a job runs or waits for the worker."""
        return self.running is not None or bool(self.waiting)

    def add_job(self, what: str, cancellable: bool = True) -> Job:
        """A new job, waiting until the worker starts it."""
        job = Job(next(self._ids), what, cancellable=cancellable)
        self.waiting.append(job)
        self.sig_jobs_changed.emit()
        return job

    def cancellable_jobs(self) -> list[int]:
        """The ids of the running job and of those sent to the worker but not started, where they can be cancelled."""
        return [job.id for job in [self.running, *self.waiting] if job is not None and job.cancellable]

    def job_started(self, job_id: int) -> None:
        self.running = next((job for job in self.waiting if job.id == job_id), None)
        self.waiting = [job for job in self.waiting if job.id != job_id]
        self.sig_jobs_changed.emit()

    def job_ended(self, job_id: int) -> None:
        if self.running is not None and self.running.id == job_id:
            self.running = None
        self.waiting = [job for job in self.waiting if job.id != job_id]
        self.sig_jobs_changed.emit()

    def enqueue(self, what: str, request: tuple) -> Job:
        """A generation for the queue; it goes to the worker when take_next gives it."""
        job = Job(next(self._ids), what, request)
        self.queue.append(job)
        self.sig_jobs_changed.emit()
        return job

    def take_next(self) -> Job | None:
        """The first queued job, now waiting for the worker; None when the queue is empty or the worker is busy."""
        if self.busy or not self.queue:
            return None
        job = self.queue.pop(0)
        self.waiting.append(job)
        self.sig_jobs_changed.emit()
        return job

    def move(self, job_id: int, places: int) -> bool:
        """Move a queued job `places` up (negative) or down the queue."""
        index = next((i for i, job in enumerate(self.queue) if job.id == job_id), None)
        if index is None or not 0 <= index + places < len(self.queue):
            return False
        self.queue.insert(index + places, self.queue.pop(index))
        self.sig_jobs_changed.emit()
        return True

    def take_back(self, job_id: int) -> Job | None:
        """Remove a queued job from the queue and return it (None when it is not queued any more)."""
        job = next((job for job in self.queue if job.id == job_id), None)
        if job is not None:
            self.queue.remove(job)
            self.sig_jobs_changed.emit()
        return job

    def clear_queue(self) -> None:
        self.queue.clear()
        self.sig_jobs_changed.emit()

    def status(self) -> str:
        """The running job in words, and how many wait behind it."""
        if not self.busy:
            return ""
        text = self.running.what if self.running is not None else self.waiting[0].what
        behind = len(self.waiting) - (self.running is None) + len(self.queue)
        return text + (f" ({behind} more waiting)" if behind else "")
