"""The composition root as a user starts it: `d2i-desktop` on a fresh machine, then again.

Each start runs in its own process, as it does for a user: once a QApplication's main loop
has ended, Qt no longer runs event loops for threads started later in that process.
"""

import json
import os
import subprocess
import sys

DRIVER = """
import json, sys
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

app = QApplication(sys.argv[:1])
from d2i_desktop import app as app_module

def poll():
    windows = [w for w in app.topLevelWidgets() if w.inherits("QMainWindow") and w.isVisible()]
    if windows and windows[0].model is not None and not windows[0].busy:
        window = windows[0]
        dialog = window.models_dialog
        print(json.dumps({"label": window.model.label, "dialog": dialog is not None and dialog.isVisible(),
                          "image": list(window.session.image.image.size) if window.session.image else None}))
        window.close()
    else:
        QTimer.singleShot(100, poll)

QTimer.singleShot(100, poll)
sys.exit(app_module.main(sys.argv[1:]))
"""


def start_app(*args):
    run = subprocess.run([sys.executable, "-c", DRIVER, *map(str, args)], capture_output=True, text=True, timeout=180,
                         env=os.environ | {"QT_QPA_PLATFORM": "offscreen"})
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_first_run_starts_with_the_demo_model_and_offers_models(isolated_data_dir, make_photo):
    seen = start_app(make_photo(96, 64))
    assert seen == {"label": "demo model (random weights)", "dialog": True, "image": [96, 64]}
    assert (isolated_data_dir / "models" / "demo" / "model_index.json").is_file()
    assert (isolated_data_dir / "settings.ini").is_file()


def test_second_run_goes_straight_to_work(isolated_data_dir):
    start_app()
    assert start_app() == {"label": "demo model (random weights)", "dialog": False, "image": None}


def test_module_entry_point_shows_help():
    run = subprocess.run([sys.executable, "-m", "d2i_desktop", "--help"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "Depth-guided image generation" in run.stdout
