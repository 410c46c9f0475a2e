"""The main window end to end with qtbot: real widgets, real worker thread, demo model."""

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QEvent, QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent, QGuiApplication, QImage, QMouseEvent
from PySide6.QtWidgets import QApplication, QFileDialog

from d2i_desktop.core.history.index import History
from d2i_desktop.core.history.record import read_record
from d2i_desktop.core.files.outputs import parse_parameters, read_parameters
from d2i_desktop.ui.canvas import VIEW_SIDE_BY_SIDE

KEY_WIDGETS = ["promptEdit", "negativePromptEdit", "strengthSpin", "stepsSpin", "guidanceSpin", "seedSpin",
               "schedulerCombo", "generateButton", "cancelButton", "progressBar", "canvas", "depthOverlayCheck",
               "depthOpacitySlider", "estimateDepthButton", "saveButton"]


@pytest.fixture
def photo_file(make_photo):
    return make_photo(80, 64, "harbour.png", seed=11)


def generate_and_wait(qtbot, window, trigger=None):
    """Generate and wait until the window has shown the result (signals from the worker
    thread may reach a test's own slot before the window's queued one)."""
    previous = window.result
    (trigger or window.generate)()
    qtbot.waitUntil(lambda: window.result is not previous and not window.busy, timeout=60_000)


def set_fast_params(window, prompt="a lighthouse at dusk", steps=4, seed=99):
    panel = window.params_panel
    panel.prompt.setPlainText(prompt)
    panel.steps.setValue(steps)
    panel.seed.setValue(seed)


def test_key_widgets_have_their_object_names(window):
    from PySide6.QtWidgets import QWidget

    for name in KEY_WIDGETS:
        assert window.findChild(QWidget, name) is not None, name


def test_status_bar_names_the_demo_model_and_device(window):
    assert window.model_label.text() == "Model: demo model (random weights) · cpu float32"
    assert "demo model (random weights)" in window.demo_notice.message()


def test_open_image_estimates_depth_and_overlay_controls_work(qtbot, window, photo_file, open_with_depth):
    open_with_depth(photo_file)
    assert window.depth.shape == (64, 80)
    canvas = window.canvas
    assert canvas.input_image.size().width() == 80 and canvas.depth_image is not None
    qtbot.mouseClick(window.depth_panel.overlay_check, Qt.MouseButton.LeftButton)
    assert canvas.overlay_visible is False
    window.depth_panel.opacity_slider.setValue(80)
    assert canvas.overlay_opacity == pytest.approx(0.8)
    before = canvas.depth_image
    window.depth_panel.colormap_combo.setCurrentText("grey")
    assert canvas.depth_image != before


def test_estimate_button_reestimates(qtbot, window, photo_file, open_with_depth):
    open_with_depth(photo_file)
    window.depth_editor.clear()
    with qtbot.waitSignal(window.worker_thread.worker.sig_depth_ready, timeout=30_000):
        qtbot.mouseClick(window.depth_panel.estimate_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.depth is not None)


def test_generate_shows_progress_previews_result_and_saves_with_metadata(qtbot, window, photo_file, tmp_path,
                                                                         monkeypatch, open_with_depth):
    open_with_depth(photo_file)
    set_fast_params(window)
    worker = window.worker_thread.worker
    steps = []
    worker.sig_step.connect(steps.append)
    generate_and_wait(qtbot, window, lambda: qtbot.keyClick(window.params_panel.prompt, Qt.Key.Key_Return,
                                                            Qt.KeyboardModifier.ControlModifier))
    assert [s.step for s in steps] == [1, 2, 3]
    assert steps[0].preview is not None and steps[-1].preview is not None
    assert window.progress.value() == 3 and window.progress.maximum() == 3
    assert window.progress.format().startswith("Done in") and "seed 99" in window.progress.format()
    assert window.canvas.result_image is not None and not window.canvas.result_is_preview
    assert window.canvas.view_mode == VIEW_SIDE_BY_SIDE
    assert window.save_button.isEnabled()

    # Written at once, with the 16-bit depth map used beside it, and indexed.
    saved = sorted((tmp_path / "outputs").glob("*.png"))
    assert [p.name for p in saved] == ["00001-99.depth.png", "00001-99.png"]
    assert window.session.current_path() == saved[1]
    fields = parse_parameters(read_parameters(saved[1]))
    assert fields["prompt"] == "a lighthouse at dusk" and fields["Seed"] == "99" and fields["Steps"] == "4"
    assert fields["Size"] == "80x64" and fields["Model"] == "demo model (random weights)"
    history = History()
    try:
        assert [(entry.path, entry.seed) for entry in history.search("lighthouse")] == [(str(saved[1].resolve()), 99)]
    finally:
        history.close()

    export = tmp_path / "elsewhere" / "keep.png"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *args, **kwargs: (str(export), "PNG (*.png)"))
    qtbot.mouseClick(window.save_button, Qt.MouseButton.LeftButton)
    assert export.read_bytes() == saved[1].read_bytes()  # a copy, record and all
    assert window.export_result(export) is None  # a second export never overwrites the first
    assert "keep.png" in window.notice.message() and export.read_bytes() == saved[1].read_bytes()


