"""The depth workspace with qtbot: painting with real mouse events, undo/redo, overlays, tools, import/export,
and that generation receives the edited map. Real window, real worker thread, demo model."""

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

from d2i_desktop.core.depth.maps import normalize
from d2i_desktop.core.depth.edit import invert
from d2i_desktop.core.history.record import depth_levels, levels_to_depth
from d2i_desktop.ui.canvas import OVERLAY_BLEND, OVERLAY_SIDE, OVERLAY_SPLIT, VIEW_INPUT

LEFT, MIDDLE, NONE = Qt.MouseButton.LeftButton, Qt.MouseButton.MiddleButton, Qt.MouseButton.NoButton


@pytest.fixture
def photo_file(make_photo):
    return make_photo(96, 64, "street.png", seed=5)


@pytest.fixture
def ready(qtbot, window, photo_file):
    """The window with a photo open and its depth estimated."""
    with qtbot.waitSignal(window.worker_thread.worker.sig_depth_ready, timeout=30_000):
        assert window.open_image(photo_file)
    qtbot.waitUntil(lambda: window.depth is not None and not window.busy, timeout=10_000)
    return window


def widget_point(canvas, x, y, panel_x=0.0) -> QPointF:
    """Where depth-map pixel (x, y) lies on the canvas widget."""
    return canvas.offset + QPointF(panel_x + x, y) * canvas.zoom


def mouse(canvas, kind, at, button=LEFT, buttons=LEFT, modifiers=Qt.KeyboardModifier.NoModifier):
    QApplication.sendEvent(canvas, QMouseEvent(kind, at, canvas.mapToGlobal(at), button, buttons, modifiers))


def drag(canvas, points, button=LEFT, modifiers=Qt.KeyboardModifier.NoModifier):
    mouse(canvas, QEvent.Type.MouseButtonPress, points[0], button, button, modifiers)
    for at in points[1:]:
        mouse(canvas, QEvent.Type.MouseMove, at, NONE, button, modifiers)
    mouse(canvas, QEvent.Type.MouseButtonRelease, points[-1], button, NONE, modifiers)


def paint(window, kind, image_points, size=16, strength=100):
    tools = window.depth_tools
    tools.set_tool(kind)
    tools.size_slider.setValue(size)
    tools.strength_slider.setValue(strength)
    drag(window.canvas, [widget_point(window.canvas, x, y) for x, y in image_points])


