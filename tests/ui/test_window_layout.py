"""The window as artists use it: fits small screens, docks, canvas only, compare, themes, keys, notices."""

import numpy as np
import pytest
from PySide6.QtCore import QPointF, QRect, Qt
from PySide6.QtGui import QAction, QPalette
from PySide6.QtWidgets import QDockWidget

from d2i_desktop.core.speed.acceleration import available_devices
from d2i_desktop.ui.canvas import VIEW_COMPARE, VIEW_SIDE_BY_SIDE, DepthPicture
from d2i_desktop.ui.main_window import FRAME_ALLOWANCE, MainWindow, first_geometry
from d2i_desktop.ui.settings_dialog import NO_CUDA_HERE, PerformancePage
from d2i_desktop.ui.worker import WorkerThread
from d2i_desktop.core.generation.engine import Engine


@pytest.fixture
def photo_file(make_photo):
    return make_photo(80, 64, "harbour.png", seed=5)


def open_and_generate(qtbot, window, path):
    assert window.open_image(path)
    qtbot.waitUntil(lambda: window.depth is not None and not window.busy, timeout=30_000)
    window.params_panel.steps.setValue(2)
    window.generate()
    qtbot.waitUntil(lambda: window.result is not None and not window.busy, timeout=60_000)


@pytest.mark.parametrize("width, height", [(1280, 720), (1366, 768), (1920, 1080)])
def test_the_first_window_fits_the_screen_with_its_frame(width, height):
    available = QRect(0, 0, width, height)
    placed = first_geometry(available)
    assert available.contains(placed.adjusted(0, -FRAME_ALLOWANCE.height() + FRAME_ALLOWANCE.width(), 0, 0))
    assert placed.width() >= min(width - 16, 1600) * 0.95


def test_every_panel_fits_a_1280x720_screen(window):
    needed = window.minimumSizeHint()
    assert needed.width() <= 1280 - FRAME_ALLOWANCE.width() and needed.height() <= 720 - FRAME_ALLOWANCE.height()
    assert window.statusBar().isVisible()


def test_panels_are_docks_that_can_float_close_and_tab(window):
    for dock in window.docks:
        features = dock.features()
        assert features & QDockWidget.DockWidgetFeature.DockWidgetFloatable
        assert features & QDockWidget.DockWidgetFeature.DockWidgetClosable
    assert window.library_dock in window.tabifiedDockWidgets(window.depth_tools_dock)


def test_tab_on_the_canvas_shows_the_picture_alone_and_back(qtbot, window):
    window.canvas.setFocus()
    qtbot.waitUntil(window.canvas.hasFocus)
    width = window.canvas.width()
    qtbot.keyClick(window.canvas, Qt.Key.Key_Tab)
    assert not any(dock.isVisible() for dock in window.docks) and not window.toolbar.isVisible()
    qtbot.waitUntil(lambda: window.canvas.width() > width)
    qtbot.keyClick(window.canvas, Qt.Key.Key_Tab)
    assert window.generate_dock.isVisible() and window.toolbar.isVisible()


def test_the_layout_is_remembered(qtbot, window, settings):
    window.library_dock.close()
    window.close()
    again = MainWindow(WorkerThread(Engine(device="cpu")), settings)
    qtbot.addWidget(again)
    again.show()
    assert not again.library_dock.isVisible() and again.generate_dock.isVisible()
    again.close()


def test_compare_is_one_key_away_and_its_split_follows_the_mouse(qtbot, window, photo_file):
    open_and_generate(qtbot, window, photo_file)
    assert window.canvas.view_mode == VIEW_SIDE_BY_SIDE
    window.compare_action.trigger()
    canvas = window.canvas
    assert canvas.view_mode == VIEW_COMPARE and window.depth_panel.view_combo.currentText() == VIEW_COMPARE
    assert [kind for kind, _ in canvas._panels()] == ["compare"]
    split_x = canvas._split_x()
    qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, pos=QPointF(split_x, canvas.height() / 2).toPoint())
    qtbot.mouseMove(canvas, QPointF(split_x - 40, canvas.height() / 2).toPoint())
    qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton)
    assert canvas.split < 0.5
    window.compare_action.trigger()
    assert canvas.view_mode == VIEW_SIDE_BY_SIDE


