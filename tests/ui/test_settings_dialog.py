"""The Settings dialog's Performance page, its storage, and applying it through the worker thread."""

import dataclasses
import threading

from PySide6.QtWidgets import QDialogButtonBox

from d2i_desktop.core.speed.acceleration import PRESETS, PerformanceSettings, available_devices
from d2i_desktop.ui.settings_dialog import (PerformancePage, SettingsDialog, load_default_estimator, load_performance,
                                            save_default_estimator, save_performance)


def test_presets_fill_the_options_and_editing_one_makes_it_custom(qtbot):
    page = PerformancePage()
    qtbot.addWidget(page)
    assert page.preset_combo.currentData() == "balanced" and page.settings() == PerformanceSettings()
    assert not page.compile_mode_combo.isEnabledTo(page.cuda_box)

    page.preset_combo.setCurrentIndex(page.preset_combo.findData("low VRAM"))
    assert page.settings() == PRESETS["low VRAM"]
    assert page.offload_combo.currentData() == "model" and page.vae_tiling_check.isChecked()

    page.preset_combo.setCurrentIndex(page.preset_combo.findData("fastest"))
    assert page.compile_mode_combo.isEnabledTo(page.cuda_box) and page.fuse_qkv_check.isChecked()
    page.channels_last_check.setChecked(False)
    assert page.preset_combo.currentData() == "custom"
    assert page.settings() == PerformanceSettings(compile="torch-compile", fuse_qkv=True)
    page.channels_last_check.setChecked(True)
    assert page.preset_combo.currentData() == "fastest"


def test_device_and_precision_survive_a_preset(qtbot):
    page = PerformancePage()
    qtbot.addWidget(page)
    page.device_combo.setCurrentIndex(page.device_combo.findData("cpu"))
    page.precision_combo.setCurrentIndex(page.precision_combo.findData("bf16"))
    page.preset_combo.setCurrentIndex(page.preset_combo.findData("low VRAM"))
    chosen = page.settings()
    assert (chosen.device, chosen.precision, chosen.offload) == ("cpu", "bf16", "model")
    assert page.preset_combo.currentData() == "low VRAM"


def test_only_devices_this_machine_has_are_offered(qtbot):
    page = PerformancePage()
    qtbot.addWidget(page)
    offered = [page.device_combo.itemData(i) for i in range(page.device_combo.count())]
    assert offered == list(available_devices()) and offered[0] == "auto" and offered[-1] == "cpu"
    if "cuda" not in offered:  # a stored choice this machine cannot honour shows as automatic
        page.set_settings(PerformanceSettings(device="cuda"))
        assert page.settings().device == "auto"


def test_settings_are_stored_and_read_back(settings):
    assert load_performance(settings) == PerformanceSettings()
    chosen = dataclasses.replace(PRESETS["fastest"], device="cpu", precision="fp32", vae_tiling=True)
    save_performance(settings, chosen)
    settings.sync()
    assert settings.value("engine/device") == "cpu"  # the key the app starts the engine with
    assert load_performance(settings) == chosen
    settings.setValue("performance/compile", "warp")  # hand-edited or from a newer version
    assert load_performance(settings) == PerformanceSettings()


def test_the_default_depth_estimator_is_stored_and_read_back(settings):
    assert load_default_estimator(settings) == "dpt-hybrid"
    save_default_estimator(settings, "depth-anything-v2-small")
    settings.sync()
    assert load_default_estimator(settings) == "depth-anything-v2-small"
    settings.setValue("depth/estimator", "midas-v9")  # hand-edited or from a newer version
    assert load_default_estimator(settings) == "dpt-hybrid"


def test_restore_defaults(qtbot):
    dialog = SettingsDialog(PRESETS["low VRAM"], default_estimator="zoedepth")
    qtbot.addWidget(dialog)
    assert dialog.performance() == PRESETS["low VRAM"] and dialog.default_estimator() == "zoedepth"
    dialog.findChild(QDialogButtonBox).button(QDialogButtonBox.StandardButton.RestoreDefaults).click()
    assert dialog.performance() == PerformanceSettings() and dialog.default_estimator() == "dpt-hybrid"


def test_settings_from_the_menu_are_applied_on_the_worker_thread(qtbot, window):
    engine = window.worker_thread.worker.engine
    applied_on = []
    original = engine.set_performance
    engine.set_performance = lambda s: (applied_on.append(threading.current_thread()), original(s))[1]

    action = next(a for menu in window.menuBar().actions() for a in menu.menu().actions()
                  if a.objectName() == "settingsAction")
    action.trigger()
    dialog = window.findChild(SettingsDialog)
    assert dialog is not None and dialog.isVisible()
    assert "In effect" in dialog.performance_page.in_effect.text()  # the report from loading the model
    page = dialog.performance_page
    page.preset_combo.setCurrentIndex(page.preset_combo.findData("low VRAM"))
    before = window.performance_report
    dialog.accept()
    qtbot.waitUntil(lambda: window.performance_report is not before and not window.busy, timeout=30_000)

    assert applied_on and applied_on[0] is not threading.main_thread()
    assert engine.pipe.vae.use_tiling  # it took effect on the loaded model
    assert window.performance_report.requested == PRESETS["low VRAM"]
    assert load_performance(window.settings) == PRESETS["low VRAM"]
    assert window.notice.isVisible() and "offload" in window.notice.message()  # no CUDA here: says why
