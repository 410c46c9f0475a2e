"""The Models dialog (also the first-run dialog): SD2-depth from where it lives now, the Hugging Face cache, folders,
single files, the demo model, the models set up so far, the depth estimators, the Hub address, and whether the
set-up in use works offline. Downloads and connection tests run in their own thread (see download_worker)."""

from __future__ import annotations

import datetime
from pathlib import Path

from PySide6.QtCore import QEvent, QThread, Qt, Signal
from PySide6.QtWidgets import (
    QDialog, QFileDialog, QGridLayout, QGroupBox, QHBoxLayout, QInputDialog, QLabel, QProgressBar, QPushButton,
    QTabWidget, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget,
)

from ..core.depth.estimators import DEFAULT_ESTIMATOR, ESTIMATORS
from ..core.errors import D2IError, ModelError
from ..core.models.catalogue import SD2_DEPTH_SINGLE_FILE, SD2_DEPTH_SOURCES, Source
from ..core.models.demo import DEMO_LABEL
from ..core.models.downloads import DownloadProgress, format_bytes
from ..core.models.hf_cache import scan_cached_models
from ..core.models.hub_endpoint import DownloadError
from ..core.models.registry import ModelRegistry, attach_depth_estimator, source_kind
from .download_worker import ConnectionTest, DownloadWorker, EstimatorDownload, ModelCheck, Sd2DepthDownload
from .estimators_box import EstimatorsBox
from .hub_mirror_row import HubMirrorRow
from .notice_bar import NoticeBar
from .offline_summary import OfflineSummary, offline_parts
from .scroll_page import ScrollPage