def test_no_result_is_lost_when_the_next_one_starts(qtbot, window, photo_file, tmp_path, open_with_depth):
    open_with_depth(photo_file)
    for seed in (7, 8):
        set_fast_params(window, seed=seed)
        generate_and_wait(qtbot, window)
    names = sorted(p.name for p in (tmp_path / "outputs").glob("*.png") if not p.name.endswith(".depth.png"))
    assert names == ["00001-7.png", "00002-8.png"]
    record = read_record(tmp_path / "outputs" / "00001-7.png")
    assert record["seed"] == 7 and record["input"]["path"] == str(photo_file.resolve())


def test_progress_text_shows_rate_and_time_left(qtbot, window, photo_file, open_with_depth):
    open_with_depth(photo_file)
    set_fast_params(window, steps=6)
    texts = []
    window.progress.valueChanged.connect(lambda _value: texts.append(window.progress.text()))
    generate_and_wait(qtbot, window)
    assert any("Step 2/4" in t and "it/s" in t and "s left" in t for t in texts), texts


def test_several_images_per_prompt_are_listed(qtbot, window, photo_file, open_with_depth):
    open_with_depth(photo_file)
    set_fast_params(window, seed=5)
    window.params_panel.num_images.setValue(2)
    generate_and_wait(qtbot, window)
    assert window.results_list.count() == 2 and window.results_list.isVisible()
    window.results_list.setCurrentRow(1)
    assert window.session.result_index == 1


def test_cancel_mid_run_keeps_the_window_usable(qtbot, window, photo_file, open_with_depth):
    open_with_depth(photo_file)
    set_fast_params(window, steps=400)
    window.params_panel.strength.setValue(1.0)
    worker = window.worker_thread.worker
    seen = []
    worker.sig_step.connect(lambda info: seen.append(info.step))
    window.generate()
    qtbot.waitUntil(lambda: len(seen) >= 2, timeout=30_000)
    assert window.cancel_button.isEnabled()
    qtbot.keyClick(window, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: not window.busy and window.progress.format() == "Cancelled", timeout=5_000)
    assert max(seen) < 400
    assert window.progress.format() == "Cancelled" and window.generate_button.isEnabled()
    set_fast_params(window)
    generate_and_wait(qtbot, window)


def test_window_repaints_while_a_job_runs(qtbot, window, photo_file, open_with_depth):
    open_with_depth(photo_file)
    set_fast_params(window, steps=200)
    window.params_panel.strength.setValue(1.0)
    window.generate()
    qtbot.waitUntil(lambda: window.busy, timeout=10_000)
    paints = []
    original = window.canvas.paintEvent
    window.canvas.paintEvent = lambda event: (paints.append(1), original(event))
    for _ in range(3):
        window.canvas.update()
        qtbot.wait(50)
    assert paints and window.busy
    window.cancel()
    qtbot.waitUntil(lambda: not window.busy, timeout=10_000)


