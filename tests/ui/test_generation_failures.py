"""A run that produces invalid values or runs out of memory, in the real window with its worker thread.

The failures are injected with forward hooks on the demo model's real UNet (no GPU exists here).
"""

import torch

from d2i_desktop.core.speed.acceleration import PRESETS
from d2i_desktop.ui.settings_dialog import load_performance


def engine_of(window):
    return window.worker_thread.worker.engine


def wait_idle(qtbot, window):
    qtbot.waitUntil(lambda: not window.busy, timeout=60_000)


def open_photo(qtbot, window, make_photo):
    with qtbot.waitSignal(window.worker_thread.worker.sig_depth_ready, timeout=30_000):
        assert window.open_image(make_photo(64, 64, "street.png", seed=4))
    wait_idle(qtbot, window)
    window.params_panel.steps.setValue(4)
    window.params_panel.seed.setValue(3)


def test_invalid_values_show_the_cause_and_the_fix_is_one_click(qtbot, window, make_photo, tmp_path):
    window.apply_performance(PRESETS["fastest"])
    qtbot.waitUntil(lambda: window.performance_report is not None and window.performance_report.effective.fuse_qkv,
                    timeout=30_000)
    open_photo(qtbot, window, make_photo)
    hook = engine_of(window).pipe.unet.conv_out.register_forward_hook(
        lambda _m, _i, output: torch.full_like(output, float("nan")))
    try:
        with qtbot.waitSignal(window.worker_thread.worker.sig_fix_offered, timeout=60_000):
            window.generate()
        wait_idle(qtbot, window)
    finally:
        hook.remove()
    assert window.result is None and window.progress.format() == "Failed"
    assert "invalid values" in window.notice.message() and not window.save_action.isEnabled()
    button = window.notice.action
    assert button.isVisible() and button.text() == "Turn the speed options off"
    assert not (tmp_path / "outputs").exists() or not any((tmp_path / "outputs").iterdir())

    with qtbot.waitSignal(window.worker_thread.worker.sig_performance, timeout=30_000):
        button.click()
    assert not window.notice.isVisible()
    stored = load_performance(window.settings)
    assert (stored.compile, stored.fuse_qkv, stored.channels_last) == ("off", False, False)
    qtbot.waitUntil(lambda: not window.performance_report.effective.fuse_qkv, timeout=10_000)
    wait_idle(qtbot, window)

    previous = window.result
    window.generate()
    qtbot.waitUntil(lambda: window.result is not previous and not window.busy, timeout=60_000)
    assert window.result.images[0].size == (64, 64)


def test_out_of_memory_is_explained_and_the_next_run_works(qtbot, window, make_photo):
    open_photo(qtbot, window, make_photo)

    def out_of_memory(_module, _inputs, _output):
        raise MemoryError()

    hook = engine_of(window).pipe.unet.conv_out.register_forward_hook(out_of_memory)
    try:
        with qtbot.waitSignal(window.worker_thread.worker.sig_failed, timeout=60_000):
            window.generate()
        wait_idle(qtbot, window)
    finally:
        hook.remove()
    assert "The computer ran out of memory while generating." in window.notice.message()
    assert "Traceback" not in window.notice.message() and not window.notice.action.isVisible()

    window.generate()
    qtbot.waitUntil(lambda: window.result is not None and not window.busy, timeout=60_000)
