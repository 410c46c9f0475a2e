"""The main window: the canvas in the middle, every panel a dock around it, all wired to the session."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image
from PySide6.QtCore import QRect, QSettings, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QGuiApplication, QIcon, QImage, QKeySequence, QPixmap, QShortcut
from PySide6.QtWidgets import (
    QApplication, QDialog, QDialogButtonBox, QDockWidget, QFileDialog, QFrame, QHBoxLayout, QLabel, QListWidget,
    QListWidgetItem, QMainWindow, QMessageBox, QProgressBar, QPushButton, QScrollArea, QStyle, QTableWidget, QTableWidgetItem, QToolBar,
    QVBoxLayout, QWidget,
)

from ..core.depth import maps as depth_maps
from ..core.depth.estimators import DepthEstimate, DepthSettings
from ..core.models.demo import DEMO_LABEL
from ..core.generation.batch import BatchItem, plan
from ..core.generation.depth_origin import DepthOrigin
from ..core.generation.depth_source import image_key
from ..core.generation.engine import GenerationResult, ModelInfo, StepInfo
from ..core.errors import D2IError
from ..core.extras.adapters import resolve_extras
from ..core.history.foreign import PictureSettings
from ..core.history.hashes import HashCache
from ..core.history.record import depth_path_for
from ..core.files.images import LoadedImage, load_image, prepare_image
from ..core.files.outputs import save_new_file, save_png
from ..core.generation.params import MAX_SEED, GenerationParams
from ..core.paths import data_dir, default_output_dir
from ..session import Session
from .canvas import VIEW_COMPARE, VIEW_SIDE_BY_SIDE, Canvas, to_qimage
from .depth_panel import DepthPanel
from .depth_tools import DepthToolsPanel
from .gallery_panel import GalleryPanel
from .library_panel import LibraryPanel
from .notice_bar import NoticeBar
from .mask_panel import MaskPanel
from .params_panel import ParamsPanel
from .queue_panel import QueuePanel
from .queue_store import QueueStore
from .settings_dialog import (SettingsDialog, load_default_estimator, load_performance, save_default_estimator,
                              save_performance)
from .file_loader import FileLoader
from .settings_reader import SettingsReader
from .text_field_keys import TextFieldKeys
from .theme import THEME_SYSTEM, THEMES, apply_theme
from .wheel_guard import install_wheel_guard
from .worker import Output, WorkerThread

log = logging.getLogger(__name__)

IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.webp *.bmp *.tif *.tiff *.gif);;All files (*)"
DEPTH_FILTER = "Depth maps (*.png *.tif *.tiff *.npy);;All files (*)"
DEPTH_SAVE_FILTERS = {"16-bit PNG (*.png)": ".png", "NumPy float32 array (*.npy)": ".npy"}
FRAME_ALLOWANCE = QSize(16, 48)  # a window manager's border and title bar, not known before the window shows
LARGEST_FIRST_SIZE = QSize(1680, 1050)
MOUSE_HELP = (("Wheel", "Zoom"), ("Drag (hand tool), middle-drag or Space+drag", "Pan"), ("Double-click", "Fit"),
              ("Left-drag (brush)", "Paint depth"), ("Alt+click", "Pick the depth to flatten to"),
              ("Drag the split line", "Move the split (Compare view, Split overlay)"))


def qimage_to_pil(image: QImage) -> Image.Image:
    image = image.convertToFormat(QImage.Format.Format_RGBA8888)
    buffer = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), image.bytesPerLine())
    rgba = buffer[:, : image.width() * 4].reshape(image.height(), image.width(), 4)
    return Image.fromarray(rgba.copy(), "RGBA")


TWO_PANEL_COLUMNS_FROM = 1600  # window width from which the depth tools get a column of their own


def job_text(params: GenerationParams) -> str:
    """A queued generation in words, as the queue and the status bar show it."""
    prompt = params.prompt if len(params.prompt) <= 40 else params.prompt[:39] + "…"
    seed = "random seed" if params.seed == -1 else f"seed {params.seed}"
    return f"{seed} · “{prompt}”"


def first_geometry(available: QRect) -> QRect:
    """The window on a first start: most of the screen it opens on, frame included, centred; never larger."""
    size = (available.size() - FRAME_ALLOWANCE).boundedTo(LARGEST_FIRST_SIZE)
    rect = QRect(0, 0, size.width(), size.height())
    rect.moveCenter(available.center())
    rect.moveTop(max(rect.top(), available.top() + FRAME_ALLOWANCE.height() - FRAME_ALLOWANCE.width()))
    return rect


def standard_icon(theme_name: str, fallback: QStyle.StandardPixmap) -> QIcon:
    """The desktop theme's icon when it has one, else Qt's own."""
    return QIcon.fromTheme(theme_name, QApplication.style().standardIcon(fallback))


class ShortcutSheet(QDialog):
    """Every key of the window's actions, and what the mouse does on the canvas."""

    def __init__(self, rows: list[tuple[str, str, str]], parent=None):
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        self.setObjectName("shortcutSheet")
        self.table = QTableWidget(len(rows), 3, objectName="shortcutTable")
        self.table.setHorizontalHeaderLabels(["Where", "Keys", "Does"])
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        for row, cells in enumerate(rows):
            for column, text in enumerate(cells):
                self.table.setItem(row, column, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()
        self.table.horizontalHeader().setStretchLastSection(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addWidget(buttons)
        self.resize(620, 560)


class MainWindow(QMainWindow):
    sig_request_model = Signal(int, str, bool)
    sig_request_depth = Signal(int, str, object, object)
    sig_request_generate = Signal(int, object, object, object, object, object, object)
    sig_request_repaint_file = Signal(int, object, object, object, object)
    sig_request_performance = Signal(int, object)
    sig_request_mix = Signal(int, object, str)
    sig_request_reproduce = Signal(int, str, str)
    sig_settings_taken = Signal(str, bool)
    """A picture's settings were read and put into the panels (True) or could not be (False); carries its path."""
    sig_folder_queued = Signal(int)
    """A folder given to Repaint a folder was planned; carries the number of jobs queued (0 when it could not be)."""

    def __init__(self, worker_thread: WorkerThread, settings: QSettings):
        super().__init__()
        self.setWindowTitle("d2i-desktop")
        self.setDockOptions(QMainWindow.DockOption.AnimatedDocks | QMainWindow.DockOption.AllowTabbedDocks
                            | QMainWindow.DockOption.AllowNestedDocks)
        self.worker_thread = worker_thread
        self.settings = settings
        self.session = Session(self)
        self.depth_editor = self.session.depth
        self.models_dialog = None
        self._offered: dict = {}  # a result made from another photo than the open one: its job id and saved paths
        self._depth_wanted = False
        self.performance_report = None
        self._performance_requested = False
        self._hidden_panels: list[QWidget] = []
        self._quit_confirmed = False
        self.theme = apply_theme(self.settings.value("ui/theme", THEME_SYSTEM))

        self._build_widgets()
        self._build_docks()
        self._build_actions()
        self._connect_session()
        self._connect_worker()
        self._restore_settings()
        self._update_actions()
        QTimer.singleShot(0, self.gallery_panel.sync)  # the output folder may have changed while the app was closed
        self.queue_store = QueueStore(self.session, data_dir())
        self.queue_store.read()
        QTimer.singleShot(0, lambda: self.queue_store.ask(self, lambda text: self.notice.show_message(text, level="info")))

    # -- the state, as the session holds it -----------------------------------------------
    @property
    def busy(self) -> bool:
        return self.session.busy

    @property
    def model(self) -> ModelInfo | None:
        return self.session.model

    @property
    def depth(self) -> np.ndarray | None:
        return self.session.depth.depth

    @property
    def result(self) -> GenerationResult | None:
        return self.session.result

    # -- construction ----------------------------------------------------------------
    def _build_widgets(self) -> None:
        self.canvas = Canvas()
        self.canvas.sig_files_dropped.connect(self.open_dropped)
        self.settings_reader = SettingsReader(self)
        self.file_loader = FileLoader(self)
        self.demo_notice = NoticeBar(object_name="demoNotice", closable=False)
        self.notice = NoticeBar()
        self.results_list = QListWidget(objectName="resultsList", viewMode=QListWidget.ViewMode.IconMode,
                                        flow=QListWidget.Flow.LeftToRight, wrapping=False, maximumHeight=96)
        self.results_list.setIconSize(QSize(72, 72))
        self.results_list.currentRowChanged.connect(self.session.select_result)
        self.results_list.hide()
        centre = QWidget(objectName="centre")
        centre_layout = QVBoxLayout(centre)
        centre_layout.setContentsMargins(4, 4, 4, 4)
        centre_layout.setSpacing(4)
        centre_layout.addWidget(self.demo_notice)
        centre_layout.addWidget(self.notice)
        centre_layout.addWidget(self.canvas, 1)
        centre_layout.addWidget(self.results_list)
        self.setCentralWidget(centre)

        self.params_panel = ParamsPanel()
        self.params_panel.sig_submit.connect(self.generate)
        self.generate_button = QPushButton("Generate", objectName="generateButton", toolTip="Generate (Ctrl+Enter)")
        self.generate_button.setDefault(True)
        self.generate_button.clicked.connect(self.generate)
        self.cancel_button = QPushButton("Cancel", objectName="cancelButton", toolTip="Cancel (Esc)", enabled=False)
        self.cancel_button.clicked.connect(self.cancel)
        self.save_button = QPushButton("Export…", objectName="saveButton", enabled=False,
                                       toolTip="Save a copy of the picture where you choose (Ctrl+S); every picture is "
                                               "already in the output folder")
        self.save_button.clicked.connect(lambda: self.export_result())
        self.progress = QProgressBar(objectName="progressBar", textVisible=True)
        self._reset_progress("Ready")
        buttons = QHBoxLayout()
        buttons.addWidget(self.generate_button, 2)
        buttons.addWidget(self.cancel_button, 1)
        buttons.addWidget(self.save_button, 1)
        self.generate_panel = QWidget(objectName="generatePanel")
        generate_layout = QVBoxLayout(self.generate_panel)
        generate_layout.setContentsMargins(6, 6, 6, 6)
        generate_layout.addWidget(self.params_panel)
        generate_layout.addLayout(buttons)
        generate_layout.addWidget(self.progress)
        generate_layout.addStretch(1)

        self.depth_panel = DepthPanel(self.canvas)
        self.depth_panel.sig_estimate.connect(self.estimate_depth)
        self.depth_panel.sig_load.connect(self.load_depth_dialog)
        self.depth_panel.sig_save.connect(self.save_depth_dialog)
        self.depth_tools = DepthToolsPanel(self.session.depth, self.canvas)
        self.depth_tools.sig_failed.connect(self.notice.show_message)
        self.mask_panel = MaskPanel(self.session, self.canvas)
        self.mask_panel.sig_message.connect(self.notice.show_message)
        self.library_panel = LibraryPanel()
        self.library_panel.sig_insert_text.connect(self.insert_in_prompt)
        self.library_panel.sig_message.connect(self.notice.show_message)
        self.library_panel.sig_export_mix.connect(self.export_mix)
        self.library_panel.sig_names_changed.connect(self.params_panel.set_library_names)

        self.queue_panel = QueuePanel(self.session)
        self.queue_panel.sig_edit.connect(self.edit_queued)
        self.queue_panel.sig_cancel_all.connect(self.cancel_all)
        self.gallery_panel = GalleryPanel(lambda: [self.output_dir()])
        self.gallery_panel.sig_use.connect(self.use_picture)
        self.gallery_panel.sig_message.connect(self.notice.show_message)
        self.gallery_panel.sig_reproduce.connect(self.reproduce_picture)

        self.model_label = QLabel(objectName="modelLabel")
        self.statusBar().addPermanentWidget(self.model_label)

    def _build_docks(self) -> None:
        def dock(title: str, name: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
            # Scrolled, so a panel never makes the window larger than a small screen.
            scroller = QScrollArea(widgetResizable=True, frameShape=QFrame.Shape.NoFrame)
            scroller.setWidget(widget)
            made = QDockWidget(title, self, objectName=name)
            made.setWidget(scroller)
            self.addDockWidget(area, made)
            return made

        right = Qt.DockWidgetArea.RightDockWidgetArea
        self.generate_dock = dock("Generate", "generateDock", self.generate_panel, right)
        self.depth_dock = dock("Depth", "depthDock", self.depth_panel, right)
        self.depth_tools_dock = dock("Depth tools", "depthToolsDock", self.depth_tools, right)
        self.mask_dock = dock("Mask", "maskDock", self.mask_panel, right)
        self.library_dock = dock("LoRAs", "libraryDock", self.library_panel, right)  # short: it shares a row of tabs
        self.queue_dock = dock("Queue", "queueDock", self.queue_panel, right)
        self.gallery_dock = dock("Gallery", "galleryDock", self.gallery_panel, right)
        self.docks = [self.generate_dock, self.depth_dock, self.depth_tools_dock, self.mask_dock, self.library_dock,
                      self.queue_dock, self.gallery_dock]
        self.wheel_guard = install_wheel_guard(self)  # the wheel scrolls the panels, not the values passed over

    def _build_actions(self) -> None:
        """Every menu, its actions, their keys and icons: the one place they are declared."""
        style = QStyle.StandardPixmap

        def add(menu, text, slot, shortcut=None, name=None, icon=None, checkable=False) -> QAction:
            act = QAction(text, self, objectName=name or "", checkable=checkable)
            act.triggered.connect(slot)
            if shortcut is not None:
                shortcuts = shortcut if isinstance(shortcut, list) else [shortcut]
                act.setShortcuts([QKeySequence(key) for key in shortcuts])
            if icon is not None:
                act.setIcon(standard_icon(*icon))
            menu.addAction(act)
            return act

        file_menu = self.menuBar().addMenu("&File")
        self.open_action = add(file_menu, "&Open image…", self.open_image_dialog, QKeySequence.StandardKey.Open,
                               "openAction", ("document-open", style.SP_DialogOpenButton))
        add(file_menu, "&Paste image", self.paste_image, QKeySequence.StandardKey.Paste, "pasteAction",
            ("edit-paste", style.SP_FileDialogContentsView))
        file_menu.addSeparator()
        add(file_menu, "Use settings from a picture…", self.use_settings_dialog, name="useSettingsAction")
        add(file_menu, "Repaint a folder…", self.repaint_folder_dialog, name="repaintFolderAction",
            icon=("folder-open", style.SP_DirOpenIcon))
        file_menu.addSeparator()
        self.save_action = add(file_menu, "&Save as… / Export", lambda: self.export_result(),
                               [QKeySequence.StandardKey.Save, QKeySequence.StandardKey.SaveAs], "saveAction",
                               ("document-save-as", style.SP_DialogSaveButton))
        add(file_menu, "Choose output folder…", self.choose_output_dir, icon=("folder", style.SP_DirIcon))
        file_menu.addSeparator()
        add(file_menu, "&Quit", self.close, QKeySequence.StandardKey.Quit, icon=("application-exit",
                                                                                   style.SP_DialogCloseButton))

        edit_menu = self.menuBar().addMenu("&Edit")  # Undo and Redo: the mask's while a mask tool is active
        for panel in (self.depth_tools, self.mask_panel):
            panel.undo_action.setIcon(standard_icon("edit-undo", style.SP_ArrowBack))
            panel.redo_action.setIcon(standard_icon("edit-redo", style.SP_ArrowForward))
            edit_menu.addActions([panel.undo_action, panel.redo_action])
        edit_menu.addSeparator()
        add(edit_menu, "Se&ttings…", self.show_settings_dialog, "Ctrl+,", "settingsAction",
            ("preferences-system", style.SP_FileDialogDetailedView))

        depth_menu = self.menuBar().addMenu("&Depth")
        add(depth_menu, "&Estimate depth", self.estimate_depth, "Ctrl+E", "estimateDepthAction",
            ("view-refresh", style.SP_BrowserReload))
        add(depth_menu, "&Load depth map…", self.load_depth_dialog, name="loadDepthAction")
        self.save_depth_action = add(depth_menu, "&Save depth map…", self.save_depth_dialog, name="saveDepthAction")
        depth_menu.addSeparator()
        add(depth_menu, "Show depth over the image", self.depth_panel.overlay_check.toggle, "D", "toggleOverlayAction")
        depth_menu.addSeparator()
        depth_menu.addActions(self.depth_tools.tool_group.actions())
        self.addActions(self.depth_tools.tool_group.actions())  # their keys work while the panels are hidden too

        model_menu = self.menuBar().addMenu("&Model")
        add(model_menu, "&Models…", self.show_models_dialog, "Ctrl+M", "modelsAction", ("drive-harddisk", style.SP_DriveHDIcon))
        add(model_menu, "Open model &folder…", self.open_model_dialog, icon=("folder-open", style.SP_DirOpenIcon))
        add(model_menu, "Use the &demo model", self.use_demo_model)

        generate_menu = self.menuBar().addMenu("&Generate")
        self.generate_action = add(generate_menu, "&Generate", self.generate, ["Ctrl+Return", "Ctrl+Enter"],
                                   "generateAction", ("media-playback-start", style.SP_MediaPlay))
        self.cancel_action = add(generate_menu, "&Cancel", self.cancel, "Escape", "cancelAction",
                                 ("process-stop", style.SP_BrowserStop))
        self.cancel_all_action = add(generate_menu, "Cancel &all (empty the queue)", self.cancel_all, "Shift+Escape",
                                     "cancelAllAction")
        self.text_field_keys = TextFieldKeys(self)  # Esc in a prompt or search field edits, it does not cancel
        QApplication.instance().installEventFilter(self.text_field_keys)
        self.generate_button.setIcon(self.generate_action.icon())
        self.cancel_button.setIcon(self.cancel_action.icon())
        self.save_button.setIcon(self.save_action.icon())

        view_menu = self.menuBar().addMenu("&View")
        self.compare_action = add(view_menu, "&Compare before and after", self.toggle_compare, "C", "compareAction",
                                  ("view-split-left-right", style.SP_FileDialogListView), checkable=True)
        self.compare_action.setIconText("Compare")
        self.canvas.sig_view_mode_changed.connect(lambda mode: self.compare_action.setChecked(mode == VIEW_COMPARE))
        self.tile_preview_action = add(view_menu, "&Tiled preview (result 2x2)", self.canvas.set_tile_preview, "T",
                                       "tilePreviewAction", checkable=True)
        add(view_menu, "Fit to window", self.canvas.fit, "Ctrl+0", "fitAction", ("zoom-fit-best", style.SP_TitleBarMaxButton))
        add(view_menu, "Zoom in", lambda: self.canvas.zoom_by(1.25), QKeySequence.StandardKey.ZoomIn, icon=("zoom-in", style.SP_ArrowUp))
        add(view_menu, "Zoom out", lambda: self.canvas.zoom_by(0.8), QKeySequence.StandardKey.ZoomOut, icon=("zoom-out", style.SP_ArrowDown))
        view_menu.addSeparator()
        self.canvas_only_action = add(view_menu, "Canvas &only (hide the panels)", self.set_canvas_only, "F11",
                                      "canvasOnlyAction", ("view-fullscreen", style.SP_TitleBarNormalButton),
                                      checkable=True)
        self.canvas_only_action.setIconText("Canvas only")
        QShortcut(QKeySequence("Tab"), self.canvas, self.canvas_only_action.trigger,
                  context=Qt.ShortcutContext.WidgetShortcut)  # Tab moves between fields everywhere else
        panels_menu = view_menu.addMenu("&Panels")
        for dock in self.docks:
            panels_menu.addAction(dock.toggleViewAction())
        panels_menu.addSeparator()
        add(panels_menu, "&Reset layout", self.reset_layout, name="resetLayoutAction")
        theme_menu = view_menu.addMenu("&Theme")
        themes = QActionGroup(self)
        stored = self.settings.value("ui/theme", THEME_SYSTEM)
        for key, label in THEMES.items():
            choice = add(theme_menu, label, lambda _checked=False, key=key: self.set_theme(key), name=f"theme_{key}",
                         checkable=True)
            choice.setChecked(key == stored)
            themes.addAction(choice)
        QGuiApplication.styleHints().colorSchemeChanged.connect(self._system_theme_changed)

        help_menu = self.menuBar().addMenu("&Help")
        add(help_menu, "&Keyboard shortcuts", self.show_shortcuts, ["F1", "?"], "shortcutsAction",
            ("help-contents", style.SP_DialogHelpButton))

        self.toolbar = QToolBar("Main tools", self, objectName="mainToolbar", movable=False)
        self.toolbar.setIconSize(QSize(20, 20))
        self.toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        for item in (self.open_action, self.save_action, None, self.generate_action, self.cancel_action, None,
                     self.compare_action, self.canvas_only_action):
            self.toolbar.addAction(item) if item is not None else self.toolbar.addSeparator()
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, self.toolbar)

    def _connect_session(self) -> None:
        session = self.session
        session.sig_jobs_changed.connect(self._on_jobs_changed)
        session.sig_result_changed.connect(self._show_result)
        session.depth.sig_changed.connect(self._on_depth_changed)

    def _connect_worker(self) -> None:
        worker = self.worker_thread.worker
        self.sig_request_model.connect(worker.load_model)
        self.sig_request_depth.connect(worker.estimate_depth)
        self.sig_request_generate.connect(worker.generate)
        self.sig_request_repaint_file.connect(worker.repaint_file)
        self.sig_request_performance.connect(worker.apply_performance)
        self.sig_request_mix.connect(worker.export_mix)
        self.sig_request_reproduce.connect(worker.reproduce)
        worker.sig_reproduced.connect(self._on_reproduced)
        worker.sig_mix_exported.connect(self.library_panel.mix_exported)
        worker.sig_job_started.connect(self.session.job_started)
        worker.sig_job_ended.connect(self.session.job_ended)
        worker.sig_model_loaded.connect(self._on_model_loaded)
        worker.sig_depth_ready.connect(self._on_depth_ready)
        worker.sig_step.connect(self._on_step)
        worker.sig_made.connect(self._on_result)
        worker.sig_saved.connect(self._on_saved)
        worker.sig_cancelled.connect(self._on_cancelled)
        worker.sig_failed.connect(self._on_failed)
        worker.sig_fix_offered.connect(self._offer_fix)
        worker.sig_performance.connect(self._on_performance)

    def attempt(self, action, *args):
        """Run `action(*args)`; a D2IError it raises is shown in the notice bar and gives None."""
        try:
            return action(*args)
        except D2IError as exc:
            self.notice.show_message(exc.message, exc.hint)
            return None

    # -- settings and layout ---------------------------------------------------------
    def _restore_settings(self) -> None:
        geometry = self.settings.value("window/geometry")
        if geometry is None or not self.restoreGeometry(geometry):
            screen = self.screen() or QGuiApplication.primaryScreen()
            self.setGeometry(first_geometry(screen.availableGeometry()))
        state = self.settings.value("window/state")
        if state is None or not self.restoreState(state):
            self.reset_layout()
        self.depth_panel.bind_settings(self.settings)
        self.mask_panel.bind_settings(self.settings)
        last_params = self.settings.value("params/last")
        if last_params:
            try:
                self.params_panel.set_params(GenerationParams.from_json(last_params))
            except (ValueError, TypeError):
                log.warning("ignoring unreadable saved parameters")

    def reset_layout(self) -> None:
        """The panels as on a first start, for this window's width: on a laptop they share one column of tabs
        beside the picture, so the picture gets most of the width; on a wide screen the depth tools get their own."""
        self.set_canvas_only(False)
        two_columns = self.width() >= TWO_PANEL_COLUMNS_FROM
        tools_area = Qt.DockWidgetArea.LeftDockWidgetArea if two_columns else Qt.DockWidgetArea.RightDockWidgetArea
        for dock in self.docks:
            dock.setFloating(False)
            dock.show()
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.generate_dock)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.depth_dock)
        self.tabifyDockWidget(self.depth_dock, self.queue_dock)
        self.tabifyDockWidget(self.queue_dock, self.gallery_dock)
        self.addDockWidget(tools_area, self.depth_tools_dock)
        self.addDockWidget(tools_area, self.library_dock)
        if not two_columns:
            self.tabifyDockWidget(self.generate_dock, self.depth_tools_dock)
        self.tabifyDockWidget(self.depth_tools_dock, self.mask_dock)
        self.tabifyDockWidget(self.mask_dock, self.library_dock)
        (self.depth_tools_dock if two_columns else self.generate_dock).raise_()
        self.depth_dock.raise_()
        columns = [self.depth_tools_dock, self.generate_dock] if two_columns else [self.generate_dock]
        widths = [max(dock.widget().widget().minimumSizeHint().width() + 24, self.width() // 5) for dock in columns]
        self.resizeDocks(columns, widths, Qt.Orientation.Horizontal)
        # The Generate panel whole, buttons and progress included; the depth, queue and gallery tabs get the rest.
        self.resizeDocks([self.generate_dock], [self.generate_panel.minimumSizeHint().height() + 48],
                         Qt.Orientation.Vertical)

    def set_canvas_only(self, on: bool) -> None:
        """Hide every panel and the toolbar to show the picture alone; show again the ones that were shown."""
        self.canvas_only_action.setChecked(on)
        if on and not self._hidden_panels:
            self._hidden_panels = [widget for widget in (*self.docks, self.toolbar) if widget.isVisible()]
            for widget in self._hidden_panels:
                widget.hide()
        elif not on:
            for widget in self._hidden_panels:
                widget.show()
            self._hidden_panels = []

    def toggle_compare(self) -> None:
        """Switch between the before/after split and side by side."""
        self.canvas.set_view_mode(VIEW_SIDE_BY_SIDE if self.canvas.view_mode == VIEW_COMPARE else VIEW_COMPARE)

    def set_theme(self, name: str) -> None:
        self.settings.setValue("ui/theme", name)
        self.theme = apply_theme(name)

    def _system_theme_changed(self) -> None:
        if self.settings.value("ui/theme", THEME_SYSTEM) == THEME_SYSTEM:
            self.theme = apply_theme(THEME_SYSTEM)

    def shortcut_rows(self) -> list[tuple[str, str, str]]:
        """(menu, keys, what) for every action with keys, then the canvas's mouse gestures."""
        rows = []
        for menu_action in self.menuBar().actions():
            menu = menu_action.menu()
            for act in menu.actions() + [a for sub in menu.actions() if sub.menu() for a in sub.menu().actions()]:
                keys = ", ".join(key.toString(QKeySequence.SequenceFormat.NativeText) for key in act.shortcuts())
                if keys:
                    rows.append((menu_action.text().replace("&", ""), keys, act.text().replace("&", "")))
        rows.append(("Canvas", "Tab", "Canvas only (hide the panels)"))
        rows.append(("Depth tools, Mask", "[  ]", "Smaller or larger brush"))
        rows += [("Canvas", mouse, does) for mouse, does in MOUSE_HELP]
        return rows

    def show_shortcuts(self) -> ShortcutSheet:
        sheet = ShortcutSheet(self.shortcut_rows(), self)
        sheet.finished.connect(sheet.deleteLater)
        sheet.open()
        return sheet

    def output_dir(self) -> Path:
        return Path(self.settings.value("output/dir", str(default_output_dir())))

    def choose_output_dir(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Output folder", str(self.output_dir()))
        if folder:
            self.settings.setValue("output/dir", folder)
            self.statusBar().showMessage(f"Results are saved in {folder}", 5000)

    def show_settings_dialog(self) -> SettingsDialog:
        dialog = SettingsDialog(load_performance(self.settings), self.performance_report, self,
                                default_estimator=load_default_estimator(self.settings),
                                model_has_own_estimator=self.model is not None and self.model.own_depth_estimator)
        dialog.accepted.connect(lambda: save_default_estimator(self.settings, dialog.default_estimator()))
        dialog.accepted.connect(lambda: self.apply_performance(dialog.performance()))
        dialog.finished.connect(dialog.deleteLater)
        dialog.open()
        return dialog

    def apply_performance(self, performance) -> None:
        """Store the settings and have the worker apply them (after any running job)."""
        save_performance(self.settings, performance)
        self._performance_requested = True
        self.sig_request_performance.emit(self.session.add_job("Applying performance settings…", cancellable=False).id, performance)

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
        if self.model is not None and self.model.source == str(source):
            self.statusBar().showMessage(f"{self.model.label} is already in use.", 5000)
            return
        self.session.set_model(None)
        self.model_label.setText("Loading model…")
        self.sig_request_model.emit(self.session.add_job("Loading model…", cancellable=False).id, str(source), make_demo)

    def open_model_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a diffusers model folder")
        if folder:
            self.load_model(folder)

    def show_models_dialog(self, first_run: bool = False):
        """The Models dialog (the first-run welcome when `first_run`); one instance, kept for its downloads."""
        from .models_dialog import ModelsDialog

        if self.models_dialog is None:
            self.models_dialog = ModelsDialog(self, first_run=first_run)
            self.models_dialog.sig_use_model.connect(self.load_model)
            self.models_dialog.sig_use_demo.connect(self.use_demo_model)
        self.models_dialog.set_first_run(first_run)
        self.models_dialog.set_default_estimator(load_default_estimator(self.settings))
        self.models_dialog.set_model_in_use(self.model)
        self.models_dialog.show()
        self.models_dialog.raise_()
        return self.models_dialog

    def use_demo_model(self) -> None:
        from ..core.paths import demo_model_dir
        self.load_model(str(demo_model_dir()), make_demo=True)

    def _on_model_loaded(self, info: ModelInfo) -> None:
        self.session.set_model(info)
        self.settings.setValue("model/source", info.source)
        self.settings.setValue("model/demo", info.is_demo)
        self.model_label.setText(f"Model: {info.label} · {info.device} {info.dtype}")
        self.model_label.setStyleSheet("color:#f0b429; font-weight:bold;" if info.is_demo else "")
        if self.models_dialog is not None:
            self.models_dialog.set_model_in_use(info)
        self.depth_panel.set_model_has_own_estimator(info.own_depth_estimator)
        if info.is_demo:
            self.demo_notice.show_message(f"Using the {DEMO_LABEL}: pictures will be noise.",
                                          "Add a real SD2-depth model with Model ▸ Models… to make real pictures.",
                                          "warning")
        else:
            self.demo_notice.hide()
            if info.notes:
                self.notice.show_message(f"Model {info.name} loaded.", " ".join(info.notes), "info")
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
        loaded = self.attempt(load_image, path)
        if loaded is None:
            return False
        self.settings.setValue("paths/last_image", str(path))
        self.set_image(loaded, Path(path).name, path)
        return True

    def paste_image(self) -> bool:
        clipboard = QGuiApplication.clipboard()
        clip = clipboard.mimeData()
        if clip is not None and clip.hasImage():
            loaded = self.attempt(lambda: prepare_image(qimage_to_pil(clipboard.image())))
            if loaded is None:
                return False
            self.set_image(loaded, "pasted image")
            return True
        if clip is not None and clip.hasUrls() and clip.urls()[0].isLocalFile():
            return self.open_image(clip.urls()[0].toLocalFile())
        self.notice.show_message("The clipboard holds no picture.", "Copy an image or an image file, then paste again.")
        return False

    def set_image(self, loaded: LoadedImage, name: str, path: str | Path | None = None, estimate: bool = True,
                  depth_settings: DepthSettings | None = None) -> None:
        """Open `loaded`; its depth is estimated as `depth_settings` say (default: the estimator of Edit ▸ Settings)."""
        self.depth_panel.set_depth_settings(depth_settings or DepthSettings(load_default_estimator(self.settings)))
        self.session.open_image(loaded, name, path)
        self.results_list.clear()
        self.results_list.hide()
        self.canvas.set_input(to_qimage(loaded.image))
        self._reset_progress("Ready")
        self.setWindowTitle(f"{name} — d2i-desktop")
        width, height = loaded.image.size
        self.statusBar().showMessage(f"{name}: {width}x{height}", 8000)
        if loaded.notes:
            self.notice.show_message(f"Opened {name} at {width}x{height}.", " ".join(loaded.notes), "info")
        else:
            self.notice.hide()
        if estimate:
            self.estimate_depth()
        self._update_actions()

    def use_settings_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Use the settings of a picture", str(self.output_dir()), IMAGE_FILTER)
        if path:
            self.use_settings_from(path)

    def use_settings_from(self, path: str | Path) -> None:
        """Fill the parameters and LoRAs from what a picture says about how it was made (this app's record, or
        AUTOMATIC1111, ComfyUI, Fooocus, InvokeAI or NovelAI metadata), read off the GUI thread."""
        def taken(found: PictureSettings) -> None:
            notes = self._apply_settings(found)
            self.notice.show_message(f"Settings taken from {Path(path).name} ({found.tool}).", " ".join(notes), "info")
            self.sig_settings_taken.emit(str(path), True)

        self.settings_reader.read(path, self.params_panel.params(), taken, lambda error: self._settings_failed(path, error))

    def use_picture(self, path: str | Path) -> None:
        """Its settings and LoRAs, and for this app's pictures the recorded input image (when it still exists)
        with the depth map kept beside the picture."""
        self.settings_reader.read(path, self.params_panel.params(), lambda found: self._picture_taken(path, found),
                                  lambda error: self._settings_failed(path, error))

    def _picture_taken(self, path: str | Path, found: PictureSettings) -> None:
        notes = self._apply_settings(found)
        self.generate_dock.raise_()  # where the settings went
        source = (found.record or {}).get("input", {}).get("path")
        depth_file = depth_path_for(path)
        if not source or not Path(source).is_file():
            if found.record is not None:
                notes.append(f"Its input image ({source or 'a pasted picture'}) is gone: the current image stays.")
            self.notice.show_message(f"Settings taken from {Path(path).name} ({found.tool}).", " ".join(notes), "info")
            self.sig_settings_taken.emit(str(path), True)
            return
        loaded = self.attempt(load_image, source)
        if loaded is None:
            self.sig_settings_taken.emit(str(path), False)
            return
        self.set_image(loaded, Path(source).name, source, estimate=not depth_file.is_file(),
                       depth_settings=found.params.depth_settings)
        if depth_file.is_file():
            depth = self.attempt(depth_maps.load_depth, depth_file, loaded.image.size, True)
            if depth is None:
                self.estimate_depth()
                self.sig_settings_taken.emit(str(path), False)
                return
            self.set_depth(depth[0], f"Load {depth_file.name}", origin=DepthOrigin.loaded(depth_file))
        self.notice.show_message(f"Settings, input image and depth map taken from {Path(path).name}.", " ".join(notes),
                                 "info")
        self.sig_settings_taken.emit(str(path), True)

    def _settings_failed(self, path: str | Path, error: D2IError) -> None:
        self.notice.show_error(error)
        self.sig_settings_taken.emit(str(path), False)

    def _apply_settings(self, found: PictureSettings) -> list[str]:
        """Put a picture's settings and LoRAs into the panels; the notes about what could not be taken over."""
        params, notes = found.params, list(found.notes)
        self.params_panel.set_params(params)
        if found.record is not None:  # other tools' pictures say nothing of a depth estimator
            self.depth_panel.set_depth_settings(params.depth_settings)
        if params.seed != self.params_panel.seed.value():
            notes.append(f"Seed {params.seed} is larger than the seed box holds; it is set to random.")
        missing = self.library_panel.select_loras(params.loras)
        if missing:
            notes.append("Not in the library: " + ", ".join(missing) + ".")
        return notes

    def open_dropped(self, paths: list[str]) -> None:
        """Open the first dropped file as the image; when it carries settings, offer them in one click (also when
        it cannot be the image, as a thumbnail-sized picture)."""
        path = paths[0]
        opened = self.open_image(path)

        def offer(found: PictureSettings) -> None:
            if opened and Path(self.session.image_path or "") != Path(path):
                return  # another image came meanwhile
            could_not = "" if opened else " could not be opened as the image, but it"
            self.notice.show_message(f"{Path(path).name}{could_not} carries the settings it was made with ({found.tool}).",
                                     "Use them in the Generate panel with one click.", "info")
            self.notice.set_action("Use its settings", lambda: self.use_settings_from(path))

        self.settings_reader.read(path, self.params_panel.params(), offer, lambda _error: None)  # none: just an image

    # -- depth -----------------------------------------------------------------------
    def estimate_depth(self) -> None:
        image = self.session.image
        if image is None:
            return
        if self.model is None:
            self._depth_wanted = True  # estimated as soon as the model is ready
            return
        self._depth_wanted = False
        self.sig_request_depth.emit(self.session.add_job("Estimating depth…").id, self.session.image_key, image.image,
                                    self.depth_panel.depth_settings())

    def _on_depth_ready(self, key: str, estimate: DepthEstimate, settings: DepthSettings) -> None:
        if key == self.session.image_key:
            replaces_edits = self.session.depth.is_edited()
            self.set_depth(estimate.depth, "Estimate depth", estimate_key=key, origin=DepthOrigin.estimated(settings))
            notes = "; ".join(estimate.notes)
            notes = notes[:1].upper() + notes[1:] + "." if notes else ""
            if replaces_edits:
                self.notice.show_message("The depth is back to this image's estimate.",
                                         f"Undo (Ctrl+Z) brings your edits back. {notes}".strip(), "info")
            elif notes:
                self.notice.show_message(self.tr("Depth estimated with {what}.").format(what=settings.describe()),
                                         notes, "info")

    def set_depth(self, depth: np.ndarray, text: str = "Set depth", estimate_key: str | None = None,
                  origin: DepthOrigin | None = None) -> None:
        """Make `depth` the map to edit and generate with; replacing a map of the same size is undoable."""
        self.session.depth.load(depth, text, estimate_key, origin)

    def _on_depth_changed(self, box) -> None:
        if box is None:
            self._update_actions()

    def _need_image(self) -> bool:
        if self.session.image is None:
            self.notice.show_message("Open a photo first.", "A depth map is loaded for the photo on the canvas.")
        return self.session.image is not None

    def load_depth_dialog(self) -> None:
        if self._need_image():
            path, _ = QFileDialog.getOpenFileName(self, "Load a depth map", "", DEPTH_FILTER)
            if path:
                self.load_depth_file(path)

    def load_depth_file(self, path: str | Path) -> bool:
        if not self._need_image():
            return False
        loaded = self.attempt(depth_maps.load_depth, path, self.session.image.image.size,
                              self.depth_tools.bright_is_near())
        if loaded is None:
            return False
        depth, notes = loaded
        self._depth_wanted = False
        self.set_depth(depth, f"Load {Path(path).name}", origin=DepthOrigin.loaded(path))
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
        saved = self.attempt(save, self.depth, path)
        if saved is not None:
            self.statusBar().showMessage(f"Depth map saved to {saved}", 8000)
        return saved

    # -- generation ------------------------------------------------------------------
    def generate(self) -> None:
        """Queue the panel's settings, batch count times with successive seeds; they run when the worker is free."""
        if self.session.image is None:
            self.notice.show_message("Open a photo first.", "Generation repaints a photo; open one with Ctrl+O.")
            return
        if self.model is None:
            self.notice.show_message("No model is loaded yet.", "Wait for the model to load, or choose one in the Model menu.")
            return
        params = self.attempt(self._panel_params)
        if params is None:
            return
        if self.notice.level == "error":
            self.notice.hide()
        self.settings.setValue("params/last", params.to_json())
        # A copy: the worker must not see strokes painted after Generate.
        depth = None if self.depth is None else self.depth.copy()
        rest = (self.session.image.image, depth, Output(self.output_dir(), self.session.image_path),
                self.mask_panel.levels(), self.session.depth.origin())
        count = self.params_panel.batch.value()
        first = params.seed if count == 1 else params.resolved_seed()
        for index in range(count):
            job_params = params if count == 1 else replace(params, seed=(first + index) % (MAX_SEED + 1))
            self.session.enqueue(job_text(job_params), (job_params, *rest))
        if self.session.busy:
            self.statusBar().showMessage(f"Queued {count} job(s): they run when the current one ends.", 5000)
        self._dispatch()

    def repaint_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Repaint every image of a folder",
                                                  self.settings.value("paths/repaint_folder", ""))
        if folder:
            self.settings.setValue("paths/repaint_folder", folder)
            self.repaint_folder(folder)

    def repaint_folder(self, folder: str | Path) -> None:
        """Queue one generation per image of `folder` with the Generate panel's settings, as `d2i batch` does: the
        depth map beside an image (NAME.depth.png or .npy) is used for it, else one is estimated. Images whose
        pictures the output folder already holds are skipped. The folder is planned (its images hashed) in the
        background and sig_folder_queued tells how many jobs were queued. Each job reads its files when it starts;
        one that cannot be read fails alone."""
        if self.model is None:
            self.notice.show_message("No model is loaded yet.", "Wait for the model to load, or choose one in the Model menu.")
            self.sig_folder_queued.emit(0)
            return
        params = self.attempt(self._panel_params)
        if params is None:
            self.sig_folder_queued.emit(0)
            return
        self.settings.setValue("params/last", params.to_json())
        folder, out_dir, bright_is_near = Path(folder), self.output_dir(), self.depth_tools.bright_is_near()

        def failed(error: D2IError) -> None:
            self.notice.show_message(error.message, error.hint)
            self.sig_folder_queued.emit(0)

        self.statusBar().showMessage(self.tr("Looking through {folder}…").format(folder=folder.name))
        self.file_loader.run(lambda: plan(folder, out_dir, HashCache()),
                             lambda split: self._queue_folder(folder, out_dir, params, bright_is_near, *split), failed)

    def _queue_folder(self, folder: Path, out_dir: Path, params: GenerationParams, bright_is_near: bool | None,
                      todo: list[BatchItem], done: list[BatchItem]) -> None:
        for item in todo:
            self.session.enqueue(f"{item.image.name} · {job_text(params)}",
                                 (params, item, bright_is_near, Output(out_dir, str(item.image))))
        if done:
            self.notice.show_message(self.tr("Skipped {count} image(s) of {folder} already done in {out}.").format(
                count=len(done), folder=folder.name, out=out_dir),
                self.tr("Choose another output folder to make them again."), "info")
        self.statusBar().showMessage(self.tr("Queued {count} image(s) of {folder}.").format(
            count=len(todo), folder=folder.name), 8000)
        self._dispatch()
        self.sig_folder_queued.emit(len(todo))

    def _panel_params(self) -> GenerationParams:
        """The Generate panel's settings with the ticked LoRAs and the Depth panel's estimator, validated."""
        depth = self.depth_panel.depth_settings()
        params = replace(self.params_panel.params(), loras=self.library_panel.selected_loras(),
                         depth_estimator=depth.estimator, depth_fine_detail=depth.fine_detail).validated()
        # What the engine checks when the job runs (LoRAs ticked and tagged, unknown names), checked now instead.
        resolve_extras(params.prompt, params.negative_prompt, params.loras, self.library_panel.library)
        return params

    def _dispatch(self) -> None:
        """Send the first queued generation to the worker if it is free."""
        job = None if self.model is None else self.session.take_next()  # restored jobs wait for a model
        if job is None:
            return
        params = job.request[0]
        self.progress.setRange(0, params.denoising_steps)
        self._reset_progress("Starting…")
        request = self.sig_request_repaint_file if isinstance(job.request[1], BatchItem) else self.sig_request_generate
        request.emit(job.id, *job.request)

    def edit_queued(self, job_id: int) -> None:
        """Take a queued job out of the queue and put its settings into the Generate panel."""
        job = self.session.take_back(job_id)
        if job is not None:
            self.params_panel.set_params(job.request[0])
            self.depth_panel.set_depth_settings(job.request[0].depth_settings)
            self.params_panel.batch.setValue(1)
            self.statusBar().showMessage("The job's settings are in the Generate panel; Generate queues it again.", 8000)

    def cancel_all(self) -> None:
        """Empty the queue and stop the running job."""
        self.session.clear_queue()
        self.cancel()

    def export_mix(self, sources: tuple, path: str) -> None:
        """Have the worker save `sources` (LoRA name, weight) as one LoRA file at `path`."""
        self.sig_request_mix.emit(self.session.add_job("Exporting LoRA mix…", cancellable=False).id, sources, path)

    def reproduce_picture(self, path: str) -> None:
        """Have the worker make a gallery picture again from its record, into the output folder's `reproduced`."""
        out = self.output_dir() / "reproduced" / Path(path).name
        self.sig_request_reproduce.emit(self.session.add_job(f"Reproducing {Path(path).name}…").id, str(path), str(out))

    def _on_reproduced(self, path: str, outcome) -> None:
        self.notice.show_message(f"{Path(path).name}: {outcome.line()}", level="info" if outcome.identical else "warning")

    def insert_in_prompt(self, text: str) -> None:
        """Insert `text` (an embedding's token, trigger words) at the prompt's cursor, spaced from its neighbours."""
        edit = self.params_panel.prompt
        cursor = edit.textCursor()
        before = edit.toPlainText()[:cursor.position()]
        cursor.insertText((" " if before and not before[-1].isspace() else "") + text + " ")
        edit.setTextCursor(cursor)
        edit.setFocus()

    def cancel(self) -> None:
        """Stop the running job, and one sent to the worker that has not started yet (the queue stays)."""
        jobs = self.session.cancellable_jobs()
        if jobs:
            self.worker_thread.cancel(jobs)
            self.progress.setFormat("Cancelling…")

    def _reset_progress(self, text: str) -> None:
        self.progress.setValue(0)
        self.progress.setFormat(text)

    def _on_step(self, info: StepInfo) -> None:
        rate = info.step / info.elapsed if info.elapsed > 0 else 0.0
        left = (info.total - info.step) / rate if rate else 0.0
        self.progress.setFormat(f"Step {info.step}/{info.total} · {rate:.2f} it/s · {left:.0f} s left")
        self.progress.setRange(0, info.total)
        self.progress.setValue(info.step)
        if info.preview is not None and self._running_job_is_open():
            self.canvas.set_result(to_qimage(info.preview), preview=True)

    def _running_job_is_open(self) -> bool:
        """Whether the open photo is the running generation's input, so its previews belong beside it."""
        job = self.session.running
        source = job.request[1] if job is not None and job.request else None
        if isinstance(source, BatchItem):
            return self.session.image_path == str(source.image)
        return self.session.image is not None and source is self.session.image.image

    def _on_result(self, job_id: int, result: GenerationResult, image: Image.Image, depth: np.ndarray) -> None:
        if image_key(image) != self.session.image_key:  # made from another photo: never shown beside this one
            self._offer_result(job_id, result, image, depth)
            return
        self._take_result(job_id, result)

    def _take_result(self, job_id: int, result: GenerationResult) -> None:
        self.params_panel.remember_seed(result.seeds[0])
        self.results_list.clear()
        for picture, seed in zip(result.images, result.seeds):
            thumb = to_qimage(picture).scaled(72, 72, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
            QListWidgetItem(QIcon(QPixmap.fromImage(thumb)), str(seed), self.results_list)
        self.results_list.setVisible(len(result.images) > 1)
        self.session.set_result(result, job_id)
        self.progress.setFormat(self.tr("Done in {seconds:.1f} s · seed {seed}").format(
            seconds=result.seconds, seed=result.seeds[0]))
        if result.notes:
            self.notice.show_message(" ".join(result.notes), level="info")
        self.statusBar().showMessage(f"Generated {len(result.images)} image(s) in {result.seconds:.1f} s", 8000)

    def _offer_result(self, job_id: int, result: GenerationResult, image: Image.Image, depth: np.ndarray) -> None:
        """A result of another photo than the open one: saved, and offered in the notice bar, so that the open photo
        and its edits stay; the action opens the job's own input with its depth map and shows the result beside it."""
        job = self.session.running
        input_path = job.request[3].input_path if job is not None and job.id == job_id else None
        name = Path(input_path).name if input_path else self.tr("the pasted image")
        self._offered = {"job": job_id, "paths": []}

        def show() -> None:
            self.set_image(LoadedImage(image, image.size, ()), Path(input_path).name if input_path else
                           self.tr("pasted image"), input_path, estimate=False)
            self.set_depth(depth, self.tr("Depth of the result"), origin=result.depth_origin)
            self._take_result(job_id, result)
            self.session.set_saved(job_id, self._offered["paths"])

        self.progress.setFormat(self.tr("Done in {seconds:.1f} s · seed {seed}").format(
            seconds=result.seconds, seed=result.seeds[0]))
        self.notice.show_message(self.tr("The picture made from {name} is ready (seed {seed}).").format(
            name=name, seed=result.seeds[0]), self.tr("It is saved and in the gallery; the photo open now stays."),
            "info")
        self.notice.set_action(self.tr("Show it with its photo"), show)

    def _on_saved(self, job_id: int, paths: list[Path]) -> None:
        self.session.set_saved(job_id, paths)
        if self._offered.get("job") == job_id:
            self._offered["paths"] = list(paths)
        self.statusBar().showMessage(f"Saved {len(paths)} picture(s) in {paths[0].parent}", 8000)
        self.gallery_panel.refresh()

    def _show_result(self) -> None:
        current = self.session.current_result()
        if current is None:
            return
        self.canvas.set_result(to_qimage(current[0]))
        self.library_panel.set_current_result(current[0])
        self._update_actions()

    def _on_cancelled(self) -> None:
        self._reset_progress("Cancelled")
        if self.result is None:
            self.canvas.set_result(None)
        else:
            self._show_result()

    def _on_failed(self, message: str, hint: str) -> None:
        self.progress.setFormat("Failed")
        if self.model is None and self.model_label.text() == "Loading model…":
            self.model_label.setText("No model")
        self.notice.show_message(message, hint)

    def _offer_fix(self, fix) -> None:
        self.notice.set_action(fix.label, lambda: self.apply_performance(load_performance(self.settings).with_fix(fix)))

    def _on_jobs_changed(self) -> None:
        self._dispatch()
        status = self.session.status()
        if status:
            self.statusBar().showMessage(status)
        else:
            self.statusBar().clearMessage()
        self._update_actions()

    # -- saving ----------------------------------------------------------------------
    def export_result(self, path: str | Path | None = None) -> Path | None:
        """A copy of the chosen picture (record included) at `path`, or where the user chooses; never overwrites."""
        current = self.session.current_result()
        if current is None:
            return None
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Save as / Export", str(self.output_dir()), "PNG (*.png)",
                                                  options=QFileDialog.Option.DontConfirmOverwrite)
            if not path:
                return None
        target, source = Path(path).with_suffix(".png"), self.session.current_path()
        if source is not None and source.is_file():
            saved = self.attempt(save_new_file, lambda file: file.write(source.read_bytes()), [target])
        else:  # not written yet, or gone from the output folder: the picture with its settings text
            saved = self.attempt(save_png, current[0], target, current[2])
        if saved is not None:
            self.statusBar().showMessage(f"Saved {saved}", 8000)
        return saved

    # -- state -----------------------------------------------------------------------
    def _update_actions(self) -> None:
        ready = self.session.can_generate() and not self.busy
        self.generate_button.setEnabled(self.session.can_generate())  # while busy, Generate queues
        self.generate_button.setText("Add to queue" if self.busy else "Generate")
        self.generate_action.setEnabled(self.session.can_generate())
        self.cancel_button.setEnabled(self.busy)
        self.cancel_action.setEnabled(self.busy)
        self.cancel_all_action.setEnabled(self.busy or bool(self.session.queue))
        self.depth_panel.set_state(can_estimate=ready, has_depth=self.depth is not None)
        has_result = self.result is not None
        for widget in (self.save_button, self.save_action):
            widget.setEnabled(has_result)
        self.save_depth_action.setEnabled(self.depth is not None)

    def closeEvent(self, event):
        if self.session.queue and not self._quit_confirmed:
            waiting = len(self.session.queue)
            answer = QMessageBox.question(self, self.tr("Quit with jobs in the queue?"), self.tr(
                "{count} generation(s) wait in the queue; the app offers to run them at its next start. "
                "Quit anyway?").format(count=waiting))
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                return
            self._quit_confirmed = True  # asked once
        self.set_canvas_only(False)  # the layout is remembered with its panels shown
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        if self.models_dialog is not None and not self.models_dialog.shutdown():
            log.warning("download did not stop within 3 s")
        self.gallery_panel.shutdown()
        self.settings_reader.shutdown()
        self.file_loader.shutdown()
        self.queue_store.stop()  # before the running job ends and the next would be taken off the queue
        if not self.worker_thread.stop(timeout_ms=2000):
            log.warning("worker did not stop within 2 s")
        event.accept()
