"""Repaint a region: a mask painted on the canvas, kept in the session, sent with the job, saved and loaded."""

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QPushButton, QToolButton

from d2i_desktop.core.history.record import mask_path_for, read_mask_levels
from d2i_desktop.core.generation.masks import save_mask
from d2i_desktop.ui.canvas import TOOL_BRUSH, TOOL_MASK, TOOL_PAN

WIDTH, HEIGHT = 80, 64


@pytest.fixture
def photo_file(make_photo):
    return make_photo(WIDTH, HEIGHT, "quay.png", seed=3)


@pytest.fixture
def opened(qtbot, window, photo_file):
    with qtbot.waitSignal(window.worker_thread.worker.sig_depth_ready, timeout=30_000):
        assert window.open_image(photo_file)
    qtbot.waitUntil(lambda: window.depth is not None and not window.busy, timeout=10_000)
    window.mask_dock.raise_()
    return window


def on_canvas(window, x, y) -> QPoint:
    """The widget point over image pixel (x, y) of the input panel."""
    canvas = window.canvas
    return QPoint(round(canvas.offset.x() + (x + 0.5) * canvas.zoom), round(canvas.offset.y() + (y + 0.5) * canvas.zoom))


def press(qtbot, window, name):
    qtbot.mouseClick(window.findChild(QPushButton, name), Qt.MouseButton.LeftButton)


def keys(qtbot, window, key, modifiers=Qt.KeyboardModifier.NoModifier):
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=2000)
    qtbot.keyClick(window.canvas, key, modifiers)


CTRL, SHIFT = Qt.KeyboardModifier.ControlModifier, Qt.KeyboardModifier.ShiftModifier


def drag(qtbot, window, points):
    canvas = window.canvas
    qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, pos=on_canvas(window, *points[0]))
    for point in points[1:]:
        qtbot.mouseMove(canvas, on_canvas(window, *point))
    qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=on_canvas(window, *points[-1]))


def test_brush_eraser_rectangle_invert_and_clear(qtbot, opened):
    window, panel = opened, opened.mask_panel
    assert panel.levels() is None and window.canvas.mask_image is None
    panel.size.setValue(8)
    qtbot.mouseClick(window.findChild(type(panel.invert_button), "maskBrushButton"), Qt.MouseButton.LeftButton)
    drag(qtbot, window, [(10, 10), (30, 10)])
    mask = window.session.mask
    assert mask.shape == (HEIGHT, WIDTH) and mask.dtype == np.float32
    assert mask[10, 10:31].all() and mask[10, 20] == 1 and not mask[20:, :].any() and not mask[:, 40:].any()
    assert window.canvas.mask_image is not None  # the red wash over the input

    qtbot.mouseClick(window.findChild(type(panel.invert_button), "maskEraserButton"), Qt.MouseButton.LeftButton)
    drag(qtbot, window, [(20, 10)])
    assert mask[10, 10] == 1 and mask[10, 20] == 0

    qtbot.mouseClick(window.findChild(type(panel.invert_button), "maskRectangleButton"), Qt.MouseButton.LeftButton)
    drag(qtbot, window, [(40, 30), (50, 40)])
    assert window.canvas.mask_rect is None
    assert mask[30:40, 40:50].all() and not mask[41:, :].any() and not mask[:, 51:].any()

    painted = mask.copy()
    qtbot.mouseClick(panel.invert_button, Qt.MouseButton.LeftButton)
    np.testing.assert_array_equal(window.session.mask, 1 - painted)
    qtbot.mouseClick(panel.clear_button, Qt.MouseButton.LeftButton)
    assert window.session.mask is None and panel.levels() is None and window.canvas.mask_image is None


