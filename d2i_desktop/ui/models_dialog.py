"""The Models dialog (also the first-run dialog): download, the Hugging Face cache, folders, single files,
the demo model, and the list of models set up so far. Downloads run in their own thread."""

from __future__ import annotations

import datetime
import logging
import threading
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, Qt, QThread, Signal, Slot
from PySide6.QtWidgets import (
    QDialog, QFileDialog, QGridLayout, QGroupBox, QHBoxLayout, QLabel, QProgressBar, QPushButton, QTreeWidget,
    QTreeWidgetItem, QVBoxLayout,
)

from ..core.models.demo import DEMO_LABEL
from ..core.models.downloads import DownloadProgress, download_model, format_bytes
from ..core.errors import Cancelled, D2IError
from ..core.models.hf_cache import scan_cached_models
from ..core.models.registry import SD2_DEPTH_REPO, ModelRegistry, add_model
from .notice_bar import NoticeBar

log = logging.getLogger(__name__)

KIND_LABELS = {"demo": DEMO_LABEL, "folder": "diffusers folder", "hub": "Hugging Face", "single-file": "single file"}
CHECKPOINT_FILTER = "Checkpoints (*.safetensors *.ckpt *.pt *.pth *.bin);;All files (*)"


class DownloadWorker(QObject):
    """Runs one download at a time in its own thread, so the app and its generation worker stay free."""

    sig_progress = Signal(object)
    """Bytes so far, total, speed and time left (a DownloadProgress)."""
    sig_finished = Signal(str, str)
    """The download completed: repo id, snapshot folder."""
    sig_cancelled = Signal()
    """The user cancelled; partial files are kept for a resume."""
    sig_failed = Signal(str, str)
    """The download failed: message and hint."""

    def __init__(self):
        super().__init__()
        self.cancel_event = threading.Event()

    @Slot(str, str)
    def download(self, repo_id: str, endpoint: str = "") -> None:
        self.cancel_event.clear()
        try:
            snapshot = download_model(repo_id, endpoint=endpoint or None, on_progress=self.sig_progress.emit,
                                      cancel=self.cancel_event)
        except Cancelled:
            self.sig_cancelled.emit()
        except D2IError as exc:
            self.sig_failed.emit(exc.message, exc.hint)
        except Exception as exc:  # never let a download take the thread down
            log.exception("download failed")
            self.sig_failed.emit(f"The download failed: {type(exc).__name__}: {str(exc)[:200]}", "Try again.")
        else:
            self.sig_finished.emit(repo_id, str(snapshot))