def test_closing_mid_job_cancels_and_exits_cleanly(qtbot, settings, demo_model_dir, photo_file):
    from d2i_desktop.core.generation.engine import Engine
    from d2i_desktop.ui.main_window import MainWindow
    from d2i_desktop.ui.worker import WorkerThread

    win = MainWindow(WorkerThread(Engine(device="cpu")), settings)
    win.show()
    with qtbot.waitSignal(win.worker_thread.worker.sig_model_loaded, timeout=60_000):
        win.load_model(str(demo_model_dir))
    with qtbot.waitSignal(win.worker_thread.worker.sig_depth_ready, timeout=30_000):
        assert win.open_image(photo_file)
    qtbot.waitUntil(lambda: win.depth is not None and not win.busy, timeout=10_000)
    set_fast_params(win, steps=500)
    win.params_panel.strength.setValue(1.0)
    with qtbot.waitSignal(win.worker_thread.worker.sig_step, timeout=30_000):
        win.generate()
    win.close()  # cancels, then waits at most 2 s for the thread (no timed assertion: machines are noisy)
    assert win.worker_thread.thread.isFinished()


@pytest.mark.parametrize("content, words", [
    (b"", "empty"),
    (b"GIF89a" + b"\x00" * 4, ""),
    (b"%PDF-1.4 not a picture", "not an image"),
])
def test_bad_files_show_a_notice_and_keep_the_current_image(qtbot, window, photo_file, tmp_path, content, words,
                                                            open_with_depth):
    open_with_depth(photo_file)
    bad = tmp_path / "broken.png"
    bad.write_bytes(content)
    assert window.open_image(bad) is False
    assert window.notice.isVisible() and window.notice.level == "error"
    assert words in window.notice.message().lower()
    assert window.session.image is not None and window.canvas.input_image is not None  # the photo is still there


def test_decompression_bomb_sample_is_refused(qtbot, window, third_party_samples):
    assert window.open_image(third_party_samples / "pillow_decompression_bomb.gif") is False
    assert window.notice.level == "error" and window.notice.message()


def test_huge_image_is_scaled_down_and_the_user_told(qtbot, window, tmp_path):
    big = tmp_path / "big.png"
    Image.new("RGB", (3000, 2000), "teal").save(big)
    assert window.open_image(big)
    assert window.session.image.image.size == (1024, 680)
    assert window.notice.level == "info" and "3000x2000" in window.notice.message()


def test_out_of_range_parameters_are_refused_in_the_notice_bar(qtbot, window, photo_file, open_with_depth):
    open_with_depth(photo_file)
    window.params_panel.prompt.setPlainText("x")
    window.params_panel.steps.setValue(2)
    window.params_panel.strength.setValue(0.3)
    window.generate()
    assert "leave no denoising step" in window.notice.message()
    assert not window.busy


def test_generate_without_image_says_what_to_do(window):
    window.generate()
    assert "Open a photo first" in window.notice.message()


def test_drop_a_file_on_the_canvas_opens_it(qtbot, window, photo_file):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(photo_file))])
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(window.worker_thread.worker.sig_depth_ready, timeout=30_000):
        window.canvas.dropEvent(event)
    assert window.session.image.image.size == (80, 64)


def test_paste_an_image(qtbot, window):
    image = QImage(96, 72, QImage.Format.Format_RGB32)
    image.fill(Qt.GlobalColor.darkCyan)
    QGuiApplication.clipboard().setImage(image)
    assert window.paste_image()
    assert window.session.image.image.size == (96, 72)


def test_paste_with_an_empty_clipboard_says_so(window):
    QGuiApplication.clipboard().clear()
    assert window.paste_image() is False
    assert "clipboard holds no picture" in window.notice.message()


def test_load_depth_map_of_another_size(qtbot, window, photo_file, tmp_path, open_with_depth):
    open_with_depth(photo_file)
    path = tmp_path / "depth.npy"
    np.save(path, np.tile(np.linspace(0, 1, 40, dtype=np.float32), (32, 1)))
    assert window.load_depth_file(path)
    assert window.depth.shape == (64, 80)
    assert "Resized" in window.notice.message()