def test_masked_generation_keeps_the_rest_of_the_photo_and_a_new_photo_drops_the_mask(qtbot, opened, photo_file, tmp_path):
    window = opened
    mask = np.zeros((HEIGHT, WIDTH), dtype=np.float32)
    mask[8:24, 16:40] = 1
    window.session.mask = mask
    window.mask_panel.feather.setValue(0)
    window.params_panel.prompt.setPlainText("a red door")
    window.params_panel.steps.setValue(3)
    window.params_panel.seed.setValue(5)
    previous = window.result
    window.generate()
    qtbot.waitUntil(lambda: window.result is not previous and not window.busy, timeout=60_000)
    qtbot.waitUntil(lambda: window.session.current_path() is not None, timeout=10_000)
    picture = np.asarray(window.result.images[0].convert("RGB"))
    photo = np.asarray(Image.open(photo_file).convert("RGB"))
    keep = mask == 0
    np.testing.assert_array_equal(picture[keep], photo[keep])
    assert not np.array_equal(picture[~keep], photo[~keep])
    np.testing.assert_array_equal(read_mask_levels(mask_path_for(window.session.current_path())), mask * 255)

    with qtbot.waitSignal(window.worker_thread.worker.sig_depth_ready, timeout=30_000):
        assert window.open_image(photo_file)
    assert window.session.mask is None and window.canvas.mask_image is None


