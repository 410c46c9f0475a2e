"""Keeps the session's queue in the app-data folder whenever it changes, and turns kept jobs back into requests.

A queued request is what main_window sends the worker after the job id: for a generation (params, image, depth,
Output, mask levels, depth origin), for a Repaint-a-folder job (params, BatchItem, bright_is_near, Output).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image
from PySide6.QtCore import QCoreApplication
from PySide6.QtWidgets import QMessageBox, QWidget

from ..core.errors import D2IError
from ..core.files.images import load_image
from ..core.generation.batch import BatchItem
from ..core.generation.waiting_jobs import WaitingJob, WaitingJobs
from ..session import Session
from .worker import Output

log = logging.getLogger(__name__)


def tr(text: str, count: int = -1) -> str:
    return QCoreApplication.translate("QueueStore", text, None, count)


class QueueStore:
    """Writes the queue (not the running job) to `folder` each time the session's jobs change."""

    def __init__(self, session: Session, folder: Path):
        self.session = session
        self.kept = WaitingJobs(folder)
        self._files: dict[int, WaitingJob] = {}  # job id -> the job as kept, its files written once
        self.restored: list[WaitingJob] = []
        self.notes: list[str] = []
        self._watching = False

    def read(self) -> None:
        """Read the jobs kept at the last close, before the queue is watched."""
        self.restored, self.notes = self.kept.load()

    def start(self, run_restored: bool) -> None:
        """Queue the jobs read back (or discard them), then keep the queue from now on."""
        for waiting in self.restored if run_restored else []:
            try:
                request = restored_request(waiting)
            except D2IError as exc:
                self.notes.append(tr("“{what}” was dropped: {why}").format(what=waiting.what, why=exc.message))
                continue
            self._files[self.session.enqueue(waiting.what, request).id] = waiting
        self.restored = []
        self.save()
        self.session.sig_jobs_changed.connect(self.save)
        self._watching = True

    def ask(self, parent: QWidget, show_notes) -> QMessageBox | None:
        """Ask once, in a message box over `parent`, whether the jobs read back run again (then they are queued) or
        are discarded; `show_notes(text)` tells of jobs dropped. None when there was nothing to ask."""
        if self.notes:
            show_notes(" ".join(self.notes))
            self.notes = []
        if not self.restored:
            self.start(run_restored=False)
            return None
        box = QMessageBox(QMessageBox.Icon.Question, tr("Jobs were waiting"),
                          tr("%n job(s) were waiting when the app closed. Run them?", len(self.restored)),
                          parent=parent, objectName="waitingJobsBox")
        run = box.addButton(tr("Run them"), QMessageBox.ButtonRole.AcceptRole)
        box.setEscapeButton(box.addButton(tr("Discard"), QMessageBox.ButtonRole.DestructiveRole))
        box.setDefaultButton(run)

        def answered(button) -> None:
            self.start(run_restored=button is run)
            if self.notes:
                show_notes(" ".join(self.notes))
        box.buttonClicked.connect(answered)
        box.open()
        return box

    def stop(self) -> None:
        """Keep the queue as it is now and stop watching it (the window closes; its worker stops)."""
        if self._watching:
            self.session.sig_jobs_changed.disconnect(self.save)
            self._watching = False
            self.save()

    def save(self) -> None:
        try:
            jobs = [self._kept(job.id, job.what, job.request) for job in self.session.queue]
            self.kept.save(jobs)
        except OSError as exc:  # the queue still runs; only its copy for the next start is missing
            log.warning("the waiting jobs could not be kept: %s", exc)
            return
        self._files = {job.id: self._files[job.id] for job in self.session.queue}

    def _kept(self, job_id: int, what: str, request: tuple) -> WaitingJob:
        if job_id not in self._files:
            self._files[job_id] = self._to_waiting(what, request)
        return self._files[job_id]

    def _to_waiting(self, what: str, request: tuple) -> WaitingJob:
        params, output = request[0], request[3]
        if isinstance(request[1], BatchItem):
            item = request[1]
            return WaitingJob(what, params, item.image, output.folder, output.input_path, item.depth,
                              from_folder=True, bright_is_near=request[2])
        _params, image, depth, _output, mask, origin = request
        pasted = output.input_path is None
        job = WaitingJob(what, params, Path(output.input_path or ""), output.folder, output.input_path,
                         depth_origin=origin)
        return self.kept.keep_files(job, image if pasted else None, depth, mask)


def restored_request(job: WaitingJob) -> tuple:
    """The worker request a kept job stands for; its image and maps are read now (a D2IError when they cannot be)."""
    output = Output(job.output, job.input_path)
    if job.from_folder:
        return job.params, BatchItem(job.image, job.depth), job.bright_is_near, output
    image = load_image(job.image).image
    try:
        depth = None if job.depth is None else np.load(job.depth, allow_pickle=False)
        mask = None if job.mask is None else np.asarray(Image.open(job.mask).convert("L"), dtype=np.uint8)
    except (OSError, ValueError) as exc:
        raise D2IError(f"its depth map or mask could not be read ({exc}).", "Queue it again from the Generate panel.") from exc
    return job.params, image, depth, output, mask, job.depth_origin