def test_a_mouse_stroke_raises_the_depth_along_its_path_and_undo_redo_restore_it(qtbot, ready):
    window = ready
    original = window.depth.copy()
    paint(window, "raise", [(20, 32), (40, 32), (60, 32)])
    edited = window.depth.copy()
    raised = edited - original
    assert raised[32, 20:61].min() > 0  # the whole path, not only its ends
    assert (raised[:10] == 0).all() and (raised[:, 85:] == 0).all()  # nothing beyond the brush
    assert window.depth_editor.history.count() == 1  # one stroke, one command
    assert window.depth_tools.undo_action.text() == "Undo raise stroke"
    picture = window.canvas.depth_picture
    assert picture.depth is window.depth  # the canvas shows the edited map itself

    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=2000)
    qtbot.keyClick(window.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert np.array_equal(window.depth, original)
    qtbot.keyClick(window.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert np.array_equal(window.depth, edited)


def test_lower_smooth_and_each_stroke_is_its_own_undo_step(ready):
    window = ready
    states = [window.depth.copy()]
    for kind in ("lower", "smooth", "raise"):
        paint(window, kind, [(30, 20), (50, 40)], size=24)
        states.append(window.depth.copy())
    assert states[1][30, 40] < states[0][30, 40]
    for state in reversed(states[:-1]):
        window.depth_tools.undo_action.trigger()
        assert np.array_equal(window.depth, state)
    assert not window.depth_tools.undo_action.isEnabled()


def test_pan_needs_the_middle_button_or_space_while_a_brush_is_active(qtbot, ready):
    window, canvas = ready, ready.canvas
    window.depth_tools.set_tool("raise")
    original, offset = window.depth.copy(), QPointF(canvas.offset)
    start = widget_point(canvas, 40, 30)
    drag(canvas, [start, start + QPointF(25, 5)], button=MIDDLE)
    assert canvas.offset == offset + QPointF(25, 5)
    canvas.setFocus()
    qtbot.keyPress(canvas, Qt.Key.Key_Space)
    drag(canvas, [start, start + QPointF(-10, 0)])
    qtbot.keyRelease(canvas, Qt.Key.Key_Space)
    assert canvas.offset == offset + QPointF(15, 5)
    assert np.array_equal(window.depth, original)  # panning painted nothing
    window.depth_tools.size_slider.setValue(40)
    qtbot.keyClick(canvas, Qt.Key.Key_BracketRight)
    assert window.depth_tools.size_slider.value() == 50 and canvas.brush_size == 50
    qtbot.keyClick(canvas, Qt.Key.Key_BracketLeft)
    assert canvas.brush_size == 40


def test_alt_click_picks_the_depth_and_flatten_pulls_towards_it(ready):
    window, canvas = ready, ready.canvas
    window.set_depth(np.tile(np.linspace(0, 9.5, 96, dtype=np.float32), (64, 1)), "Ramp")
    window.depth_tools.set_tool("flatten")
    target = float(window.depth[10, 10])
    drag(canvas, [widget_point(canvas, 10.5, 10.5)], modifiers=Qt.KeyboardModifier.AltModifier)
    assert window.depth_editor.brush.target == target == 1.0
    assert "1.000  (11% of the way from far to near)" in window.depth_tools.target_label.text()
    assert window.depth_editor.history.count() == 1  # the ramp; picking is not an edit
    before = abs(window.depth[40, 70] - target)
    window.depth_tools.hardness_slider.setValue(100)
    paint(window, "flatten", [(70, 40)], size=9)
    assert abs(window.depth[40, 70] - target) < 1e-5 < before


def test_whole_map_tools_are_undoable_and_reset_returns_to_the_estimate(qtbot, ready):
    window = ready
    estimate = window.depth.copy()
    qtbot.mouseClick(window.depth_tools.invert_button, LEFT)
    np.testing.assert_allclose(window.depth, invert(estimate), atol=1e-5)
    window.depth_tools.gamma_spin.setValue(2.0)
    qtbot.mouseClick(window.depth_tools.levels_button, LEFT)
    qtbot.mouseClick(window.depth_tools.blur_button, LEFT)
    assert window.depth_editor.history.count() == 3
    qtbot.mouseClick(window.depth_tools.reset_button, LEFT)
    assert np.array_equal(window.depth, estimate)
    window.depth_tools.undo_action.trigger()  # the reset is undoable too
    assert not np.array_equal(window.depth, estimate)
    for _ in range(3):
        window.depth_tools.undo_action.trigger()
    assert np.array_equal(window.depth, estimate)


def test_bad_levels_show_a_notice_and_change_nothing(qtbot, ready):
    window = ready
    before = window.depth.copy()
    window.depth_tools.near_spin.setValue(0.4)
    window.depth_tools.far_spin.setValue(0.4)
    qtbot.mouseClick(window.depth_tools.levels_button, LEFT)
    assert "Levels need two different points" in window.notice.message()
    assert np.array_equal(window.depth, before)


def test_overlay_modes_change_what_the_canvas_shows(qtbot, ready):
    window, canvas = ready, ready.canvas
    pictures = {}
    for mode in (OVERLAY_BLEND, OVERLAY_SIDE, OVERLAY_SPLIT):
        window.depth_panel.overlay_mode_combo.setCurrentText(mode)
        assert canvas.overlay_mode == mode
        pictures[mode] = canvas.grab().toImage()
    assert [kind for kind, _ in canvas._panels()] == ["input"]
    window.depth_panel.overlay_mode_combo.setCurrentText(OVERLAY_SIDE)
    assert [kind for kind, _ in canvas._panels()] == ["input", "depth"]
    assert len({pictures[mode].cacheKey() for mode in pictures}) == 3
    assert pictures[OVERLAY_BLEND] != pictures[OVERLAY_SIDE] != pictures[OVERLAY_SPLIT]
    qtbot.mouseClick(window.depth_panel.overlay_check, LEFT)  # off: only the photo
    assert [kind for kind, _ in canvas._panels()] == ["input"] and canvas._shown_depth() is None


def test_the_split_line_follows_the_mouse(ready):
    window, canvas = ready, ready.canvas
    window.depth_panel.overlay_mode_combo.setCurrentText(OVERLAY_SPLIT)
    original = window.depth.copy()
    line = widget_point(canvas, 48, 32)  # split starts in the middle of the 96 px image
    drag(canvas, [line, widget_point(canvas, 24, 32)])
    assert canvas.split == pytest.approx(0.25, abs=0.02)
    assert np.array_equal(window.depth, original)


def test_strokes_can_be_painted_on_the_side_by_side_depth_panel(ready):
    window, canvas = ready, ready.canvas
    window.depth_panel.overlay_mode_combo.setCurrentText(OVERLAY_SIDE)
    window.depth_tools.set_tool("raise")
    window.depth_tools.size_slider.setValue(10)
    panel_x = dict(canvas._panels())["depth"]
    original = window.depth.copy()
    drag(canvas, [widget_point(canvas, 70, 20, panel_x), widget_point(canvas, 72, 22, panel_x)])
    changed = np.argwhere(window.depth != original)
    assert abs(changed[:, 1].mean() - 71) < 2 and abs(changed[:, 0].mean() - 21) < 2


def test_model_view_shows_the_latent_grid(ready):
    window, canvas = ready, ready.canvas
    window.depth_panel.model_view_check.setChecked(True)
    assert (canvas.model_image.width(), canvas.model_image.height()) == (96 // 8, 64 // 8)
    assert canvas._shown_depth() is canvas.model_image
    before = canvas.model_image.copy()
    paint(window, "raise", [(10, 10), (30, 20)], size=30)
    assert canvas.model_image != before  # refreshed after the stroke
    window.depth_panel.model_view_check.setChecked(False)
    assert canvas._shown_depth() is canvas.depth_image


def test_generation_receives_the_edited_map_and_not_later_strokes(qtbot, ready):
    window = ready
    engine = window.worker_thread.worker.engine
    received = []
    original_generate = engine.generate

    def recording_generate(params, image, depth=None, **kwargs):  # a spy: records, then runs the real pipeline
        received.append(None if depth is None else depth.copy())
        return original_generate(params, image, depth, **kwargs)

    engine.generate = recording_generate
    estimate = window.depth.copy()
    paint(window, "raise", [(20, 20), (70, 40)], size=30)
    edited = window.depth.copy()
    window.params_panel.prompt.setPlainText("a street")
    window.params_panel.steps.setValue(2)
    with qtbot.waitSignal(window.worker_thread.worker.sig_result, timeout=60_000):
        window.generate()
        paint(window, "lower", [(50, 30)], size=30)  # painted while the job runs
    qtbot.waitUntil(lambda: not window.busy, timeout=10_000)
    assert len(received) == 1
    kept = levels_to_depth(depth_levels(edited))  # the edited map as kept, in 16 bits, beside the picture
    assert np.array_equal(received[0], kept) and not np.array_equal(received[0], levels_to_depth(depth_levels(estimate)))
    assert not np.array_equal(window.depth, edited)  # the later stroke stayed in the window


def test_estimating_the_same_image_again_keeps_the_edits_one_undo_away(qtbot, ready):
    window = ready
    estimate = window.depth.copy()
    paint(window, "raise", [(30, 30), (60, 30)])
    edited = window.depth.copy()
    qtbot.mouseClick(window.depth_panel.estimate_button, LEFT)
    qtbot.waitUntil(lambda: window.depth_editor.history.count() == 2, timeout=30_000)  # stroke, then estimate
    assert np.array_equal(window.depth, estimate)
    assert "Undo" in window.notice.message()
    window.depth_tools.undo_action.trigger()
    assert np.array_equal(window.depth, edited)


def test_export_npy_and_16_bit_png_and_load_them_back(ready, tmp_path):
    window = ready
    paint(window, "smooth", [(20, 20), (70, 40)], size=30)
    expected = normalize(window.depth)
    npy = window.save_depth_file(tmp_path / "edited.npy")
    png = window.save_depth_file(tmp_path / "edited.png")
    assert np.array_equal(np.load(npy), expected)
    with Image.open(png) as saved:
        assert saved.mode.startswith("I;16")
    assert window.save_depth_file(tmp_path / "edited.npy") is None  # never overwrites
    assert "already exists" in window.notice.message()
    window.depth_tools.bright_combo.setCurrentText("Guess from the file")
    assert window.load_depth_file(npy)
    assert np.array_equal(window.depth, expected)
    assert "Assumed bright = near" in window.notice.message()
    assert window.load_depth_file(png)
    assert np.abs(window.depth - expected).max() <= 1 / 65535


def test_loading_a_z_pass_says_it_was_read_as_distances_and_can_be_undone(ready, tmp_path):
    window = ready
    before = window.depth.copy()
    z = np.full((32, 48), 20.0, dtype=np.float32)
    z[8:24, 12:36] = 4.0  # a near box, half the size: the file is resized too
    path = tmp_path / "render_z.tif"
    Image.fromarray(z).save(path)
    assert window.load_depth_file(path)
    assert window.depth[32, 48] == pytest.approx(1.0) and window.depth[2, 2] == pytest.approx(0.0)
    assert "bright = far" in window.notice.message() and "Resized" in window.notice.message()
    window.depth_tools.undo_action.trigger()
    assert np.array_equal(window.depth, before)


@pytest.mark.parametrize("content, words", [(b"not a picture", "not a picture"), (b"", "empty")])
def test_unreadable_depth_files_leave_the_map_alone(ready, tmp_path, content, words):
    window = ready
    before = window.depth.copy()
    path = tmp_path / "broken.png"
    path.write_bytes(content)
    assert not window.load_depth_file(path)
    assert window.notice.level == "error" and window.notice.message()
    assert np.array_equal(window.depth, before)


def test_nan_and_constant_depth_files_are_refused_with_a_reason(ready, tmp_path):
    window = ready
    before = window.depth.copy()
    nan = np.ones((64, 96), dtype=np.float32)
    nan[3, 3] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    assert not window.load_depth_file(tmp_path / "nan.npy")
    assert "NaN or infinite" in window.notice.message()
    Image.new("L", (96, 64), 40).save(tmp_path / "flat.png")
    assert not window.load_depth_file(tmp_path / "flat.png")
    assert "same value" in window.notice.message()
    assert np.array_equal(window.depth, before)


def test_colour_depth_image_is_converted_and_said_so(ready, third_party_samples):
    window = ready
    assert window.load_depth_file(third_party_samples / "pillow_hopper.png")
    assert "greyscale (luminance)" in window.notice.message() and "aspect ratio" in window.notice.message()


def test_parallax_preview_moves_by_itself_and_follows_the_mouse(qtbot, ready):
    view = ready.depth_tools.parallax
    assert view.timer.isActive() and view.frame is not None
    first = view.frame.copy()
    qtbot.waitUntil(lambda: view.frame != first, timeout=3000)
    at = QPointF(view.width() - 2, view.height() / 2)
    QApplication.sendEvent(view, QMouseEvent(QEvent.Type.MouseMove, at, view.mapToGlobal(at), NONE, NONE,
                                             Qt.KeyboardModifier.NoModifier))
    assert not view.timer.isActive()  # the mouse steers now
    assert view.offset()[0] > 0
    window = ready
    window.depth_panel.view_combo.setCurrentText(VIEW_INPUT)
    window.set_image(window.session.image, "same photo")  # a new image clears the preview until its depth arrives
    assert view.frame is None
