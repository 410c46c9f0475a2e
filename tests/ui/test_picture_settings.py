"""Settings read from pictures with qtbot: dropped pictures offer theirs in one click, and reading never happens
on the GUI thread (real sample pictures by other tools, a real picture with a large text)."""

import threading

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from PySide6.QtCore import QMimeData, QPointF, Qt, QTimer, QUrl
from PySide6.QtGui import QDropEvent

from d2i_desktop.ui import settings_reader


def drop(window, path):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    window.canvas.dropEvent(QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                                       Qt.KeyboardModifier.NoModifier))


def test_a_dropped_picture_opens_as_the_image_and_offers_its_settings_in_one_click(qtbot, window, third_party_samples,
                                                                                 tmp_path):
    with Image.open(third_party_samples / "sdparsers_automatic1111_cropped.png") as sample:
        text = sample.text["parameters"]  # what AUTOMATIC1111 wrote, on a picture large enough to repaint
    info = PngInfo()
    info.add_text("parameters", text)
    picture = tmp_path / "duck.png"
    Image.new("RGB", (96, 64), "olive").save(picture, pnginfo=info)
    window.params_panel.prompt.setPlainText("my own prompt")
    drop(window, picture)
    assert window.session.image_name == "duck.png" and window.session.image.image.size == (96, 64)  # at once
    qtbot.waitUntil(lambda: window.notice.action.isVisible(), timeout=30_000)
    assert window.notice.action.text() == "Use its settings"
    assert "duck.png carries the settings it was made with (AUTOMATIC1111)" in window.notice.message()
    assert window.params_panel.params().prompt == "my own prompt"  # only offered
    with qtbot.waitSignal(window.sig_settings_taken, timeout=30_000) as taken:
        qtbot.mouseClick(window.notice.action, Qt.MouseButton.LeftButton)
    assert taken.args == [str(picture), True]
    params = window.params_panel.params()
    assert (params.prompt, params.negative_prompt, params.steps, params.seed) == ("photo of a duck", "monochrome", 15,
                                                                                  235284042)
    assert window.session.image_name == "duck.png"


@pytest.mark.parametrize("name, tool", [("sdparsers_fooocus1_cropped.png", "Fooocus"),
                                        ("sdparsers_invokeai_imeta1.png", "InvokeAI")])
def test_a_dropped_picture_too_small_to_repaint_still_offers_its_settings(qtbot, window, third_party_samples, name, tool):
    picture = third_party_samples / name  # 1x1 px: refused as the image
    window.params_panel.prompt.setPlainText("my own prompt")
    drop(window, picture)
    assert window.session.image is None and "at least 64 px" in window.notice.message()
    qtbot.waitUntil(lambda: window.notice.action.isVisible(), timeout=30_000)
    assert f"{name} could not be opened as the image, but it carries the settings it was made with ({tool})" in (
        window.notice.message())
    with qtbot.waitSignal(window.sig_settings_taken, timeout=30_000) as taken:
        qtbot.mouseClick(window.notice.action, Qt.MouseButton.LeftButton)
    assert taken.args == [str(picture), True]
    assert window.params_panel.params().prompt not in ("", "my own prompt") and tool in window.notice.message()


def test_a_dropped_photo_without_settings_offers_nothing(qtbot, window, make_photo):
    photo = make_photo(64, 64, "plain.png", seed=3)
    with qtbot.waitSignal(window.worker_thread.worker.sig_depth_ready, timeout=30_000):
        drop(window, photo)
    qtbot.waitUntil(lambda: window.settings_reader.pool.activeThreadCount() == 0 and not window.settings_reader._waiting,
                    timeout=10_000)
    assert window.session.image_name == "plain.png"
    assert not window.notice.isVisible() and not window.notice.action.isVisible()


def test_a_large_text_is_read_off_the_gui_thread_while_the_window_goes_on(qtbot, window, tmp_path, monkeypatch):
    info = PngInfo()
    info.add_text("parameters", "misty pines\nNegative prompt: blur\nSteps: 12, Sampler: Euler a, CFG scale: 6, "
                                "Seed: 4321, Size: 64x64, Model: pines, Notes: " + "n" * 400_000)
    picture = tmp_path / "large-text.png"
    Image.new("RGB", (64, 64), "green").save(picture, pnginfo=info)
    gui_thread, reads = threading.get_ident(), []
    real = settings_reader.read_settings

    def read_while_the_window_runs(*args):
        # The window's event loop must run a timer while the text is read: it could not if the GUI thread read it.
        ticked = threading.Event()
        QTimer.singleShot(0, window, ticked.set)
        reads.append((threading.get_ident(), ticked.wait(10)))
        return real(*args)

    monkeypatch.setattr(settings_reader, "read_settings", read_while_the_window_runs)
    with qtbot.waitSignal(window.sig_settings_taken, timeout=30_000) as taken:
        window.use_settings_from(picture)
        assert window.params_panel.params().prompt != "misty pines"  # not read yet: the call returned at once
    assert taken.args == [str(picture), True]
    assert len(reads) == 1 and reads[0][0] != gui_thread and reads[0][1] is True
    params = window.params_panel.params()
    assert (params.prompt, params.negative_prompt, params.steps, params.seed) == ("misty pines", "blur", 12, 4321)
