"""GUI fixtures: a real MainWindow with a real worker thread and the demo model."""

import gc

import pytest
from PySide6.QtCore import QSettings, QThread

from d2i_desktop.core.generation.engine import Engine
from d2i_desktop.ui.main_window import MainWindow
from d2i_desktop.ui.worker import WorkerThread


@pytest.fixture(autouse=True)
def no_thread_left_running(qapp):
    """Fail any test that leaves a QThread running (it would crash the next one, or the exit)."""
    yield
    gc.collect()
    running = [t.objectName() or repr(t) for t in gc.get_objects() if isinstance(t, QThread) and t.isRunning()]
    assert running == [], f"threads left running: {running}"


@pytest.fixture
def settings(tmp_path):
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def open_window(qtbot, demo_model_dir):
    """Opens a main window on the given settings with the demo model loaded, and gives it once it is idle."""
    def open_it(settings) -> MainWindow:
        win = MainWindow(WorkerThread(Engine(device="cpu")), settings)
        qtbot.addWidget(win)
        win.show()
        with qtbot.waitSignal(win.worker_thread.worker.sig_model_loaded, timeout=60_000):
            win.load_model(str(demo_model_dir))
        qtbot.waitUntil(lambda: not win.busy, timeout=10_000)
        return win
    return open_it


@pytest.fixture
def window(qtbot, settings, open_window, tmp_path):
    """The main window with the demo model loaded; closed (thread stopped) after the test."""
    settings.setValue("output/dir", str(tmp_path / "outputs"))
    win = open_window(settings)
    yield win
    # A job a test leaves running (say a depth estimate, which cannot stop mid-way) ends first, so the close
    # below checks a clean shutdown, not how fast a busy machine runs it; closing mid-job has a test of its own.
    if win.worker_thread.thread.isRunning():  # a test may have closed the window itself
        win.cancel_all()
        qtbot.waitUntil(lambda: not win.busy, timeout=60_000)
    win.close()
    assert not win.worker_thread.thread.isRunning()


@pytest.fixture
def open_with_depth(qtbot, window):
    """Open a photo in the window and wait until its depth map is estimated and the window is idle."""
    def open_photo(path):
        with qtbot.waitSignal(window.worker_thread.worker.sig_depth_ready, timeout=30_000):
            assert window.open_image(path)
        qtbot.waitUntil(lambda: window.depth is not None and not window.busy, timeout=10_000)
    return open_photo
