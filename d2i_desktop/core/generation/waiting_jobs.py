"""Generations still waiting in the queue, kept in the app-data folder so they survive a restart.

`waiting-jobs.json` lists them in order; each job's arrays (a pasted image, its depth map, its mask) are files in a
folder of its own beside it, written once when the job is first kept. A job whose files are gone when the list is
read is dropped with a note.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image

from ..files.app_data import read_json
from .depth_origin import DepthOrigin
from .params import GenerationParams

LIST_NAME = "waiting-jobs.json"
FOLDER_NAME = "waiting-jobs"


@dataclass(frozen=True)
class WaitingJob:
    """A queued generation as files: everything needed to queue it again."""

    what: str  # in words, as the queue shows it
    params: GenerationParams
    image: Path  # the input image: the file it was read from, or a kept copy of a pasted one
    output: Path  # the folder its pictures go to
    input_path: str | None  # as the record names the input: the file it was read from; None when pasted
    depth: Path | None = None  # the depth map (.npy, or a file beside a folder's image); None: estimated when it runs
    mask: Path | None = None  # 8-bit levels of the region to repaint (.png); None: all of it
    depth_origin: DepthOrigin | None = None
    from_folder: bool = False  # a Repaint-a-folder job: its image and depth map are read when it starts
    bright_is_near: bool | None = None  # how a folder job's depth file is read
    files: str = ""  # the name of the folder of files kept for this job; "" when it has none

    def missing(self) -> list[Path]:
        return [path for path in (self.image, self.depth, self.mask) if path is not None and not path.is_file()]

    def to_json(self) -> dict:
        return {"what": self.what, "params": json.loads(self.params.to_json()), "image": str(self.image),
                "output": str(self.output), "input_path": self.input_path,
                "depth": None if self.depth is None else str(self.depth),
                "mask": None if self.mask is None else str(self.mask),
                "depth_origin": None if self.depth_origin is None else self.depth_origin.to_record(),
                "from_folder": self.from_folder, "bright_is_near": self.bright_is_near, "files": self.files}

    @classmethod
    def from_json(cls, value: dict) -> WaitingJob:
        def path(key):
            return None if value.get(key) is None else Path(value[key])
        return cls(str(value["what"]), GenerationParams.from_json(json.dumps(value["params"])), Path(value["image"]),
                   Path(value["output"]), value.get("input_path"), path("depth"), path("mask"),
                   DepthOrigin.from_record(value.get("depth_origin")), bool(value.get("from_folder")),
                   value.get("bright_is_near"), str(value.get("files", "")))


class WaitingJobs:
    """The kept queue in `folder` (the app-data folder)."""

    def __init__(self, folder: Path):
        self.list_path = folder / LIST_NAME
        self.files_root = folder / FOLDER_NAME

    def keep_files(self, job: WaitingJob, pasted: Image.Image | None, depth: np.ndarray | None,
                   mask: np.ndarray | None) -> WaitingJob:
        """`job` with its arrays written to a folder of its own: the pasted image (when `pasted`), depth and mask."""
        if pasted is None and depth is None and mask is None:
            return job
        name = uuid.uuid4().hex
        folder = self.files_root / name
        folder.mkdir(parents=True)
        changes = {"files": name}
        if pasted is not None:
            pasted.save(changes.setdefault("image", folder / "image.png"))
        if depth is not None:
            np.save(changes.setdefault("depth", folder / "depth.npy"), np.asarray(depth, dtype=np.float32))
        if mask is not None:
            Image.fromarray(mask).save(changes.setdefault("mask", folder / "mask.png"))
        return replace(job, **changes)

    def save(self, jobs: list[WaitingJob]) -> None:
        """Make `jobs` the kept queue, in this order; files of jobs no longer in it are removed."""
        self.list_path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=self.list_path.parent, prefix=".d2i-", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump([job.to_json() for job in jobs], file, indent=1)
        os.replace(temp, self.list_path)
        kept = {job.files for job in jobs}
        if self.files_root.is_dir():
            for folder in self.files_root.iterdir():
                if folder.name not in kept:
                    shutil.rmtree(folder, ignore_errors=True)

    def load(self) -> tuple[list[WaitingJob], list[str]]:
        """The kept jobs whose files are all there, in order, and a note for each one dropped."""
        data = read_json(self.list_path, "The list of waiting jobs", lambda value: isinstance(value, list))
        jobs, notes = [], []
        for value in data or []:
            try:
                job = WaitingJob.from_json(value)
            except (KeyError, TypeError, ValueError):
                notes.append("A waiting job could not be read back and was dropped.")
                continue
            gone = job.missing()
            if gone:
                notes.append(f"“{job.what}” was dropped: {gone[0]} is gone.")
            else:
                jobs.append(job)
        return jobs, notes

    def discard(self) -> None:
        """Forget every kept job and its files."""
        self.save([])
