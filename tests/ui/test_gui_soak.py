"""A short run of benchmarks/gui_soak.py on the real window: every generate/cancel cycle ends with the window idle."""

import sys
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from gui_soak import MODES, run_cycles  # noqa: E402


def test_generate_and_cancel_cycles_never_leave_the_window_busy(qtbot, qapp, window, tmp_path):
    photo = tmp_path / "photo.png"
    Image.new("RGB", (64, 64), "teal").save(photo)
    assert window.open_image(photo)
    qtbot.waitUntil(lambda: window.depth is not None and not window.busy, timeout=30_000)

    problems, _ = run_cycles(qapp, window, cycles=2 * len(MODES), steps=3, say=lambda _text: None)

    assert problems == []
    assert not window.busy and window.result is not None