def test_opening_an_image_resets_the_progress(qtbot, window, photo_file, make_photo):
    open_and_generate(qtbot, window, photo_file)
    assert window.progress.value() > 0 and window.progress.format().startswith("Done")
    assert window.open_image(make_photo(64, 64, "other.png", seed=2))
    assert window.progress.value() == 0 and window.progress.format() == "Ready"


def test_the_demo_notice_stays_while_other_notices_come_and_go(window):
    window.notice.show_message("Something else happened.", "A hint.")
    window.notice.hide()
    assert "demo model (random weights)" in window.demo_notice.message()


def test_choosing_the_loaded_model_does_not_reload_it(window, qtbot):
    requests = []
    window.sig_request_model.connect(lambda *args: requests.append(args))
    window.load_model(window.model.source)
    assert requests == [] and window.model is not None and not window.busy


def test_the_models_dialog_from_the_menu_is_models_and_marks_the_model_in_use(window):
    dialog = window.show_models_dialog(first_run=True)
    assert dialog.windowTitle() == "Welcome to d2i-desktop"
    dialog.close()
    dialog = window.show_models_dialog()
    assert dialog.windowTitle() == "Models" and dialog.current_source == window.model.source
    dialog.close()


def test_opacity_slider_shows_its_value(window):
    window.depth_panel.opacity_slider.setValue(35)
    assert window.depth_panel.opacity_label.text() == "35%"


def test_the_shortcut_sheet_lists_the_keys(window):
    sheet = window.show_shortcuts()
    cells = {sheet.table.item(row, 1).text() + " " + sheet.table.item(row, 2).text()
             for row in range(sheet.table.rowCount())}
    assert any("F11" in cell and "Canvas only" in cell for cell in cells)
    assert any(cell.startswith("C Compare") for cell in cells) and any("Generate" in cell for cell in cells)
    sheet.close()


def test_dark_theme_is_offered_and_remembered(qtbot, window, settings):
    def lightness():
        return window.palette().color(QPalette.ColorRole.Window).lightness()

    window.set_theme("dark")
    qtbot.waitUntil(lambda: lightness() < 80)
    assert settings.value("ui/theme") == "dark"
    window.set_theme("light")
    qtbot.waitUntil(lambda: lightness() > 160)


def test_options_that_need_cuda_are_grouped_and_explained(qtbot):
    page = PerformancePage()
    qtbot.addWidget(page)
    if "cuda" in available_devices():
        page.device_combo.setCurrentIndex(page.device_combo.findData("cpu"))
    assert not page.cuda_box.isEnabled() and not page.compile_combo.isEnabled()
    assert page.cuda_note.text() in (NO_CUDA_HERE, "These options apply to an NVIDIA GPU (CUDA) only; "
                                                   "the device above is not one.")


def test_a_stroke_keeps_the_colour_scale_and_a_whole_map_edit_refits_it():
    depth = np.linspace(0, 1, 32 * 40, dtype=np.float32).reshape(32, 40)
    picture = DepthPicture(depth, "viridis")
    untouched = picture.rgb[0:4, 0:4].copy()
    depth[10:14, 10:14] = 3.0  # a raise past the nearest depth
    picture.refit((10, 10, 14, 14))
    assert (picture.low, picture.high) == (0.0, 1.0)
    np.testing.assert_array_equal(picture.rgb[0:4, 0:4], untouched)  # the rest is not re-tinted
    picture.refit(None)
    assert picture.high == 3.0


def test_on_a_laptop_the_picture_gets_most_of_the_width_and_a_wide_screen_adds_a_column(qtbot, window):
    window.resize(1350, 720)
    window.reset_layout()
    qtbot.waitUntil(lambda: window.canvas.width() > 0.65 * window.width())
    assert window.depth_tools_dock in window.tabifiedDockWidgets(window.generate_dock)
    window.resize(1680, 1000)
    window.findChild(QAction, "resetLayoutAction").trigger()
    qtbot.waitUntil(lambda: window.dockWidgetArea(window.depth_tools_dock) == Qt.DockWidgetArea.LeftDockWidgetArea)
    assert window.depth_tools_dock.isVisible() and window.generate_dock.isVisible()
    qtbot.waitUntil(lambda: window.canvas.width() > 0.5 * window.width())  # once the docks have settled
