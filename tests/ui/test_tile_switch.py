"""The Tile switch: it reaches the engine, is remembered, and the canvas previews the result 2x2."""

import numpy as np
import pytest
from PySide6.QtGui import QImage

from d2i_desktop.core.files.outputs import parse_parameters, read_parameters
from d2i_desktop.ui.canvas import VIEW_RESULT, Canvas, to_qimage



@pytest.fixture
def photo_file(make_photo):
    return make_photo(64, 64, "tiles.png", seed=5)


def generate_and_wait(qtbot, window):
    previous = window.result
    window.generate()
    qtbot.waitUntil(lambda: window.result is not previous and not window.busy, timeout=60_000)


def test_tile_switch_reaches_the_picture_and_comes_back_in_a_new_window(qtbot, window, photo_file, settings,
                                                                        open_with_depth):
    from d2i_desktop.core.generation.engine import Engine
    from d2i_desktop.ui.main_window import MainWindow
    from d2i_desktop.ui.worker import WorkerThread

    open_with_depth(photo_file)
    window.params_panel.prompt.setPlainText("floor tiles")
    window.params_panel.steps.setValue(2)
    window.params_panel.tile.click()
    assert window.params_panel.params().tile
    generate_and_wait(qtbot, window)
    qtbot.waitUntil(lambda: window.session.current_path() is not None, timeout=10_000)
    assert parse_parameters(read_parameters(window.session.current_path()))["Tiling"] == "True"
    window.tile_preview_action.trigger()  # View ▸ Tiled preview
    assert window.canvas.tile_preview
    reopened = MainWindow(WorkerThread(Engine(device="cpu")), settings)
    qtbot.addWidget(reopened)
    try:
        assert reopened.params_panel.tile.isChecked()
    finally:
        reopened.close()


def test_tiled_preview_draws_the_result_twice_across_and_down(qtbot):
    canvas = Canvas()
    qtbot.addWidget(canvas)
    canvas.resize(400, 400)
    canvas.show()
    rows, cols = np.mgrid[0:64, 0:64]
    picture = np.stack([rows * 4, cols * 4, np.full_like(rows, 90)], axis=-1).astype(np.uint8)
    canvas.set_input(to_qimage(np.zeros_like(picture)))
    canvas.set_result(to_qimage(picture))
    canvas.set_view_mode(VIEW_RESULT)
    canvas.set_tile_preview(True)
    shot = canvas.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    left, top = canvas.offset.x(), canvas.offset.y()
    quarter = 32 * canvas.zoom  # half the picture's side, on screen

    def colour(x, y):
        return shot.pixelColor(int(left + x), int(top + y)).getRgb()[:3]

    # The top-left corner of each copy is the picture's top-left corner (dark red/green, blue 90).
    corners = [colour(dx * quarter + 2, dy * quarter + 2) for dx in (0, 1) for dy in (0, 1)]
    assert all(abs(c[0] - corners[0][0]) <= 12 and abs(c[1] - corners[0][1]) <= 12 for c in corners)
    assert corners[0][0] < 60 and corners[0][1] < 60
    # Just before the middle the first copy ends bright: the picture's far corner.
    far = colour(quarter - 2, quarter - 2)
    assert far[0] > 180 and far[1] > 180
    canvas.set_tile_preview(False)
    plain = canvas.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    middle = plain.pixelColor(int(left + quarter), int(top + quarter)).getRgb()[:3]
    assert 90 < middle[0] < 170 and 90 < middle[1] < 170  # one picture: its middle is mid-grey-ish