def test_canvas_zoom_and_pan(qtbot, window, photo_file, open_with_depth):
    open_with_depth(photo_file)
    canvas = window.canvas
    zoom = canvas.zoom
    canvas.zoom_by(2.0)
    assert canvas.zoom == pytest.approx(zoom * 2)
    offset = QPointF(canvas.offset)
    centre = QPointF(canvas.rect().center())
    for kind, at, buttons in [(QEvent.Type.MouseButtonPress, centre, Qt.MouseButton.MiddleButton),
                              (QEvent.Type.MouseMove, centre + QPointF(30, 10), Qt.MouseButton.MiddleButton),
                              (QEvent.Type.MouseButtonRelease, centre + QPointF(30, 10), Qt.MouseButton.NoButton)]:
        QApplication.sendEvent(canvas, QMouseEvent(kind, at, canvas.mapToGlobal(at), Qt.MouseButton.MiddleButton,
                                                   buttons, Qt.KeyboardModifier.NoModifier))
    assert canvas.offset == offset + QPointF(30, 10)
    canvas.fit()
    assert canvas.zoom == pytest.approx(zoom)


def test_last_parameters_come_back_in_a_new_window(qtbot, window, photo_file, settings, open_with_depth):
    from d2i_desktop.core.generation.engine import Engine
    from d2i_desktop.ui.main_window import MainWindow
    from d2i_desktop.ui.worker import WorkerThread

    open_with_depth(photo_file)
    set_fast_params(window, prompt="misty pines", seed=321)
    window.params_panel.scheduler.setCurrentText("UniPC")
    generate_and_wait(qtbot, window)
    reopened = MainWindow(WorkerThread(Engine(device="cpu")), settings)
    qtbot.addWidget(reopened)
    try:
        restored = reopened.params_panel.params()
        assert (restored.prompt, restored.seed, restored.steps, restored.scheduler) == ("misty pines", 321, 4, "UniPC")
    finally:
        reopened.close()


def use_settings(qtbot, window, path) -> bool:
    """Use the settings of `path` and wait until they are read (off the GUI thread) and applied, or refused."""
    with qtbot.waitSignal(window.sig_settings_taken, timeout=30_000) as taken:
        window.use_settings_from(path)
    assert taken.args[0] == str(path)
    return taken.args[1]


def test_use_settings_from_an_automatic1111_picture(qtbot, window, third_party_samples):
    assert use_settings(qtbot, window, third_party_samples / "sdparsers_automatic1111_cropped.png")
    params = window.params_panel.params()
    assert (params.prompt, params.negative_prompt, params.steps, params.seed, params.scheduler) == (
        "photo of a duck", "monochrome", 15, 235284042, "UniPC")
    assert window.notice.level == "info" and "realistic_realisticVisionV20_v20" in window.notice.message()


def test_use_settings_from_our_own_output(qtbot, window, photo_file, tmp_path, open_with_depth):
    open_with_depth(photo_file)
    set_fast_params(window, prompt="tide pools", seed=4242)
    window.params_panel.scheduler.setCurrentText("Heun")
    generate_and_wait(qtbot, window)
    saved = window.session.current_path()
    set_fast_params(window, prompt="something else", seed=1)
    assert use_settings(qtbot, window, saved)
    params = window.params_panel.params()
    assert (params.prompt, params.seed, params.scheduler, params.steps) == ("tide pools", 4242, "Heun", 4)


def test_use_settings_from_a_picture_without_them(qtbot, window, photo_file):
    before = window.params_panel.params()
    assert use_settings(qtbot, window, photo_file) is False
    assert "carries no generation settings" in window.notice.message()
    assert window.params_panel.params() == before


def test_each_generate_click_queues_exactly_one_run(qtbot, window, photo_file, open_with_depth):
    open_with_depth(photo_file)
    set_fast_params(window)
    runs = []
    window.worker_thread.worker.sig_result.connect(runs.append)
    window.generate()
    window.generate()  # before the worker has even started: a second job, queued behind the first
    assert window.generate_button.isEnabled() and window.generate_button.text() == "Add to queue"
    assert len(window.session.queue) == 1
    qtbot.waitUntil(lambda: len(runs) == 2 and not window.busy, timeout=60_000)
    qtbot.wait(1000)  # a third run would have finished by now
    assert len(runs) == 2 and window.generate_button.text() == "Generate"
