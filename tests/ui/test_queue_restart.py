"""The queue survives a restart: waiting jobs are kept in the app-data folder and offered once at the next start."""

import json

import numpy as np
import pytest
from PIL import Image
from PySide6.QtWidgets import QMessageBox

from d2i_desktop.core.files.images import prepare_image
from d2i_desktop.core.history.record import read_record

PASTED = prepare_image(Image.fromarray(np.random.default_rng(5).integers(0, 255, (64, 64, 3), dtype=np.uint8)))


def set_prompt(window, prompt, steps=2, seed=10):
    window.params_panel.prompt.setPlainText(prompt)
    window.params_panel.steps.setValue(steps)
    window.params_panel.strength.setValue(1.0)
    window.params_panel.seed.setValue(seed)


@pytest.fixture
def closed_with_two_waiting(qtbot, window, make_photo, isolated_data_dir, monkeypatch):
    """A long job on dunes.png, then one on it and one on a pasted picture waiting behind it; the window closed
    (its quit question answered Yes)."""
    monkeypatch.setattr(QMessageBox, "question", lambda *args, **kwargs: QMessageBox.StandardButton.Yes)
    with qtbot.waitSignal(window.worker_thread.worker.sig_depth_ready, timeout=30_000):
        assert window.open_image(make_photo(64, 64, "dunes.png", seed=3))
    qtbot.waitUntil(lambda: window.depth is not None and not window.busy, timeout=10_000)
    set_prompt(window, "long run", steps=400)
    window.generate()
    qtbot.waitUntil(lambda: window.session.running is not None, timeout=10_000)
    set_prompt(window, "first", seed=1)
    window.generate()
    window.set_image(PASTED, "pasted image", estimate=False)
    set_prompt(window, "second", seed=2)
    window.generate()
    assert window.close() and not window.worker_thread.thread.isRunning()
    kept = json.loads((isolated_data_dir / "waiting-jobs.json").read_text())
    assert [job["params"]["prompt"] for job in kept] == ["first", "second"]  # the running one is not kept


def reopened(open_window, settings):
    """A new window on the same settings and app-data folder, its model loaded; and the question it asks, if any."""
    window = open_window(settings)
    return window, window.findChild(QMessageBox, "waitingJobsBox")


def answer(box, text):
    next(button for button in box.buttons() if button.text() == text).click()


def close(qtbot, window):
    qtbot.waitUntil(lambda: not window.busy, timeout=60_000)
    assert window.close() and not window.worker_thread.thread.isRunning()


def test_waiting_jobs_come_back_in_order_after_a_restart(qtbot, closed_with_two_waiting, settings, open_window,
                                                         isolated_data_dir):
    window, box = reopened(open_window, settings)
    assert box.isVisible() and box.text() == "2 job(s) were waiting when the app closed. Run them?"
    made, saved = [], []
    window.worker_thread.worker.sig_made.connect(lambda _job, result, image, _depth: made.append((result, image)))
    window.worker_thread.worker.sig_saved.connect(lambda _job, paths: saved.extend(paths))
    answer(box, "Run them")
    qtbot.waitUntil(lambda: len(saved) == 2 and not window.busy, timeout=90_000)

    assert [(result.params.prompt, result.seeds[0]) for result, _image in made] == [("first", 1), ("second", 2)]
    assert read_record(saved[0])["input"]["path"].endswith("dunes.png")
    assert read_record(saved[1])["input"].get("path") is None  # the pasted picture, from its kept copy
    assert np.array_equal(np.asarray(made[1][1]), np.asarray(PASTED.image))
    assert json.loads((isolated_data_dir / "waiting-jobs.json").read_text()) == []
    assert not any((isolated_data_dir / "waiting-jobs").iterdir())  # the kept copy went with its job
    close(qtbot, window)


def test_discard_forgets_them_and_a_job_whose_file_is_gone_is_dropped_with_a_note(
        qtbot, closed_with_two_waiting, settings, open_window, isolated_data_dir, tmp_path):
    (tmp_path / "dunes.png").unlink()
    window, box = reopened(open_window, settings)
    assert box.text() == "1 job(s) were waiting when the app closed. Run them?"
    assert "was dropped" in window.notice.message() and "dunes.png is gone" in window.notice.message()
    answer(box, "Discard")
    assert window.session.queue == [] and json.loads((isolated_data_dir / "waiting-jobs.json").read_text()) == []
    close(qtbot, window)

    window, box = reopened(open_window, settings)
    assert box is None  # asked once: nothing is offered again
    close(qtbot, window)