def test_masks_save_and_load_as_png_and_bad_ones_get_a_notice(opened, tmp_path):
    window, panel = opened, opened.mask_panel
    mask = np.zeros((HEIGHT, WIDTH), dtype=np.float32)
    mask[:, : WIDTH // 2] = 1
    window.session.mask = mask
    saved = panel.save_file(tmp_path / "half.png")
    assert panel.save_file(saved) is None and "half.png" in window.notice.message()  # never overwritten
    panel.clear()
    assert panel.load_file(saved)
    np.testing.assert_array_equal(window.session.mask, mask)

    save_mask(np.ones((HEIGHT * 2, WIDTH * 2), dtype=np.float32), tmp_path / "big.png")
    assert panel.load_file(tmp_path / "big.png")
    assert window.session.mask.shape == (HEIGHT, WIDTH) and window.notice.level == "info"
    assert "Resized the mask" in window.notice.message()

    Image.new("L", (WIDTH, HEIGHT), 0).save(tmp_path / "black.png")
    assert not panel.load_file(tmp_path / "black.png")
    assert window.notice.level == "error" and "empty mask" in window.notice.message()
    assert window.session.mask.shape == (HEIGHT, WIDTH)  # the previous mask stays


def test_mask_strokes_invert_clear_and_load_undo_and_redo_with_the_keys(qtbot, opened, photo_file, tmp_path):
    window, panel = opened, opened.mask_panel
    loaded = np.zeros((HEIGHT, WIDTH), dtype=np.float32)
    loaded[:, : WIDTH // 4] = 1
    save_mask(loaded, tmp_path / "quarter.png")
    panel.size.setValue(8)
    press(qtbot, window, "maskBrushButton")
    states = [np.zeros((HEIGHT, WIDTH), dtype=np.float32)]
    for row in (10, 40):
        drag(qtbot, window, [(10, row), (30, row)])
        states.append(window.session.mask.copy())
    assert panel.undo_action.text() == "Undo mask brush"
    press(qtbot, window, "maskEraserButton")
    drag(qtbot, window, [(20, 10)])
    states.append(window.session.mask.copy())
    panel.invert()
    states.append(window.session.mask.copy())
    panel.clear()
    states.append(states[0])
    assert panel.load_file(tmp_path / "quarter.png")
    states.append(loaded)
    assert all(not np.array_equal(a, b) for a, b in zip(states, states[1:]))  # each step changed the mask

    def shown():
        return np.zeros((HEIGHT, WIDTH), dtype=np.float32) if window.session.mask is None else window.session.mask

    for state in reversed(states[:-1]):
        keys(qtbot, window, Qt.Key.Key_Z, CTRL)
        np.testing.assert_array_equal(shown(), state)
    assert not panel.undo_action.isEnabled() and panel.levels() is None
    for state in states[1:]:
        keys(qtbot, window, Qt.Key.Key_Z, CTRL | SHIFT)
        np.testing.assert_array_equal(shown(), state)
        assert (window.canvas.mask_image is None) == (not state.any())
    assert not panel.redo_action.isEnabled() and panel.undo_action.text() == "Undo load mask quarter.png"

    with qtbot.waitSignal(window.worker_thread.worker.sig_depth_ready, timeout=30_000):
        assert window.open_image(photo_file)
    assert window.session.mask_history.count() == 0  # another photo: its mask starts without a history


def edit_menu_undo(window):
    """The Undo item the Edit menu shows."""
    menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Edit")
    [undo] = [a for a in menu.actions() if a.isVisible() and a.text().startswith("Undo")]
    return undo


def test_undo_follows_the_tool_on_the_canvas_depth_or_mask(qtbot, opened):
    window, panel = opened, opened.mask_panel
    press(qtbot, window, "maskBrushButton")
    drag(qtbot, window, [(10, 10), (30, 10)])
    painted = window.session.mask.copy()
    window.depth_tools.set_tool("raise")
    depth = window.depth.copy()
    drag(qtbot, window, [(40, 30), (60, 30)])
    raised = window.depth.copy()
    assert not np.array_equal(raised, depth)

    assert edit_menu_undo(window) is window.depth_tools.undo_action
    keys(qtbot, window, Qt.Key.Key_Z, CTRL)
    np.testing.assert_array_equal(window.depth, depth)
    np.testing.assert_array_equal(window.session.mask, painted)

    press(qtbot, window, "maskEraserButton")
    assert edit_menu_undo(window) is panel.undo_action
    keys(qtbot, window, Qt.Key.Key_Z, CTRL)
    assert panel.levels() is None
    np.testing.assert_array_equal(window.depth, depth)
    keys(qtbot, window, Qt.Key.Key_Z, CTRL | SHIFT)
    np.testing.assert_array_equal(window.session.mask, painted)
    np.testing.assert_array_equal(window.depth, depth)

    window.depth_tools.set_tool("raise")
    keys(qtbot, window, Qt.Key.Key_Z, CTRL | SHIFT)
    np.testing.assert_array_equal(window.depth, raised)
    np.testing.assert_array_equal(window.session.mask, painted)


def test_brackets_resize_the_mask_brush_and_eraser_and_the_depth_brush_otherwise(qtbot, opened):
    window, panel, depth_size = opened, opened.mask_panel, opened.depth_tools.size_slider
    panel.size.setValue(40)
    depth_size.setValue(30)
    press(qtbot, window, "maskBrushButton")
    keys(qtbot, window, Qt.Key.Key_BracketRight)
    assert panel.size.value() == 50 and window.canvas.brush_size == 50
    press(qtbot, window, "maskEraserButton")
    keys(qtbot, window, Qt.Key.Key_BracketLeft)
    assert panel.size.value() == 40 and window.canvas.brush_size == 40
    press(qtbot, window, "maskRectangleButton")  # no brush to resize
    keys(qtbot, window, Qt.Key.Key_BracketRight)
    assert panel.size.value() == 40 and depth_size.value() == 30

    window.depth_tools.set_tool("smooth")
    keys(qtbot, window, Qt.Key.Key_BracketLeft)
    assert depth_size.value() == 24 and panel.size.value() == 40 and window.canvas.brush_size == 24


def test_mask_and_depth_tool_buttons_unpress_when_the_other_takes_the_canvas(qtbot, opened):
    window, tools = opened, opened.depth_tools
    brush, eraser = (window.findChild(QPushButton, name) for name in ("maskBrushButton", "maskEraserButton"))
    hand, raise_ = (window.findChild(QToolButton, name) for name in ("toolHandButton", "toolRaiseButton"))
    assert hand.isChecked()
    qtbot.mouseClick(brush, Qt.MouseButton.LeftButton)
    assert window.canvas.tool == TOOL_MASK and tools.tool_group.checkedAction() is None and not hand.isChecked()
    qtbot.mouseClick(eraser, Qt.MouseButton.LeftButton)  # one mask tool at a time
    assert eraser.isChecked() and not brush.isChecked() and window.mask_panel.mode == "erase"
    qtbot.mouseClick(raise_, Qt.MouseButton.LeftButton)
    assert window.canvas.tool == TOOL_BRUSH and raise_.isChecked() and not brush.isChecked()
    qtbot.mouseClick(eraser, Qt.MouseButton.LeftButton)
    assert eraser.isChecked() and not raise_.isChecked() and tools.tool_group.checkedAction() is None
    keys(qtbot, window, Qt.Key.Key_R)  # a depth tool's key takes the canvas too
    assert window.canvas.tool == TOOL_BRUSH and raise_.isChecked() and not eraser.isChecked()
    qtbot.mouseClick(eraser, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(eraser, Qt.MouseButton.LeftButton)  # no mask tool left pressed: the canvas pans
    assert window.canvas.tool == TOOL_PAN and hand.isChecked()
