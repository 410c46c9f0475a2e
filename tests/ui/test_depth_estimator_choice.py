"""The estimator chosen in the Depth panel for one image, and the default of Edit ▸ Settings: real window, real
worker thread, the demo model and a tiny random-weight estimator in a Hugging Face cache folder of the test."""

import numpy as np
import pytest
import torch
from PySide6.QtCore import Qt

from d2i_desktop.core.depth.edit import invert
from d2i_desktop.core.depth.estimators import DEFAULT_ESTIMATOR, ESTIMATORS, DepthSettings, load_estimator
from d2i_desktop.core.files.images import load_image
from d2i_desktop.core.generation.depth_origin import DepthOrigin
from d2i_desktop.core.history.record import read_record
from d2i_desktop.ui.settings_dialog import DEFAULT_ESTIMATOR_KEY
from d2i_desktop.core.depth.tiny_estimators import put_in_hf_cache, save_tiny_estimator

SMALL, BASE = "depth-anything-v2-small", "depth-anything-v2-base"


@pytest.fixture
def small_downloaded(tmp_path, cache_dir):
    put_in_hf_cache(ESTIMATORS[SMALL].repo_id, save_tiny_estimator(SMALL, tmp_path / "tiny"), cache_dir)


def estimate_and_wait(qtbot, window, trigger):
    with qtbot.waitSignal(window.worker_thread.worker.sig_depth_ready, timeout=30_000) as ready:
        trigger()
    qtbot.waitUntil(lambda: not window.busy, timeout=10_000)
    return ready.args


def choose(combo, name):
    combo.setCurrentIndex(combo.findData(name))


def test_the_combo_marks_non_commercial_and_missing_estimators(qtbot, window, small_downloaded):
    combo = window.depth_panel.estimator_combo
    combo.refresh()  # the test's cache came after the window
    texts = {combo.itemData(i): combo.itemText(i) for i in range(combo.count())}
    assert list(texts) == list(ESTIMATORS) and combo.name() == DEFAULT_ESTIMATOR
    assert texts[DEFAULT_ESTIMATOR] == "DPT-Hybrid (MiDaS)"  # the demo model carries its own
    assert texts[SMALL] == "Depth Anything V2 Small"
    assert texts[BASE] == "Depth Anything V2 Base (non-commercial, not downloaded)"
    note = window.depth_panel.estimator_note
    assert note.isHidden()
    choose(combo, BASE)
    assert not note.isHidden() and "Model ▸ Models" in note.text() and "Model ▸ Models" in combo.toolTip()
    assert "CC-BY-NC-4.0 (non-commercial use only)" in combo.toolTip()


def test_the_panels_choice_reaches_the_worker_and_the_record(qtbot, window, small_downloaded, make_photo, tmp_path):
    photo = make_photo(96, 64, "harbour.png", seed=4)
    estimate_and_wait(qtbot, window, lambda: window.open_image(photo))
    assert window.session.depth.origin() == DepthOrigin.estimated(DepthSettings())
    panel = window.depth_panel
    choose(panel.estimator_combo, SMALL)
    panel.fine_detail_check.setChecked(True)
    key, estimate, settings = estimate_and_wait(qtbot, window, lambda: qtbot.mouseClick(panel.estimate_button,
                                                                                        Qt.MouseButton.LeftButton))
    assert settings == DepthSettings(SMALL, fine_detail=True)
    expected = load_estimator(SMALL, "cpu", torch.float32).estimate(load_image(photo).image, fine_detail=True)
    assert np.array_equal(window.depth, expected.depth) and key == window.session.image_key
    assert window.session.depth.origin() == DepthOrigin.estimated(settings)
    assert "Depth estimated with Depth Anything V2 Small, fine detail." in window.notice.message()
    assert "Fine detail: 6 tiles at 3x." in window.notice.message()

    window.params_panel.steps.setValue(2)
    with qtbot.waitSignal(window.worker_thread.worker.sig_saved, timeout=60_000) as saved:
        window.generate()
    qtbot.waitUntil(lambda: not window.busy, timeout=10_000)
    record = read_record(saved.args[1][0])
    assert record["depth"]["origin"] == {"kind": "estimated", "estimator": SMALL, "fine_detail": True}
    assert record["params"]["depth_estimator"] == SMALL and record["params"]["depth_fine_detail"] is True

    window.session.depth.apply(invert, "Invert")
    assert window.session.depth.origin() == DepthOrigin.edited()
    window.session.depth.undo()
    assert window.session.depth.origin() == DepthOrigin.estimated(settings)
    ramp = tmp_path / "ramp.npy"
    np.save(ramp, np.tile(np.linspace(0, 1, 96, dtype=np.float32), (64, 1)))
    assert window.load_depth_file(ramp)
    assert window.session.depth.origin() == DepthOrigin.loaded(ramp)


def test_the_default_from_settings_applies_to_each_new_image(qtbot, window, settings, small_downloaded, make_photo):
    dialog = window.show_settings_dialog()
    assert dialog.default_estimator() == DEFAULT_ESTIMATOR
    choose(dialog.depth_page.estimator_combo, SMALL)
    dialog.accept()
    qtbot.waitUntil(lambda: not window.busy, timeout=10_000)  # the performance settings it applies too
    assert settings.value(DEFAULT_ESTIMATOR_KEY) == SMALL

    _key, _estimate, used = estimate_and_wait(qtbot, window, lambda: window.open_image(make_photo(64, 64, "a.png")))
    assert used == DepthSettings(SMALL) and window.depth_panel.depth_settings() == DepthSettings(SMALL)
    choose(window.depth_panel.estimator_combo, DEFAULT_ESTIMATOR)  # for this image only
    _key, _estimate, used = estimate_and_wait(qtbot, window, lambda: window.open_image(make_photo(64, 64, "b.png", 1)))
    assert used == DepthSettings(SMALL)
    assert window.show_settings_dialog().default_estimator() == SMALL


def test_use_settings_takes_the_pictures_estimator(qtbot, window, small_downloaded, make_photo):
    estimate_and_wait(qtbot, window, lambda: window.open_image(make_photo(64, 64, "c.png")))
    choose(window.depth_panel.estimator_combo, SMALL)
    window.params_panel.steps.setValue(2)
    with qtbot.waitSignal(window.worker_thread.worker.sig_saved, timeout=60_000) as saved:
        window.generate()
    qtbot.waitUntil(lambda: not window.busy, timeout=10_000)
    choose(window.depth_panel.estimator_combo, DEFAULT_ESTIMATOR)
    with qtbot.waitSignal(window.sig_settings_taken, timeout=30_000):
        window.use_picture(saved.args[1][0])
    assert window.depth_panel.depth_settings() == DepthSettings(SMALL)
