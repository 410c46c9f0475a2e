"""The composition root as a user starts it: `d2i-desktop` on a fresh machine, then again."""

import subprocess
import sys

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from d2i_desktop import app as app_module


def run_app(argv, inspect, qapp):
    """Start the app's main(), let `inspect(window)` look once the model is ready, then quit."""
    seen = {}

    def poll():
        windows = [w for w in qapp.topLevelWidgets() if w.inherits("QMainWindow") and w.isVisible()]
        if windows and windows[0].model is not None and not windows[0].busy:
            seen.update(inspect(windows[0]))
            windows[0].close()
            qapp.quit()
        else:
            QTimer.singleShot(100, poll)

    QTimer.singleShot(100, poll)
    code = app_module.main(argv)
    return code, seen


def test_first_run_starts_with_the_demo_model_and_offers_models(qapp, isolated_data_dir, make_photo):
    photo = make_photo(96, 64)

    def inspect(window):
        dialog = window.models_dialog
        return {"label": window.model.label, "dialog": dialog is not None and dialog.isVisible(),
                "image": window.loaded.image.size if window.loaded else None}

    code, seen = run_app([str(photo)], inspect, qapp)
    assert code == 0
    assert seen == {"label": "demo model (random weights)", "dialog": True, "image": (96, 64)}
    assert (isolated_data_dir / "models" / "demo" / "model_index.json").is_file()
    assert (isolated_data_dir / "settings.ini").is_file()


def test_second_run_goes_straight_to_work(qapp, isolated_data_dir):
    run_app([], lambda window: {}, qapp)
    for widget in QApplication.topLevelWidgets():
        widget.close()
    code, seen = run_app([], lambda window: {"dialog": window.models_dialog is not None, "demo": window.model.is_demo},
                         qapp)
    assert code == 0 and seen == {"dialog": False, "demo": True}


def test_module_entry_point_shows_help():
    run = subprocess.run([sys.executable, "-m", "d2i_desktop", "--help"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "Depth-guided image generation" in run.stdout