class ModelsDialog(QDialog):
    sig_use_model = Signal(str)
    """The user chose a model to load (a path or a hub id)."""
    sig_use_demo = Signal()
    """The user chose the demo model."""
    sig_request_download = Signal(str, str)

    def __init__(self, parent=None, first_run: bool = False, registry: ModelRegistry | None = None,
                 endpoint: str = "", repo_id: str = SD2_DEPTH_REPO):
        super().__init__(parent)
        self.setObjectName("modelsDialog")
        self.setMinimumWidth(720)
        self.registry = registry or ModelRegistry()
        self.endpoint, self.repo_id = endpoint, repo_id  # a mirror or another SD2-depth repository may be given
        self.current_source = ""  # the model in use, marked in the list

        self.intro = QLabel(wordWrap=True)
        self.set_first_run(first_run)

        self.model_list = QTreeWidget(objectName="modelList")
        self.model_list.setHeaderLabels(["Name", "Kind", "Size", "Last used"])
        self.model_list.setRootIsDecorated(False)
        self.model_list.itemDoubleClicked.connect(lambda item: self._use(item.data(0, Qt.ItemDataRole.UserRole)))
        self.use_button = QPushButton("Use selected", objectName="useButton", clicked=self._use_selected)
        self.remove_button = QPushButton("Remove from list", objectName="removeButton", clicked=self._remove_selected)
        list_buttons = QHBoxLayout()
        list_buttons.addStretch(1)
        list_buttons.addWidget(self.remove_button)
        list_buttons.addWidget(self.use_button)
        self.known_box = QGroupBox("Your models")
        known_layout = QVBoxLayout(self.known_box)
        known_layout.addWidget(self.model_list)
        known_layout.addLayout(list_buttons)

        self.cache_list = QTreeWidget(objectName="cacheList")
        self.cache_list.setHeaderLabels(["Depth models already in your Hugging Face cache (double-click to use)", "Size"])
        self.cache_list.setRootIsDecorated(False)
        self.cache_list.setMaximumHeight(110)
        self.cache_list.itemDoubleClicked.connect(lambda item: self._add_and_use(item.data(0, Qt.ItemDataRole.UserRole)))

        self.download_button = QPushButton("Download SD2-depth…", objectName="downloadButton")
        self.download_button.clicked.connect(lambda: self.start_download())
        choices = [
            (self.download_button, f"{repo_id}, half-precision weights, about 3 GB. Needed once; "
                                   "an interrupted download resumes."),
            (QPushButton("Local diffusers folder…", objectName="folderButton", clicked=self._pick_folder),
             "A folder you already have that holds model_index.json, unet/, vae/ …"),
            (QPushButton("Single checkpoint file…", objectName="fileButton", clicked=self._pick_file),
             "A .safetensors or .ckpt file, e.g. 512-depth-ema.safetensors. Depth is estimated by a DPT model "
             "you have, or you load depth maps."),
            (QPushButton("Use the demo model", objectName="demoButton", clicked=self._use_demo),
             "Works at once, offline; random weights, so its pictures are noise."),
        ]
        choices_box = QGroupBox("Add a model")
        choices_layout = QGridLayout(choices_box)
        for row, (button, explanation) in enumerate(choices):
            choices_layout.addWidget(button, row, 0)
            choices_layout.addWidget(QLabel(explanation, wordWrap=True), row, 1)
        choices_layout.setColumnStretch(1, 1)
        choices_layout.addWidget(self.cache_list, len(choices), 0, 1, 2)

        self.progress = QProgressBar(objectName="downloadProgress", textVisible=True)
        self.progress_label = QLabel(objectName="downloadLabel")
        self.cancel_button = QPushButton("Cancel download", objectName="cancelDownload", clicked=self.cancel_download)
        progress_row = QHBoxLayout()
        progress_row.addWidget(self.progress, 1)
        progress_row.addWidget(self.cancel_button)
        self.download_box = QGroupBox("Download")
        box_layout = QVBoxLayout(self.download_box)
        box_layout.addLayout(progress_row)
        box_layout.addWidget(self.progress_label)
        self.download_box.hide()

        self.notice = NoticeBar()
        close = QPushButton("Close", clicked=self.close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.intro)
        layout.addWidget(self.known_box, 1)
        layout.addWidget(choices_box)
        layout.addWidget(self.download_box)
        layout.addWidget(self.notice)
        layout.addStretch(0)
        layout.addWidget(close, 0, Qt.AlignmentFlag.AlignRight)

        self.download_thread = QThread(self)
        self.download_thread.setObjectName("d2i-download")
        self.download_worker = DownloadWorker()
        self.download_worker.moveToThread(self.download_thread)
        self.sig_request_download.connect(self.download_worker.download)
        self.download_worker.sig_progress.connect(self._on_progress)
        self.download_worker.sig_finished.connect(self._on_downloaded)
        self.download_worker.sig_cancelled.connect(self._on_download_cancelled)
        self.download_worker.sig_failed.connect(self._on_download_failed)
        self.downloading = False
        self.refresh()

    def set_first_run(self, first_run: bool) -> None:
        """The welcome on the first start; the plain Models dialog whenever it is opened from the menu."""
        self.setWindowTitle("Welcome to d2i-desktop" if first_run else "Models")
        self.intro.setText(
            "<b>Choose a model to start.</b> d2i-desktop repaints photos with Stable Diffusion 2 <i>depth</i>. "
            "Once a model is set up, the app works without the internet." if first_run else
            "Double-click a model to switch to it; the previous one is unloaded.")

    def set_current(self, source: str) -> None:
        """Mark the model in use."""
        self.current_source = source
        self.refresh()

    # -- lists -----------------------------------------------------------------------------------
    def event(self, event) -> bool:
        handled = super().event(event)
        if event.type() in (QEvent.Type.Show, QEvent.Type.LayoutRequest):  # shown, or its contents changed
            self.fit_height()
        return handled

    def fit_height(self) -> None:
        """Tall enough for the wrapped explanations at the current width (Qt sizes a dialog for unwrapped text)."""
        self.resize(self.width(), max(self.height(), self.layout().totalHeightForWidth(self.width())))

    def refresh(self) -> None:
        self.model_list.clear()
        for entry in sorted(self.registry.entries(), key=lambda e: -e.last_used):
            used = datetime.datetime.fromtimestamp(entry.last_used).strftime("%Y-%m-%d %H:%M") if entry.last_used else "never"
            item = QTreeWidgetItem([entry.name, KIND_LABELS.get(entry.kind, entry.kind),
                                    format_bytes(entry.size_bytes) if entry.size_bytes else "", used])
            item.setData(0, Qt.ItemDataRole.UserRole, entry.source)
            item.setToolTip(0, entry.source)
            if entry.source == self.current_source:
                item.setText(0, f"{entry.name} (in use)")
                font = item.font(0)
                font.setBold(True)
                item.setFont(0, font)
            self.model_list.addTopLevelItem(item)
        for column in range(4):
            self.model_list.resizeColumnToContents(column)
        self.known_box.setVisible(self.model_list.topLevelItemCount() > 0)
        self.cache_list.clear()
        known = {e.source for e in self.registry.entries()}
        for cached in scan_cached_models():
            if cached.kind == "depth-model" and cached.repo_id not in known:
                item = QTreeWidgetItem([cached.repo_id, format_bytes(cached.size_bytes)])
                item.setData(0, Qt.ItemDataRole.UserRole, cached.repo_id)
                self.cache_list.addTopLevelItem(item)
        self.cache_list.setVisible(self.cache_list.topLevelItemCount() > 0)
        self.cache_list.resizeColumnToContents(0)

    def _selected_source(self) -> str | None:
        item = self.model_list.currentItem()
        return item.data(0, Qt.ItemDataRole.UserRole) if item else None

    def _use_selected(self) -> None:
        if source := self._selected_source():
            self._use(source)

    def _remove_selected(self) -> None:
        if source := self._selected_source():
            self.registry.remove(source)
            self.refresh()

    def _use(self, source: str) -> None:
        self.sig_use_model.emit(source)
        self.accept()

    def _use_demo(self) -> None:
        self.sig_use_demo.emit()
        self.accept()

    def _add_and_use(self, source: str, **options) -> bool:
        try:
            add_model(source, registry=self.registry, **options)
        except D2IError as exc:
            self.notice.show_message(exc.message, exc.hint)
            return False
        self.refresh()
        self._use(source)
        return True

    def _pick_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Pick a diffusers model folder (it holds model_index.json)")
        if folder:
            self._add_and_use(folder)

    def _pick_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Pick an SD2-depth checkpoint (.safetensors or .ckpt)", "", CHECKPOINT_FILTER)
        if not path:
            return
        depth = QFileDialog.getExistingDirectory(
            self, "Optional: a DPT depth-estimator folder for this checkpoint (Cancel: find one, or use depth maps)")
        self._add_and_use(path, depth_estimator=depth or None)

    # -- download --------------------------------------------------------------------------------
    def start_download(self, repo_id: str = "") -> None:
        if self.downloading:
            return
        repo_id = repo_id or self.repo_id
        self.downloading = True
        self.notice.hide()
        self.download_box.setTitle(f"Downloading {repo_id}")
        self.progress.setRange(0, 0)
        self.progress_label.setText("Asking the Hugging Face Hub what to fetch…")
        self.download_box.show()
        self.download_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.download_thread.start()  # started on first use; a no-op when it runs already
        self.sig_request_download.emit(repo_id, self.endpoint)

    def cancel_download(self) -> None:
        self.download_worker.cancel_event.set()  # directly: a queued signal would wait behind the download
        self.cancel_button.setEnabled(False)
        self.progress_label.setText("Cancelling…")

    def _on_progress(self, progress: DownloadProgress) -> None:
        if progress.total_bytes:
            self.progress.setRange(0, 1000)
            self.progress.setValue(int(progress.fraction * 1000))
        name = Path(progress.current_file).parent.name or progress.current_file
        self.progress_label.setText(progress.text() + (f" · {name}" if name else ""))

    def _download_ended(self) -> None:
        self.downloading = False
        self.download_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    def _on_downloaded(self, repo_id: str, _snapshot: str) -> None:
        self._download_ended()
        self.progress.setRange(0, 1000)
        self.progress.setValue(1000)
        self.progress_label.setText("Download complete.")
        self._add_and_use(repo_id)

    def _on_download_cancelled(self) -> None:
        self._download_ended()
        self.progress_label.setText("Cancelled. Start the download again to resume where it stopped.")

    def _on_download_failed(self, message: str, hint: str) -> None:
        self._download_ended()
        self.download_box.hide()
        self.notice.show_message(message, hint)

    def shutdown(self, timeout_ms: int = 3000) -> bool:
        """Cancel a running download and end its thread; True if it ended in time."""
        self.download_worker.cancel_event.set()
        self.download_thread.quit()
        return self.download_thread.wait(timeout_ms)
