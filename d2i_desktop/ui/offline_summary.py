"""Ready offline: is everything the chosen set-up needs on this computer? One line per part, and one button that
downloads the missing parts one after another.

The set-up is the model in use (SD2-depth while the demo model is in use, or none is) and the default depth estimator.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QGroupBox, QHBoxLayout, QLabel, QPushButton

from ..core.depth.estimators import DEFAULT_ESTIMATOR, ESTIMATORS, estimator_folder
from ..core.models.catalogue import Source
from ..core.models.downloads import format_bytes
from ..core.models.hf_cache import cached_snapshot
from .download_worker import EstimatorDownload, Sd2DepthDownload

PRESENT = ("in-use", "downloaded", "in-model")
MISSING = ("missing", "with-model")  # "with-model": DPT-hybrid, which the SD2-depth download brings along


@dataclass(frozen=True)
class OfflinePart:
    role: str  # "sd2-depth" (for the demo model, or none), "model" (the one in use) or "estimator"
    name: str  # the model's or the depth estimator's label
    state: str  # one of PRESENT or MISSING
    size_bytes: int  # its download
    download: Sd2DepthDownload | EstimatorDownload | None = None  # what fetches it, when it is missing on its own

    @property
    def present(self) -> bool:
        return self.state in PRESENT


def estimator_presence(name: str, model_holds_dpt: bool) -> str | None:
    """"in-model" (DPT-hybrid inside the model in use or a cached SD2-depth model), "downloaded", or None."""
    folder = estimator_folder(name)
    if name == DEFAULT_ESTIMATOR and (model_holds_dpt or (folder is not None and folder.name == "depth_estimator")):
        return "in-model"
    return "downloaded" if folder is not None else None


def offline_parts(model, estimator: str, sources: tuple[Source, ...]) -> list[OfflinePart]:
    """The parts of the set-up and where each is; `model` is the ModelInfo in use, or None."""
    if model is not None and not model.is_demo:
        parts = [OfflinePart("model", model.label, "in-use", 0)]
        holds_dpt, dpt_comes_with_model = model.own_depth_estimator, False
    else:
        snapshot = next(filter(None, (cached_snapshot(source.repo_id) for source in sources)), None)
        parts = [OfflinePart("sd2-depth", "SD2-depth", "downloaded" if snapshot else "missing", sources[0].size_bytes,
                             None if snapshot else Sd2DepthDownload(sources))]
        holds_dpt = snapshot is not None and (snapshot / "depth_estimator" / "config.json").is_file()
        dpt_comes_with_model = snapshot is None
    spec = ESTIMATORS.get(estimator) or ESTIMATORS[DEFAULT_ESTIMATOR]
    state = estimator_presence(spec.name, holds_dpt) or \
        ("with-model" if spec.name == DEFAULT_ESTIMATOR and dpt_comes_with_model else "missing")
    return parts + [OfflinePart("estimator", spec.label, state, spec.size_bytes,
                                EstimatorDownload(spec) if state == "missing" else None)]


class OfflineSummary(QGroupBox):
    sig_get_everything = Signal(list)
    """Download these jobs one after another: every missing part of the set-up."""

    def __init__(self, parent=None):
        super().__init__(self.tr("Ready offline"), parent)
        self.setObjectName("offlineSummary")
        self.lines = QLabel(objectName="offlineLines", wordWrap=True)
        self.get_button = QPushButton(objectName="getEverything")
        self.get_button.clicked.connect(lambda: self.sig_get_everything.emit(self.downloads))
        self.downloads: list = []
        layout = QHBoxLayout(self)
        layout.addWidget(self.lines, 1)
        layout.addWidget(self.get_button)

    def show_parts(self, parts: list[OfflinePart]) -> None:
        lines = [self._line(part) for part in parts]
        self.downloads = [part.download for part in parts if part.download is not None]
        if all(part.present for part in parts):
            lines.append(self.tr("<b>Ready:</b> everything needed is on this computer; nothing touches the network now."))
        self.lines.setText("<br>".join(lines))
        size = sum(part.size_bytes for part in parts if part.download is not None)
        self.get_button.setText(self.tr("Get everything for offline use ({size})").format(size=format_bytes(size)))
        self.get_button.setVisible(bool(self.downloads))

    def set_busy(self, busy: bool) -> None:
        self.get_button.setEnabled(not busy)

    def _line(self, part: OfflinePart) -> str:
        what = {"sd2-depth": self.tr("SD2-depth model"), "model": self.tr("Model {name}"),
                "estimator": self.tr("Depth estimator {name}")}[part.role]
        state = {
            "in-use": self.tr("✓ in use, on this computer"),
            "downloaded": self.tr("✓ downloaded"),
            "in-model": self.tr("✓ inside the model"),
            "missing": self.tr("✗ missing, {size}").format(size=format_bytes(part.size_bytes)),
            "with-model": self.tr("✗ missing, comes with the SD2-depth model"),
        }[part.state]
        return f"{what.format(name=html.escape(part.name))}: {state}"

