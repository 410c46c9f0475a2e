"""Damaged app data at start-up: the app starts, says so in one notice, and keeps the damaged files."""

import json
import os
import subprocess
import sys

from PySide6.QtCore import QSettings

from d2i_desktop.core.files.app_data import take_notices
from d2i_desktop.ui.settings_file import open_settings

DRIVER = """
import json, sys
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

app = QApplication(sys.argv[:1])
from d2i_desktop import app as app_module

def poll():
    windows = [w for w in app.topLevelWidgets() if w.inherits("QMainWindow") and w.isVisible()]
    if windows and windows[0].model is not None and not windows[0].busy:
        print(json.dumps({"notice": windows[0].notice.message(), "label": windows[0].model.label}))
        windows[0].close()
    else:
        QTimer.singleShot(100, poll)

QTimer.singleShot(100, poll)
sys.exit(app_module.main(["--demo"]))
"""


def test_damaged_settings_and_model_list_are_kept_and_said_once(isolated_data_dir):
    isolated_data_dir.mkdir(parents=True)
    (isolated_data_dir / "settings.ini").write_bytes(b"[model]\nsource=/models/mine\ndemo=false\n[window\x00\x00\x00")
    (isolated_data_dir / "models.json").write_text('[{"name": "mine", "sou')
    run = subprocess.run([sys.executable, "-c", DRIVER], capture_output=True, text=True, timeout=180,
                         env=os.environ | {"QT_QPA_PLATFORM": "offscreen"})
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert "settings file was damaged" in seen["notice"] and "model list was damaged" in seen["notice"]
    kept_settings = list(isolated_data_dir.glob("settings.ini.corrupt-*"))
    kept_models = list(isolated_data_dir.glob("models.json.corrupt-*"))
    assert len(kept_settings) == 1 and b"/models/mine" in kept_settings[0].read_bytes()
    assert len(kept_models) == 1 and kept_models[0].read_text() == '[{"name": "mine", "sou'


def test_a_settings_file_cut_short_by_a_crash_is_not_half_read(tmp_path):
    path = tmp_path / "settings.ini"
    path.write_bytes(b"[model]\nsource=/models/mine\n" + b"\0" * 4096)  # how a file looks after a power loss
    settings = open_settings(path)
    assert settings.value("model/source") is None
    assert len(list(tmp_path.glob("settings.ini.corrupt-*"))) == 1
    assert len(take_notices()) == 1


def test_a_sound_settings_file_is_read_as_it_is(tmp_path):
    path = tmp_path / "settings.ini"
    QSettings(str(path), QSettings.Format.IniFormat).setValue("model/source", "/models/mine")
    assert open_settings(path).value("model/source") == "/models/mine"
    assert list(tmp_path.iterdir()) == [path] and take_notices() == []
