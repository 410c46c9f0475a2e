"""The main window: canvas in the middle, parameters and depth controls at the side."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image
from PySide6.QtCore import QSettings, QSize, Qt, Signal
from PySide6.QtGui import QAction, QGuiApplication, QIcon, QImage, QKeySequence, QPixmap, QShortcut
from PySide6.QtWidgets import (
    QCheckBox, QComboBox, QDockWidget, QFileDialog, QGroupBox, QHBoxLayout, QLabel, QListWidget, QListWidgetItem,
    QMainWindow, QProgressBar, QPushButton, QSlider, QSplitter, QVBoxLayout, QWidget,
)

from ..core import depth as depth_maps
from ..core.demo import DEMO_LABEL
from ..core.engine import GenerationResult, ModelInfo, StepInfo, image_key
from ..core.errors import D2IError
from ..core.images import LoadedImage, load_image, prepare_image
from ..core.outputs import parse_parameters, read_parameters, save_numbered_png, save_png
from ..core.params import GenerationParams, params_from_fields
from ..core.paths import default_output_dir
from .canvas import OVERLAY_MODES, VIEW_MODES, Canvas, to_qimage
from .depth_tools import DepthEditor, DepthToolsPanel
from .library_panel import LibraryPanel
from .notice_bar import NoticeBar
from .params_panel import ParamsPanel
from .settings_dialog import SettingsDialog, load_performance, save_performance
from .worker import WorkerThread

log = logging.getLogger(__name__)

IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.webp *.bmp *.tif *.tiff *.gif);;All files (*)"
DEPTH_FILTER = "Depth maps (*.png *.tif *.tiff *.npy);;All files (*)"
DEPTH_SAVE_FILTERS = {"16-bit PNG (*.png)": ".png", "NumPy float32 array (*.npy)": ".npy"}


def qimage_to_pil(image: QImage) -> Image.Image:
    image = image.convertToFormat(QImage.Format.Format_RGBA8888)
    buffer = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), image.bytesPerLine())
    rgba = buffer[:, : image.width() * 4].reshape(image.height(), image.width(), 4)
    return Image.fromarray(rgba.copy(), "RGBA")


class MainWindow(QMainWindow):
    sig_request_model = Signal(str, bool)
    sig_request_depth = Signal(str, object)
    sig_request_generate = Signal(object, object, object)
    sig_request_performance = Signal(object)

    def __init__(self, worker_thread: WorkerThread, settings: QSettings):
        super().__init__()
        self.setWindowTitle("d2i-desktop")
        self.worker_thread = worker_thread
        self.settings = settings
        self.loaded: LoadedImage | None = None
        self.image_key = ""
        self.depth: np.ndarray | None = None
        self.model: ModelInfo | None = None
        self.models_dialog = None
        self.result: GenerationResult | None = None
        self.result_index = 0
        self.busy = False
        self._depth_wanted = False
        self.performance_report = None
        self._performance_requested = False

        self._build_widgets()
        self._build_menus()
        self._connect_worker()
        self._restore_settings()
        self._update_actions()

    # -- construction ----------------------------------------------------------------
    def _build_widgets(self) -> None:
        self.canvas = Canvas()
        self.canvas.sig_files_dropped.connect(lambda paths: self.open_image(paths[0]))
        self.notice = NoticeBar()
        self.depth_editor = DepthEditor(self)
        self.depth_tools = DepthToolsPanel(self.depth_editor, self.canvas)
        self.depth_tools.sig_failed.connect(self.notice.show_message)
        self.results_list = QListWidget(objectName="resultsList", viewMode=QListWidget.ViewMode.IconMode,
                                        flow=QListWidget.Flow.LeftToRight, wrapping=False, maximumHeight=96)
        self.results_list.setIconSize(QSize(72, 72))
        self.results_list.currentRowChanged.connect(self.show_result)
        self.results_list.hide()

        centre = QWidget()
        centre_layout = QVBoxLayout(centre)
        centre_layout.setContentsMargins(6, 6, 6, 6)
        centre_layout.addWidget(self.notice)
        centre_layout.addWidget(self.canvas, 1)
        centre_layout.addWidget(self.results_list)

        self.params_panel = ParamsPanel()
        self.params_panel.sig_submit.connect(self.generate)
        self.generate_button = QPushButton("Generate", objectName="generateButton", toolTip="Generate (Ctrl+Enter)")
        self.generate_button.setDefault(True)
        self.generate_button.clicked.connect(self.generate)
        self.cancel_button = QPushButton("Cancel", objectName="cancelButton", toolTip="Cancel (Esc)", enabled=False)
        self.cancel_button.clicked.connect(self.cancel)
        self.progress = QProgressBar(objectName="progressBar", textVisible=True, value=0)
        self.progress.setFormat("Ready")
        self.save_button = QPushButton("Save", objectName="saveButton", toolTip="Save the result (Ctrl+S)", enabled=False)
        self.save_button.clicked.connect(self.save_result)
        buttons = QHBoxLayout()
        buttons.addWidget(self.generate_button, 2)
        buttons.addWidget(self.cancel_button, 1)
        buttons.addWidget(self.save_button, 1)

        side = QWidget(objectName="sidePanel")
        side.setMinimumWidth(320)
        side_layout = QVBoxLayout(side)
        side_layout.addWidget(self._depth_box())
        side_layout.addWidget(self.params_panel)
        side_layout.addLayout(buttons)
        side_layout.addWidget(self.progress)
        side_layout.addStretch(1)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(centre)
        splitter.addWidget(side)
        splitter.setStretchFactor(0, 1)
        splitter.setSizes([900, 360])
        self.setCentralWidget(splitter)
        depth_dock = QDockWidget("Depth tools", self, objectName="depthToolsDock")
        depth_dock.setWidget(self.depth_tools)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, depth_dock)
        self.library_panel = LibraryPanel()
        self.library_panel.sig_insert_text.connect(self.insert_in_prompt)
        self.library_panel.sig_message.connect(self.notice.show_message)
        library_dock = QDockWidget("LoRAs and embeddings", self, objectName="libraryDock")
        library_dock.setWidget(self.library_panel)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, library_dock)
        self.tabifyDockWidget(depth_dock, library_dock)
        depth_dock.raise_()

        self.model_label = QLabel(objectName="modelLabel")
        self.statusBar().addPermanentWidget(self.model_label)
        self.resize(1280, 800)

    def _depth_box(self) -> QGroupBox:
        box = QGroupBox("Depth")
        self.estimate_button = QPushButton("Estimate depth", objectName="estimateDepthButton")
        self.estimate_button.clicked.connect(self.estimate_depth)
        load_depth = QPushButton("Load…", objectName="loadDepthButton", toolTip="Load a depth map from a file")
        load_depth.clicked.connect(self.load_depth_dialog)
        self.save_depth_button = QPushButton("Save…", objectName="saveDepthButton",
                                             toolTip="Save the edited depth map as 16-bit PNG or float .npy")
        self.save_depth_button.clicked.connect(self.save_depth_dialog)
        self.overlay_mode_combo = QComboBox(objectName="depthOverlayModeCombo",
                                            toolTip="How the depth is shown with the image")
        self.overlay_mode_combo.addItems(list(OVERLAY_MODES))
        self.overlay_mode_combo.currentTextChanged.connect(self.canvas.set_overlay_mode)
        self.model_view_check = QCheckBox("What the model sees", objectName="modelViewCheck",
                                          toolTip="The depth as the model receives it: shrunk to the latent grid "
                                                  "(1/8 of each side) and stretched to -1..1, so only its shape counts")
        self.model_view_check.toggled.connect(self.canvas.set_model_view)
        self.overlay_check = QCheckBox("Show over image", objectName="depthOverlayCheck", checked=True)
        self.overlay_check.toggled.connect(self._overlay_changed)
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal, objectName="depthOpacitySlider",
                                      minimum=0, maximum=100, value=50, toolTip="Depth overlay opacity")
        self.opacity_slider.valueChanged.connect(self._overlay_changed)
        self.colormap_combo = QComboBox(objectName="depthColormapCombo", toolTip="Depth colours (bright/yellow = near)")
        self.colormap_combo.addItems(list(depth_maps.COLORMAPS))
        self.colormap_combo.setCurrentText("viridis")
        self.colormap_combo.currentTextChanged.connect(self._show_depth)
        self.view_combo = QComboBox(objectName="viewCombo", toolTip="What the canvas shows")
        self.view_combo.addItems(list(VIEW_MODES))
        self.view_combo.currentTextChanged.connect(self.canvas.set_view_mode)

        row1 = QHBoxLayout()
        row1.addWidget(self.estimate_button, 1)
        row1.addWidget(load_depth)
        row1.addWidget(self.save_depth_button)
        row2 = QHBoxLayout()
        row2.addWidget(self.overlay_check)
        row2.addWidget(self.opacity_slider, 1)
        row3 = QHBoxLayout()
        row3.addWidget(QLabel("Colours"))
        row3.addWidget(self.colormap_combo, 1)
        row3.addWidget(QLabel("View"))
        row3.addWidget(self.view_combo, 1)
        row4 = QHBoxLayout()
        row4.addWidget(QLabel("Overlay"))
        row4.addWidget(self.overlay_mode_combo, 1)
        row4.addWidget(self.model_view_check)
        layout = QVBoxLayout(box)
        layout.addLayout(row1)
        layout.addLayout(row2)
        layout.addLayout(row4)
        layout.addLayout(row3)
        return box

    def _build_menus(self) -> None:
        def action(menu, text, slot, shortcut=None, name=None) -> QAction:
            act = menu.addAction(text)
            act.triggered.connect(slot)
            if shortcut:
                act.setShortcut(QKeySequence(shortcut))
            if name:
                act.setObjectName(name)
            return act

        file_menu = self.menuBar().addMenu("&File")
        action(file_menu, "&Open image…", self.open_image_dialog, QKeySequence.StandardKey.Open, "openAction")
        action(file_menu, "&Paste image", self.paste_image, QKeySequence.StandardKey.Paste, "pasteAction")
        file_menu.addSeparator()
        action(file_menu, "Use settings from a picture…", self.use_settings_dialog, name="useSettingsAction")
        action(file_menu, "Load &depth map…", self.load_depth_dialog)
        self.save_depth_action = action(file_menu, "Save depth map…", self.save_depth_dialog)
        file_menu.addSeparator()
        self.save_action = action(file_menu, "&Save result", self.save_result, QKeySequence.StandardKey.Save)
        self.save_as_action = action(file_menu, "Save result &as…", self.save_result_as, QKeySequence.StandardKey.SaveAs)
        action(file_menu, "Choose output folder…", self.choose_output_dir)
        file_menu.addSeparator()
        action(file_menu, "&Quit", self.close, QKeySequence.StandardKey.Quit)

        edit_menu = self.menuBar().addMenu("&Edit")
        edit_menu.addAction(self.depth_tools.undo_action)
        edit_menu.addAction(self.depth_tools.redo_action)
        edit_menu.addSeparator()
        action(edit_menu, "Se&ttings…", self.show_settings_dialog, "Ctrl+,", "settingsAction")

        model_menu = self.menuBar().addMenu("&Model")
        action(model_menu, "&Models…", self.show_models_dialog, "Ctrl+M", "modelsAction")
        action(model_menu, "Open model &folder…", self.open_model_dialog)
        action(model_menu, "Use the &demo model", self.use_demo_model)

        generate_menu = self.menuBar().addMenu("&Generate")
        action(generate_menu, "&Generate", self.generate, "Ctrl+Return")
        action(generate_menu, "&Cancel", self.cancel, "Escape")
        QShortcut(QKeySequence("Ctrl+Enter"), self, self.generate)

        view_menu = self.menuBar().addMenu("&View")
        action(view_menu, "Fit to window", self.canvas.fit, "Ctrl+0")
        action(view_menu, "Zoom in", lambda: self.canvas.zoom_by(1.25), QKeySequence.StandardKey.ZoomIn)
        action(view_menu, "Zoom out", lambda: self.canvas.zoom_by(0.8), QKeySequence.StandardKey.ZoomOut)
        action(view_menu, "Toggle depth overlay", self.overlay_check.toggle, "D")

    def _connect_worker(self) -> None:
        worker = self.worker_thread.worker
        self.sig_request_model.connect(worker.load_model)
        self.sig_request_depth.connect(worker.estimate_depth)
        self.sig_request_generate.connect(worker.generate)
        worker.sig_busy.connect(self._on_busy)
        worker.sig_idle.connect(self._on_idle)
        worker.sig_model_loaded.connect(self._on_model_loaded)
        worker.sig_depth_ready.connect(self._on_depth_ready)
        worker.sig_step.connect(self._on_step)
        worker.sig_result.connect(self._on_result)
        worker.sig_cancelled.connect(self._on_cancelled)
        worker.sig_failed.connect(self._on_failed)
        worker.sig_fix_offered.connect(self._offer_fix)
        self.sig_request_performance.connect(worker.apply_performance)
        worker.sig_performance.connect(self._on_performance)

    # -- settings --------------------------------------------------------------------
    def _restore_settings(self) -> None:
        geometry = self.settings.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        last_params = self.settings.value("params/last")
        if last_params:
            try:
                self.params_panel.set_params(GenerationParams.from_json(last_params))
            except (ValueError, TypeError):
                log.warning("ignoring unreadable saved parameters")

    def output_dir(self) -> Path:
        return Path(self.settings.value("output/dir", str(default_output_dir())))

    def choose_output_dir(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Output folder", str(self.output_dir()))
        if folder:
            self.settings.setValue("output/dir", folder)
            self.statusBar().showMessage(f"Results are saved in {folder}", 5000)

    def show_settings_dialog(self) -> SettingsDialog:
        dialog = SettingsDialog(load_performance(self.settings), self.performance_report, self)
        dialog.accepted.connect(lambda: self.apply_performance(dialog.performance()))
        dialog.finished.connect(dialog.deleteLater)
        dialog.open()
        return dialog

    def apply_performance(self, performance) -> None:
        """Store the settings and have the worker apply them (after any running job)."""
        save_performance(self.settings, performance)
        self._performance_requested = True
        self.sig_request_performance.emit(performance)

    def _on_performance(self, report) -> None:
        self.performance_report = report
        if self._performance_requested and report is not None:
            self._performance_requested = False
            self.statusBar().showMessage("Performance settings applied: " + ", ".join(report.applied), 8000)
            if report.fallbacks:
                self.notice.show_message("Some performance options are not used on this machine.",
                                         " · ".join(report.fallbacks), "info")

    # -- model -----------------------------------------------------------------------
    def load_model(self, source: str, make_demo: bool = False) -> None:
        self.model = None
        self.model_label.setText("Loading model…")
        self.sig_request_model.emit(source, make_demo)
        self._update_actions()

    def open_model_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a diffusers model folder")
        if folder:
            self.load_model(folder)

    def show_models_dialog(self, first_run: bool = False):
        """The Models dialog (the first-run dialog when `first_run`); one instance, kept for its downloads."""
        from .models_dialog import ModelsDialog

        if self.models_dialog is None:
            self.models_dialog = ModelsDialog(self, first_run=first_run)
            self.models_dialog.sig_use_model.connect(self.load_model)
            self.models_dialog.sig_use_demo.connect(self.use_demo_model)
        else:
            self.models_dialog.refresh()
        self.models_dialog.show()
        self.models_dialog.raise_()
        return self.models_dialog

    def use_demo_model(self) -> None:
        from ..core.paths import demo_model_dir
        self.load_model(str(demo_model_dir()), make_demo=True)

    def _on_model_loaded(self, info: ModelInfo) -> None:
        self.model = info
        self.settings.setValue("model/source", info.source)
        self.settings.setValue("model/demo", info.is_demo)
        self.model_label.setText(f"Model: {info.label} · {info.device} {info.dtype}")
        self.model_label.setStyleSheet("color:#f0b429; font-weight:bold;" if info.is_demo else "")
        if info.is_demo:
            self.notice.show_message(
                f"Using the {DEMO_LABEL}: pictures will be noise.",
                "Add a real SD2-depth model with Model ▸ Models… to make real pictures.", "warning")
        elif info.notes:
            self.notice.show_message(f"Model {info.name} loaded.", " ".join(info.notes), "info")
        elif self.notice.level == "warning":
            self.notice.hide()
        if self._depth_wanted:
            self.estimate_depth()
        self._update_actions()

    # -- images ----------------------------------------------------------------------
    def open_image_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a photo", str(self.settings.value("paths/last_image", "")),
                                              IMAGE_FILTER)
        if path:
            self.open_image(path)

    def open_image(self, path: str | Path) -> bool:
        try:
            loaded = load_image(path)
        except D2IError as exc:
            self.notice.show_message(exc.message, exc.hint)
            return False
        self.settings.setValue("paths/last_image", str(path))
        self.set_image(loaded, Path(path).name)
        return True

    def paste_image(self) -> bool:
        clipboard = QGuiApplication.clipboard()
        clip = clipboard.mimeData()
        if clip is not None and clip.hasImage():
            try:
                loaded = prepare_image(qimage_to_pil(clipboard.image()))
            except D2IError as exc:
                self.notice.show_message(exc.message, exc.hint)
                return False
            self.set_image(loaded, "pasted image")
            return True
        if clip is not None and clip.hasUrls() and clip.urls()[0].isLocalFile():
            return self.open_image(clip.urls()[0].toLocalFile())
        self.notice.show_message("The clipboard holds no picture.", "Copy an image or an image file, then paste again.")
        return False

    def set_image(self, loaded: LoadedImage, name: str) -> None:
        self.loaded = loaded
        self.image_key = image_key(loaded.image)
        self.depth = None
        self.result = None
        self.results_list.clear()
        self.results_list.hide()
        self.canvas.set_input(to_qimage(loaded.image))
        self.depth_editor.clear()
        self.view_combo.setCurrentText(self.canvas.view_mode)
        self.setWindowTitle(f"{name} — d2i-desktop")
        width, height = loaded.image.size
        self.statusBar().showMessage(f"{name}: {width}x{height}", 8000)
        if loaded.notes:
            self.notice.show_message(f"Opened {name} at {width}x{height}.", " ".join(loaded.notes), "info")
        elif self.notice.level != "warning":
            self.notice.hide()
        self.estimate_depth()
        self._update_actions()

    def use_settings_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Use the settings of a picture", str(self.output_dir()), IMAGE_FILTER)
        if path:
            self.use_settings_from(path)

    def use_settings_from(self, path: str | Path) -> bool:
        """Fill the parameters from the generation settings a picture carries (this app's or AUTOMATIC1111's)."""
        try:
            text = read_parameters(path)
            if text is None:
                raise D2IError(f"{Path(path).name} carries no generation settings.",
                               "Pick a picture saved by this app or another Stable Diffusion tool.")
            params, notes = params_from_fields(parse_parameters(text), self.params_panel.params())
        except D2IError as exc:
            self.notice.show_message(exc.message, exc.hint)
            return False
        self.params_panel.set_params(params)
        if params.seed != self.params_panel.seed.value():
            notes.append(f"Seed {params.seed} is larger than the seed box holds; it is set to random.")
        self.notice.show_message(f"Settings taken from {Path(path).name}.", " ".join(notes), "info")
        return True

    # -- depth -----------------------------------------------------------------------
    def estimate_depth(self) -> None:
        if self.loaded is None:
            return
        if self.model is None:
            self._depth_wanted = True  # estimated as soon as the model is ready
            return
        self._depth_wanted = False
        self.sig_request_depth.emit(self.image_key, self.loaded.image)

    def _on_depth_ready(self, key: str, depth: np.ndarray) -> None:
        if key == self.image_key:
            replaces_edits = self.depth_editor.is_edited()
            self.set_depth(depth, "Estimate depth", estimate_key=key)
            if replaces_edits:
                self.notice.show_message("The depth is back to this image's estimate.",
                                         "Undo (Ctrl+Z) brings your edits back.", "info")

    def set_depth(self, depth: np.ndarray, text: str = "Set depth", estimate_key: str | None = None) -> None:
        """Make `depth` the map to edit and generate with; replacing a map of the same size is undoable."""
        self.depth = self.depth_editor.load(depth, text, estimate_key)
        self._show_depth()
        self._update_actions()

    def _show_depth(self) -> None:
        self.canvas.set_colormap(self.colormap_combo.currentText())
        self.canvas.set_depth_map(self.depth)

    def _overlay_changed(self) -> None:
        self.canvas.set_overlay(self.overlay_check.isChecked(), self.opacity_slider.value() / 100)

    def load_depth_dialog(self) -> None:
        if self.loaded is None:
            self.notice.show_message("Open a photo first.", "A depth map is loaded for the photo on the canvas.")
            return
        path, _ = QFileDialog.getOpenFileName(self, "Load a depth map", "", DEPTH_FILTER)
        if path:
            self.load_depth_file(path)

    def load_depth_file(self, path: str | Path) -> bool:
        if self.loaded is None:
            self.notice.show_message("Open a photo first.", "A depth map is loaded for the photo on the canvas.")
            return False
        try:
            depth, notes = depth_maps.load_depth(path, self.loaded.image.size, self.depth_tools.bright_is_near())
        except D2IError as exc:
            self.notice.show_message(exc.message, exc.hint)
            return False
        self._depth_wanted = False
        self.set_depth(depth, f"Load {Path(path).name}")
        self.notice.show_message(f"Depth map loaded from {Path(path).name}.", " ".join(notes), "info")
        return True

    def save_depth_dialog(self) -> None:
        if self.depth is None:
            return
        path, chosen = QFileDialog.getSaveFileName(self, "Save depth map", str(self.output_dir() / "depth.png"),
                                                   ";;".join(DEPTH_SAVE_FILTERS),
                                                   options=QFileDialog.Option.DontConfirmOverwrite)
        if path:
            self.save_depth_file(path if Path(path).suffix else path + DEPTH_SAVE_FILTERS.get(chosen, ".png"))

    def save_depth_file(self, path: str | Path) -> Path | None:
        """Save the edited map: `.npy` as float32, anything else as 16-bit PNG; never overwrites."""
        save = depth_maps.save_depth_npy if Path(path).suffix.lower() == ".npy" else depth_maps.save_depth_png16
        try:
            saved = save(self.depth, path)
        except D2IError as exc:
            self.notice.show_message(exc.message, exc.hint)
            return None
        self.statusBar().showMessage(f"Depth map saved to {saved}", 8000)
        return saved

    # -- generation ------------------------------------------------------------------
    def generate(self) -> None:
        if self.busy:
            self.statusBar().showMessage("Wait for the running job to finish, or cancel it (Esc).", 5000)
            return
        if self.loaded is None:
            self.notice.show_message("Open a photo first.", "Generation repaints a photo; open one with Ctrl+O.")
            return
        if self.model is None:
            self.notice.show_message("No model is loaded yet.", "Wait for the model to load, or choose one in the Model menu.")
            return
        try:
            params = replace(self.params_panel.params(), loras=self.library_panel.selected_loras()).validated()
        except D2IError as exc:
            self.notice.show_message(exc.message, exc.hint)
            return
        if self.notice.level == "error":
            self.notice.hide()
        self.settings.setValue("params/last", params.to_json())
        self.progress.setRange(0, params.denoising_steps)
        self.progress.setValue(0)
        self.progress.setFormat("Starting…")
        # A copy: the worker must not see strokes painted while it runs.
        depth = None if self.depth is None else self.depth.copy()
        self.sig_request_generate.emit(params, self.loaded.image, depth)
        self._on_busy("Generating…")  # at once, not when the worker says so: a second click must not queue a second run

    def insert_in_prompt(self, text: str) -> None:
        """Insert `text` (an embedding's token, trigger words) at the prompt's cursor, spaced from its neighbours."""
        edit = self.params_panel.prompt
        cursor = edit.textCursor()
        before = edit.toPlainText()[:cursor.position()]
        cursor.insertText((" " if before and not before[-1].isspace() else "") + text + " ")
        edit.setTextCursor(cursor)
        edit.setFocus()

    def cancel(self) -> None:
        if self.busy:
            self.worker_thread.cancel()
            self.progress.setFormat("Cancelling…")

    def _on_step(self, info: StepInfo) -> None:
        rate = info.step / info.elapsed if info.elapsed > 0 else 0.0
        left = (info.total - info.step) / rate if rate else 0.0
        self.progress.setFormat(f"Step {info.step}/{info.total} · {rate:.2f} it/s · {left:.0f} s left")
        self.progress.setRange(0, info.total)
        self.progress.setValue(info.step)
        if info.preview is not None:
            self.canvas.set_result(to_qimage(info.preview), preview=True)
            self.view_combo.setCurrentText(self.canvas.view_mode)

    def _on_result(self, result: GenerationResult) -> None:
        self.result = result
        self.params_panel.remember_seed(result.seeds[0])
        self.results_list.clear()
        for image, seed in zip(result.images, result.seeds):
            thumb = to_qimage(image).scaled(72, 72, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
            QListWidgetItem(QIcon(QPixmap.fromImage(thumb)), str(seed), self.results_list)
        self.results_list.setVisible(len(result.images) > 1)
        self.show_result(0)
        self.progress.setFormat(f"Done in {result.seconds:.1f} s · seed {result.seeds[0]}")
        if result.notes:
            self.notice.show_message(" ".join(result.notes), level="info")
        self.statusBar().showMessage(f"Generated {len(result.images)} image(s) in {result.seconds:.1f} s", 8000)

    def show_result(self, index: int) -> None:
        if self.result is None or not 0 <= index < len(self.result.images):
            return
        self.result_index = index
        self.canvas.set_result(to_qimage(self.result.images[index]))
        self.library_panel.set_current_result(self.result.images[index])
        self.view_combo.setCurrentText(self.canvas.view_mode)
        self._update_actions()

    def _on_cancelled(self) -> None:
        self.progress.setValue(0)
        self.progress.setFormat("Cancelled")
        if self.result is None:
            self.canvas.set_result(None)
        else:
            self.show_result(self.result_index)

    def _on_failed(self, message: str, hint: str) -> None:
        self.progress.setFormat("Failed")
        if self.model is None and self.model_label.text() == "Loading model…":
            self.model_label.setText("No model")
        self.notice.show_message(message, hint)

    def _offer_fix(self, fix) -> None:
        self.notice.set_action(fix.label, lambda: self.apply_performance(load_performance(self.settings).with_fix(fix)))

    def _on_busy(self, what: str) -> None:
        self.busy = True
        self.statusBar().showMessage(what)
        self._update_actions()

    def _on_idle(self) -> None:
        self.busy = False
        self.statusBar().clearMessage()
        self._update_actions()

    # -- saving ----------------------------------------------------------------------
    def save_result(self) -> Path | None:
        if self.result is None:
            return None
        index = self.result_index
        try:
            path = save_numbered_png(self.result.images[index], self.output_dir(), self.result.seeds[index],
                                     self.result.parameters_text(index))
        except D2IError as exc:
            self.notice.show_message(exc.message, exc.hint)
            return None
        except OSError as exc:
            self.notice.show_message(f"Could not save into {self.output_dir()}: {exc.strerror}.",
                                     "Choose another output folder in the File menu.")
            return None
        self.statusBar().showMessage(f"Saved {path}", 8000)
        return path

    def save_result_as(self) -> Path | None:
        if self.result is None:
            return None
        path, _ = QFileDialog.getSaveFileName(self, "Save result", str(self.output_dir()), "PNG (*.png)",
                                              options=QFileDialog.Option.DontConfirmOverwrite)
        if not path:
            return None
        index = self.result_index
        try:
            saved = save_png(self.result.images[index], Path(path).with_suffix(".png"), self.result.parameters_text(index))
        except D2IError as exc:
            self.notice.show_message(exc.message, exc.hint)
            return None
        self.statusBar().showMessage(f"Saved {saved}", 8000)
        return saved

    # -- state -----------------------------------------------------------------------
    def _update_actions(self) -> None:
        ready = self.model is not None and self.loaded is not None
        self.generate_button.setEnabled(ready and not self.busy)
        self.cancel_button.setEnabled(self.busy)
        self.estimate_button.setEnabled(ready and not self.busy)
        has_result = self.result is not None
        self.save_button.setEnabled(has_result)
        self.save_action.setEnabled(has_result)
        self.save_as_action.setEnabled(has_result)
        self.save_depth_action.setEnabled(self.depth is not None)
        self.save_depth_button.setEnabled(self.depth is not None)

    def closeEvent(self, event):
        self.settings.setValue("window/geometry", self.saveGeometry())
        if self.models_dialog is not None and not self.models_dialog.shutdown():
            log.warning("download did not stop within 3 s")
        if not self.worker_thread.stop(timeout_ms=2000):
            log.warning("worker did not stop within 2 s")
        event.accept()
