"""Repaint a region: a mask painted on the canvas, kept in the session, sent with the job, saved and loaded."""

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QPoint, Qt

from d2i_desktop.core.history.record import mask_path_for, read_mask_levels
from d2i_desktop.core.generation.masks import save_mask

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