class ModelsDialog(QDialog):
    sig_use_model = Signal(str)
    """The user chose a model to load (a path or a hub id)."""
    sig_use_demo = Signal()
    """The user chose the demo model."""
    sig_request_jobs = Signal(object, object)
    """Run these downloads or connection tests, one after another, through this Hub address (to the worker)."""

    def __init__(self, parent=None, first_run: bool = False, registry: ModelRegistry | None = None,
                 endpoint: str = "", sources: tuple[Source, ...] = SD2_DEPTH_SOURCES):
        super().__init__(parent)
        self.setObjectName("modelsDialog")
        self.setMinimumWidth(760)
        self.resize(920, self.height())  # fewer wrapped lines; fits any screen the app supports (1280 wide and up)
        self.registry = registry or ModelRegistry()
        self.sources = tuple(sources)
        self.model_in_use = None  # the ModelInfo in use, if any
        self.current_source = ""  # its source, marked in the list
        self.default_estimator = DEFAULT_ESTIMATOR
        self.busy = False  # a download or connection test runs: one at a time

        self.intro = QLabel(wordWrap=True)
        self.set_first_run(first_run)
        self.tabs = QTabWidget(objectName="modelsTabs")
        self.tabs.addTab(ScrollPage(self._models_page()), self.tr("Models"))
        self.estimators = EstimatorsBox()
        self.estimators.sig_download.connect(self.download_estimator)
        self.tabs.addTab(ScrollPage(self.estimators), self.tr("Depth estimators"))
        self.mirror = HubMirrorRow(endpoint)
        self.mirror.sig_test.connect(self.test_connection)
        self.summary = OfflineSummary()
        self.summary.sig_get_everything.connect(self._start)
        self.notice = NoticeBar()
        close = QPushButton(self.tr("Close"), clicked=self.close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.intro)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(self.mirror)
        layout.addWidget(self.summary)
        layout.addWidget(self._download_box())
        layout.addWidget(self.notice)
        layout.addWidget(close, 0, Qt.AlignmentFlag.AlignRight)
        for button in self.findChildren(QPushButton):  # Enter in the Hub field tests it; it never presses a button
            button.setAutoDefault(False)

        self.download_thread = QThread(self)
        self.download_thread.setObjectName("d2i-download")
        self.download_worker = DownloadWorker(self.registry)
        self.download_worker.moveToThread(self.download_thread)
        self.sig_request_jobs.connect(self.download_worker.run)
        worker = self.download_worker
        worker.sig_started.connect(self._on_started)
        worker.sig_progress.connect(self._on_progress)
        worker.sig_note.connect(self._on_note)
        worker.sig_downloaded.connect(self._on_downloaded)
        worker.sig_checked.connect(self._on_checked)
        worker.sig_added.connect(self._on_added)
        worker.sig_failed.connect(self._on_failed)
        worker.sig_cancelled.connect(self._on_cancelled)
        worker.sig_finished.connect(self._on_finished)
        self.refresh()

    def _models_page(self) -> QWidget:
        self.model_list = QTreeWidget(objectName="modelList")
        self.model_list.setHeaderLabels([self.tr("Name"), self.tr("Kind"), self.tr("Size"), self.tr("Last used")])
        self.model_list.setRootIsDecorated(False)
        self.model_list.setSizeAdjustPolicy(QTreeWidget.SizeAdjustPolicy.AdjustToContents)  # as tall as its rows…
        self.model_list.setMaximumHeight(220)  # …up to a few; then it scrolls
        self.model_list.itemDoubleClicked.connect(lambda item: self._use(item.data(0, Qt.ItemDataRole.UserRole)))
        self.use_button = QPushButton(self.tr("Use selected"), objectName="useButton", clicked=self._use_selected)
        self.remove_button = QPushButton(self.tr("Remove from list"), objectName="removeButton",
                                         clicked=self._remove_selected)
        list_buttons = QHBoxLayout()
        list_buttons.addStretch(1)
        list_buttons.addWidget(self.remove_button)
        list_buttons.addWidget(self.use_button)
        self.known_box = QGroupBox(self.tr("Your models"))
        known_layout = QVBoxLayout(self.known_box)
        known_layout.addWidget(self.model_list)
        known_layout.addLayout(list_buttons)

        self.cache_list = QTreeWidget(objectName="cacheList")
        self.cache_list.setHeaderLabels([self.tr("Depth models already in your Hugging Face cache (double-click to use)"),
                                         self.tr("Size")])
        self.cache_list.setRootIsDecorated(False)
        self.cache_list.setMaximumHeight(90)
        self.cache_list.itemDoubleClicked.connect(lambda item: self.add_model(item.data(0, Qt.ItemDataRole.UserRole)))

        mirror = next((s for s in self.sources if not s.withdrawn), self.sources[0])
        self.download_button = QPushButton(self.tr("Download SD2-depth…"), objectName="downloadButton")
        self.download_button.clicked.connect(self.start_download)
        choices = [
            (self.download_button, self.tr(
                "From {repo}, the community mirror: Stability AI withdrew the original in November 2025. Licence "
                "{licence}, about {size}. Every file is checked against its checksum; an interrupted download "
                "resumes.").format(repo=mirror.repo_id, licence=mirror.licence, size=format_bytes(mirror.size_bytes))),
            (QPushButton(self.tr("Another Hub repository…"), objectName="repoButton", clicked=self._ask_repository),
             self.tr("Any other SD2-depth model in diffusers' layout on the Hub (or the mirror below), by its id, "
                     "e.g. yourname/sd2-depth-finetune. It is checked before its weights are fetched.")),
            (QPushButton(self.tr("Local diffusers folder…"), objectName="folderButton", clicked=self._pick_folder),
             self.tr("A folder you already have that holds model_index.json, unet/, vae/ …")),
            (QPushButton(self.tr("Single checkpoint file…"), objectName="fileButton", clicked=self._pick_file),
             self.tr("A .safetensors or .ckpt file. {file} is in the same repository ({repo}); copied from another "
                     "computer, it is the way in without internet. Depth comes from a DPT depth estimator you have, "
                     "or from depth maps you load.").format(file=SD2_DEPTH_SINGLE_FILE, repo=mirror.repo_id)),
            (QPushButton(self.tr("Use the demo model"), objectName="demoButton", clicked=self._use_demo),
             self.tr("Works at once, offline; random weights, so its pictures are noise.")),
        ]
        choices_box = QGroupBox(self.tr("Add a model"))
        choices_layout = QGridLayout(choices_box)
        for row, (button, explanation) in enumerate(choices):
            choices_layout.addWidget(button, row, 0, Qt.AlignmentFlag.AlignTop)
            choices_layout.addWidget(QLabel(explanation, wordWrap=True), row, 1)
        choices_layout.setColumnStretch(1, 1)
        choices_layout.addWidget(self.cache_list, len(choices), 0, 1, 2)

        page = QWidget()
        layout = QVBoxLayout(page)
        layout.addWidget(self.known_box, 1)
        layout.addWidget(choices_box)
        layout.addStretch(0)
        return page

    def _download_box(self) -> QGroupBox:
        self.progress = QProgressBar(objectName="downloadProgress", textVisible=True)
        self.progress_label = QLabel(objectName="downloadLabel")
        self.notes_label = QLabel(objectName="downloadNotes", wordWrap=True)
        self.notes_label.hide()
        self.cancel_button = QPushButton(self.tr("Cancel download"), objectName="cancelDownload",
                                         clicked=self.cancel_download)
        progress_row = QHBoxLayout()
        progress_row.addWidget(self.progress, 1)
        progress_row.addWidget(self.cancel_button)
        self.download_box = QGroupBox(self.tr("Download"))
        box_layout = QVBoxLayout(self.download_box)
        box_layout.addLayout(progress_row)
        box_layout.addWidget(self.progress_label)
        box_layout.addWidget(self.notes_label)
        self.download_box.hide()
        return self.download_box

    def set_first_run(self, first_run: bool) -> None:
        """The welcome on the first start; the plain Models dialog whenever it is opened from the menu."""
        self.setWindowTitle(self.tr("Welcome to d2i-desktop") if first_run else self.tr("Models"))
        self.intro.setText(self.tr(
            "<b>Choose a model to start.</b> d2i-desktop repaints photos with Stable Diffusion 2 <i>depth</i>. "
            "Once a model is set up, the app works without the internet.") if first_run else self.tr(
            "Double-click a model to switch to it; the previous one is unloaded."))

    def set_model_in_use(self, info) -> None:
        """Mark the model in use (a ModelInfo, or None); the ready-offline summary is about it."""
        self.model_in_use = info
        self.current_source = info.source if info is not None else ""
        self.estimators.set_model_has_own(info is not None and not info.is_demo and info.own_depth_estimator)
        self.refresh()

    def set_default_estimator(self, name: str) -> None:
        """The depth estimator a new image starts with (Edit ▸ Settings); the ready-offline summary counts it."""
        if name != self.default_estimator:
            self.default_estimator = name
            self.refresh()

    # -- size --------------------------------------------------------------------------------------
    def event(self, event) -> bool:
        handled = super().event(event)
        if event.type() in (QEvent.Type.Show, QEvent.Type.LayoutRequest):  # shown, or its contents changed
            self.fit_height()
        return handled

    def fit_height(self) -> None:
        """Tall enough for the wrapped explanations at the current width (Qt sizes a dialog for unwrapped text),
        never taller than the screen, and moved up if it would reach below it."""
        wanted = max(self.height(), self.layout().totalHeightForWidth(self.width()))
        screen = self.screen().availableGeometry()
        frame = self.frameGeometry().height() - self.geometry().height()
        self.resize(self.width(), min(wanted, screen.height() - frame))
        if self.isVisible() and self.frameGeometry().bottom() > screen.bottom():
            self.move(self.x(), max(screen.top(), screen.bottom() - self.frameGeometry().height()))

    # -- lists -------------------------------------------------------------------------------------
    def refresh(self) -> None:
        self.model_list.clear()
        for entry in sorted(self.registry.entries(), key=lambda e: -e.last_used):
            used = datetime.datetime.fromtimestamp(entry.last_used).strftime("%Y-%m-%d %H:%M") if entry.last_used \
                else self.tr("never")
            item = QTreeWidgetItem([entry.name, self._kind_label(entry.kind),
                                    format_bytes(entry.size_bytes) if entry.size_bytes else "", used])
            item.setData(0, Qt.ItemDataRole.UserRole, entry.source)
            item.setToolTip(0, entry.source)
            if entry.source == self.current_source:
                item.setText(0, self.tr("{name} (in use)").format(name=entry.name))
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
        self.estimators.refresh()
        self.summary.show_parts(offline_parts(self.model_in_use, self.default_estimator, self.sources))

    def _kind_label(self, kind: str) -> str:
        return {"demo": DEMO_LABEL, "folder": self.tr("diffusers folder"), "hub": self.tr("Hugging Face"),
                "single-file": self.tr("single file")}.get(kind, kind)

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

    def add_model(self, source: str) -> bool:
        """Check `source` in the download thread (a .ckpt is read whole), add it to the list and use it."""
        return self._start([ModelCheck(source)])

    def _pick_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self, self.tr("Pick a diffusers model folder (it holds model_index.json)"))
        if folder:
            self.add_model(folder)

    def _pick_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, self.tr("Pick an SD2-depth checkpoint (.safetensors or .ckpt)"), "",
            self.tr("Checkpoints (*.safetensors *.ckpt *.pt *.pth *.bin);;All files (*)"))
        if path:
            self.add_model(path)

    def _on_added(self, source: str) -> None:
        """A checked single file may get a DPT-hybrid of the user's; then the model is used."""
        self.download_box.hide()
        if Path(source).is_file():
            folder = QFileDialog.getExistingDirectory(self, self.tr(
                "Optional: a DPT depth-estimator folder for this checkpoint (Cancel: the one in your Hugging Face "
                "cache, another estimator, or depth maps)"))
            if folder:
                try:
                    attach_depth_estimator(source, folder, self.registry)
                except D2IError as exc:
                    self.notice.show_message(exc.message, exc.hint)
                    return
        self.refresh()
        self._use(source)

    # -- downloads and the connection test -----------------------------------------------------------
    def start_download(self) -> bool:
        """SD2-depth from the first known source the Hub has; used once it is there."""
        return self._start([Sd2DepthDownload(self.sources, use=True)])

    def download_repository(self, repo_id: str) -> bool:
        """Another SD2-depth repository by its Hub id; used once it is there."""
        repo_id = repo_id.strip()
        try:
            if source_kind(repo_id) != "hub":
                raise ModelError(self.tr("'{id}' is a file or folder here, not a Hub id.").format(id=repo_id),
                                 self.tr("Add it with Local diffusers folder… or Single checkpoint file…."))
        except ModelError as exc:
            self.notice.show_message(exc.message, exc.hint)
            return False
        return self._start([Sd2DepthDownload((Source(repo_id, repo_id, "", 0, ""),), use=True)])

    def _ask_repository(self) -> None:
        repo_id, chosen = QInputDialog.getText(self, self.tr("Another Hub repository"),
                                               self.tr("The repository's id on the Hub (organisation/name):"))
        if chosen and repo_id.strip():
            self.download_repository(repo_id)

    def download_estimator(self, name: str) -> bool:
        return self._start([EstimatorDownload(ESTIMATORS[name])])

    def test_connection(self) -> bool:
        try:
            address = self.mirror.address()
        except DownloadError as exc:
            self.mirror.show_answer(f"{exc.message} {exc.hint}", ok=False)
            return False
        if self._start([ConnectionTest(tuple(s.repo_id for s in self.sources))]):
            self.mirror.show_testing(address.endpoint)
            return True
        return False

    def _start(self, jobs: list) -> bool:
        """Hand `jobs` to the download thread; False when one runs already or the Hub address is not one."""
        if self.busy:
            return False
        try:  # checking a model on this computer needs no Hub address
            address = None if all(isinstance(job, ModelCheck) for job in jobs) else self.mirror.address()
        except DownloadError as exc:
            self.notice.show_message(exc.message, exc.hint)
            return False
        self.notice.hide()
        self._set_busy(True)
        self.download_worker.cancel_event.clear()
        self.download_thread.start()  # started on first use; a no-op when it runs already
        self.sig_request_jobs.emit(jobs, address)
        return True

    def _set_busy(self, busy: bool) -> None:
        self.busy = busy
        for button in (self.download_button, self.mirror.test_button):
            button.setEnabled(not busy)
        self.estimators.set_busy(busy)
        self.summary.set_busy(busy)
        self.cancel_button.setEnabled(busy)

    def cancel_download(self) -> None:
        self.download_worker.cancel_event.set()  # directly: a queued signal would wait behind the download
        self.cancel_button.setEnabled(False)
        self.progress_label.setText(self.tr("Cancelling…"))

    def _on_started(self, job, place: int, count: int) -> None:
        if isinstance(job, ConnectionTest):
            return
        if isinstance(job, ModelCheck):
            self.download_box.setTitle(self.tr("Checking {what}").format(what=job.label))
            self.progress.setRange(0, 0)
            self.progress_label.setText(self.tr("Reading the model's files…"))
            self.cancel_button.setEnabled(False)  # a check cannot stop half-way; it only reads
            self.notes_label.hide()
            self.download_box.show()
            return
        if isinstance(job, Sd2DepthDownload):  # the known sources, or one repository the user named
            what = self.tr("SD2-depth") if job.sources == self.sources else job.sources[0].repo_id
        else:
            what = job.label
        title = self.tr("Downloading {what}").format(what=what)
        self.download_box.setTitle(title + (self.tr(" ({place} of {count})").format(place=place, count=count)
                                            if count > 1 else ""))
        self.progress.setRange(0, 0)
        self.progress_label.setText(self.tr("Asking the Hub what to fetch…"))
        self.notes_label.clear()
        self.notes_label.hide()
        self.download_box.show()

    def _on_progress(self, progress: DownloadProgress) -> None:
        if progress.total_bytes:
            self.progress.setRange(0, 1000)
            self.progress.setValue(int(progress.fraction * 1000))
        name = Path(progress.current_file).parent.name or progress.current_file
        self.progress_label.setText(progress.text() + (f" · {name}" if name and not progress.checking else ""))

    def _on_note(self, note: str) -> None:
        self.notes_label.setText("\n".join(filter(None, (self.notes_label.text(), note))))
        self.notes_label.show()

    def _on_downloaded(self, job, repo_id: str) -> None:
        self.progress.setRange(0, 1000)
        self.progress.setValue(1000)
        self.progress_label.setText(self.tr("Download complete."))
        self.refresh()
        if isinstance(job, Sd2DepthDownload) and job.use:
            self._use(repo_id)

    def _on_checked(self, check) -> None:
        self.mirror.show_answer(check.message, check.ok)

    def _on_cancelled(self) -> None:
        self.progress_label.setText(self.tr("Cancelled. Start the download again to resume where it stopped."))

    def _on_failed(self, job, message: str, hint: str) -> None:
        self.download_box.hide()
        self.notice.show_message(message, hint)

    def _on_finished(self) -> None:
        self._set_busy(False)

    def shutdown(self, timeout_ms: int = 3000) -> bool:
        """Cancel a running download and end its thread; True if it ended in time."""
        self.download_worker.cancel_event.set()
        self.download_thread.quit()
        return self.download_thread.wait(timeout_ms)
