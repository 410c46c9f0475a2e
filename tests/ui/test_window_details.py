"""Small things in the window an artist trips over: Esc in a text field, the wheel over panels, readable numbers,
notices that expire, worded buttons, the depth legend beside the photo, overlay and mask settings kept."""

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPoint, QPointF, QSettings, Qt
from PySide6.QtGui import QImage, QWheelEvent
from PySide6.QtWidgets import QAbstractButton, QApplication, QDoubleSpinBox, QLabel, QScrollArea, QSlider, QVBoxLayout, QWidget

from d2i_desktop.core.depth import maps as depth_maps
from d2i_desktop.core.generation.engine import Engine
from d2i_desktop.session import DepthDocument
from d2i_desktop.ui.canvas import Canvas, LEGEND_SIZE
from d2i_desktop.ui.depth_tools import DepthToolsPanel
from d2i_desktop.ui.main_window import MainWindow
from d2i_desktop.ui.notice_bar import NoticeBar
from d2i_desktop.ui.wheel_guard import install_wheel_guard
from d2i_desktop.ui.worker import WorkerThread


@pytest.fixture
def photo_file(make_photo):
    return make_photo(80, 64, "harbour.png", seed=11)


def wheel(widget: QWidget, steps: int = -1) -> None:
    """One real wheel turn over the middle of `widget`, delivered as Qt delivers it (to parents when ignored)."""
    centre = QPointF(widget.rect().center())
    event = QWheelEvent(centre, QPointF(widget.mapToGlobal(centre.toPoint())), QPoint(), QPoint(0, 120 * steps),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(widget, event)


# -- 1. Esc --------------------------------------------------------------------------------
def test_esc_in_a_text_field_does_not_cancel_but_on_the_canvas_it_does(qtbot, window, photo_file, open_with_depth):
    open_with_depth(photo_file)
    panel = window.params_panel
    panel.prompt.setPlainText("a lighthouse at dusk")
    panel.steps.setValue(400)
    panel.strength.setValue(1.0)
    seen = []
    window.worker_thread.worker.sig_step.connect(lambda info: seen.append(info.step))
    window.activateWindow()
    qtbot.waitActive(window)
    window.generate()
    qtbot.waitUntil(lambda: len(seen) >= 2, timeout=30_000)
    fields = [panel.prompt, panel.negative, window.gallery_panel.search]
    for field in fields:
        window.gallery_dock.raise_() if field is window.gallery_panel.search else window.generate_dock.raise_()
        field.setFocus()
        qtbot.waitUntil(field.hasFocus)
        qtbot.keyClick(field, Qt.Key.Key_Escape)
    qtbot.wait(200)
    assert window.busy and window.cancel_button.isEnabled(), "Esc in a text field cancelled the job"
    window.canvas.setFocus()
    qtbot.keyClick(window.canvas, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: not window.busy and window.progress.format() == "Cancelled", timeout=5_000)
    assert max(seen) < 400


# -- 2. the wheel ----------------------------------------------------------------------------
def test_wheel_scrolls_the_panel_and_changes_only_a_focused_value(qtbot):
    page = QWidget()
    layout = QVBoxLayout(page)
    spin = QDoubleSpinBox(minimum=0, maximum=100, value=50)
    slider = QSlider(Qt.Orientation.Horizontal, minimum=0, maximum=100, value=50)
    layout.addWidget(QLabel("top"))
    layout.addWidget(spin)
    layout.addWidget(slider)
    page.setMinimumHeight(2000)  # taller than the scroll area: there is something to scroll
    scroller = QScrollArea(widgetResizable=True)
    scroller.setWidget(page)
    scroller.resize(300, 200)
    install_wheel_guard(scroller)
    qtbot.addWidget(scroller)
    scroller.show()
    qtbot.waitExposed(scroller)
    bar = scroller.verticalScrollBar()

    wheel(spin)
    wheel(slider)
    assert (spin.value(), slider.value()) == (50, 50)
    assert bar.value() > 0, "the wheel over an unfocused value did not scroll the panel"
    assert spin.focusPolicy() == Qt.FocusPolicy.StrongFocus

    spin.setFocus()
    qtbot.waitUntil(spin.hasFocus)
    scrolled = bar.value()
    wheel(spin, steps=1)
    assert spin.value() == 51 and bar.value() == scrolled


def test_value_widgets_made_later_are_guarded_too(qtbot):
    root = QWidget()
    QVBoxLayout(root)
    install_wheel_guard(root)
    qtbot.addWidget(root)
    later = QDoubleSpinBox(root, minimum=0, maximum=9, value=4)
    root.layout().addWidget(later)
    root.show()
    qtbot.waitExposed(root)
    assert later.focusPolicy() == Qt.FocusPolicy.StrongFocus
    wheel(later)
    assert later.value() == 4


def test_the_windows_panels_are_guarded(window):
    steps = window.params_panel.steps
    assert steps.focusPolicy() == Qt.FocusPolicy.StrongFocus
    window.canvas.setFocus()
    value = steps.value()
    wheel(steps)
    assert steps.value() == value


# -- 3. numbers --------------------------------------------------------------------------------
def test_the_flatten_target_is_a_plain_number(qtbot):
    canvas = Canvas()
    editor = DepthDocument()
    panel = DepthToolsPanel(editor, canvas)
    qtbot.addWidget(panel)
    qtbot.addWidget(canvas)
    depth = np.full((8, 8), 1.069e-05, dtype=np.float32)
    depth[0, 0], depth[7, 7] = 0, 2e-5
    editor.load(depth, "Load")
    editor.pick(QPointF(4, 4))
    text = panel.target_label.text()
    assert "e-" not in text and text.startswith("0.000")
    assert "53%" in text


# -- 4. notices ------------------------------------------------------------------------------------
@pytest.fixture
def bar(qtbot):
    made = NoticeBar()
    made.info_lifetime_ms = 150
    holder = QWidget()
    QVBoxLayout(holder).addWidget(made)
    holder.resize(400, 80)
    qtbot.addWidget(holder)
    holder.move(600, 600)  # away from the pointer
    holder.show()
    qtbot.waitExposed(holder)
    yield made  # while `holder` lives


def test_an_info_notice_expires_and_an_error_stays(qtbot, bar):
    bar.show_message("Saved the mix.", level="info")
    assert bar.isVisible()
    qtbot.waitUntil(lambda: not bar.isVisible(), timeout=2_000)
    bar.show_message("The file is damaged.", "Pick another file.", level="error")
    qtbot.wait(400)
    assert bar.isVisible() and "damaged" in bar.message()


def test_an_info_notice_stays_while_the_pointer_is_over_it(qtbot, bar):
    bar.show_message("Loaded the mask.", level="info")
    QApplication.sendEvent(bar, QEvent(QEvent.Type.Enter))
    qtbot.wait(400)
    assert bar.isVisible()
    QApplication.sendEvent(bar, QEvent(QEvent.Type.Leave))
    qtbot.waitUntil(lambda: not bar.isVisible(), timeout=2_000)


def test_an_info_notice_with_a_cure_stays_and_the_cross_dismisses(qtbot, bar):
    bar.show_message("The picture carries settings.", level="info")
    bar.set_action("Use them", lambda: None)
    qtbot.wait(400)
    assert bar.isVisible()
    assert bar.close_button.accessibleName()
    qtbot.mouseClick(bar.close_button, Qt.MouseButton.LeftButton)
    assert not bar.isVisible()


# -- 5. worded buttons ---------------------------------------------------------------------------
SYMBOLS = set("←→↑↓↶↷↺↻⟲⟳▲▼◀▶✕×+-<>")


def test_undo_and_redo_buttons_say_what_they_do(window):
    for name, word in (("undoDepthButton", "Undo"), ("redoDepthButton", "Redo"), ("undoMaskButton", "Undo"),
                       ("redoMaskButton", "Redo")):
        button = window.findChild(QWidget, name)
        assert button is not None, name
        assert button.text() == word and not button.icon().isNull()
        assert button.toolButtonStyle() == Qt.ToolButtonStyle.ToolButtonTextBesideIcon
        assert word in button.toolTip()


def test_no_panel_button_is_a_bare_symbol(window):
    for dock in window.docks:
        for button in dock.widget().findChildren(QAbstractButton):
            text = button.text().replace("&", "").strip()
            if text and all(char in SYMBOLS or char.isspace() for char in text):
                pytest.fail(f"{button.objectName() or button!r} says only {text!r}")


# -- 6. the legend ---------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [(900, 500), (500, 500), (400, 700)])
def test_the_depth_legend_stays_off_the_picture(qtbot, size):
    canvas = Canvas()
    canvas.resize(*size)
    qtbot.addWidget(canvas)
    canvas.show()
    qtbot.waitExposed(canvas)
    for width, height in ((160, 90), (90, 160), (100, 100)):  # wide, tall and square photos
        photo = QImage(width, height, QImage.Format.Format_RGB888)
        photo.fill(Qt.GlobalColor.white)
        canvas.set_input(photo)
        canvas.set_depth_map(np.random.default_rng(0).random((height, width), dtype=np.float32))
        legend, picture = canvas.legend_rect(), canvas.picture_rect()
        assert (legend.width(), legend.height()) == LEGEND_SIZE
        assert not legend.intersects(picture), (size, (width, height), legend, picture)
        assert canvas.rect().contains(legend.toRect())
        assert picture.width() > 0.5 * canvas.width() or picture.height() > 0.5 * canvas.height()


def test_the_legend_is_drawn_where_it_is_placed(qtbot):
    canvas = Canvas()
    canvas.resize(500, 500)
    qtbot.addWidget(canvas)
    photo = QImage(160, 90, QImage.Format.Format_RGB888)
    photo.fill(Qt.GlobalColor.white)
    canvas.set_input(photo)
    canvas.set_depth_map(np.tile(np.linspace(0, 1, 160, dtype=np.float32), (90, 1)))
    shot = canvas.grab().toImage()
    legend = canvas.legend_rect()
    near_end = depth_maps.colorize(np.ones((1, 1)), canvas.cmap)[0, 0]
    bar_end = shot.pixelColor(int(legend.right()) - 10, int(legend.top()) + 27)
    assert [bar_end.red(), bar_end.green(), bar_end.blue()] == pytest.approx([int(c) for c in near_end], abs=40)


# -- 7. overlay and mask settings ------------------------------------------------------------------
def test_overlay_colours_opacity_and_feather_come_back(qtbot, settings, demo_model_dir, tmp_path):
    settings.setValue("output/dir", str(tmp_path / "outputs"))

    def new_window() -> MainWindow:
        made = MainWindow(WorkerThread(Engine(device="cpu")), settings)
        qtbot.addWidget(made)
        return made

    first = new_window()
    first.depth_panel.colormap_combo.setCurrentText("magma")
    first.depth_panel.opacity_slider.setValue(73)
    first.depth_panel.overlay_mode_combo.setCurrentIndex(2)
    mode = first.depth_panel.overlay_mode_combo.currentText()
    first.mask_panel.feather.setValue(17)
    first.close()
    settings.sync()

    reread = QSettings(settings.fileName(), QSettings.Format.IniFormat)
    second = MainWindow(WorkerThread(Engine(device="cpu")), reread)
    qtbot.addWidget(second)
    panel = second.depth_panel
    assert (panel.colormap_combo.currentText(), panel.opacity_slider.value(), panel.overlay_mode_combo.currentText(),
            second.mask_panel.feather.value()) == ("magma", 73, mode, 17)
    assert (second.canvas.cmap, second.canvas.overlay_opacity, second.canvas.overlay_mode) == ("magma", 0.73, mode)
    second.close()


def test_unreadable_stored_overlay_settings_are_passed_over(qtbot, settings, tmp_path):
    settings.setValue("output/dir", str(tmp_path / "outputs"))
    for key, value in (("depth/colormap", "no-such-map"), ("depth/overlay_opacity", "lots"),
                       ("depth/overlay_mode", 3), ("mask/feather", "-4")):
        settings.setValue(key, value)
    window = MainWindow(WorkerThread(Engine(device="cpu")), settings)
    qtbot.addWidget(window)
    assert (window.depth_panel.colormap_combo.currentText(), window.depth_panel.opacity_slider.value(),
            window.mask_panel.feather.value()) == ("viridis", 50, 4)
    window.close()
