"""The queue with qtbot: batch counts, jobs waiting behind a running one, reorder, edit, remove, cancel, quit."""

import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QMessageBox

from d2i_desktop.core.depth.estimators import DepthSettings
from d2i_desktop.core.generation.batch import BatchItem
from d2i_desktop.core.history.index import History
from d2i_desktop.core.history.record import depth_path_for, read_depth_levels, read_record
from d2i_desktop.ui import main_window as main_window_module
from d2i_desktop.ui import worker as worker_module


@pytest.fixture
def ready(qtbot, window, make_photo):
    with qtbot.waitSignal(window.worker_thread.worker.sig_depth_ready, timeout=30_000):
        assert window.open_image(make_photo(64, 64, "dunes.png", seed=3))
    qtbot.waitUntil(lambda: window.depth is not None and not window.busy, timeout=10_000)
    return window


def settings(window, prompt, steps=2, seed=10, batch=1):
    panel = window.params_panel
    panel.prompt.setPlainText(prompt)
    panel.steps.setValue(steps)
    panel.strength.setValue(1.0)
    panel.seed.setValue(seed)
    panel.batch.setValue(batch)


def queued_prompts(window):
    return [job.request[0].prompt for job in window.session.queue]


def test_batch_count_runs_the_settings_with_successive_seeds(qtbot, ready, tmp_path):
    window = ready
    settings(window, "sand dunes", seed=41, batch=3)
    runs = []
    window.worker_thread.worker.sig_result.connect(lambda result: runs.append(result.seeds[0]))
    qtbot.mouseClick(window.generate_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(runs) == 3 and not window.busy, timeout=90_000)
    assert runs == [41, 42, 43]
    pictures = sorted(p for p in (tmp_path / "outputs").glob("*.png") if not p.name.endswith(".depth.png"))
    assert [read_record(p)["seed"] for p in pictures] == [41, 42, 43]


def test_jobs_wait_behind_a_running_one_and_can_be_moved_edited_and_removed(qtbot, ready):
    window = ready
    panel = window.queue_panel
    settings(window, "long run", steps=400)
    window.generate()
    qtbot.waitUntil(lambda: window.session.running is not None, timeout=10_000)
    for prompt in ("first", "second", "third"):
        settings(window, prompt)
        qtbot.mouseClick(window.generate_button, Qt.MouseButton.LeftButton)
    assert queued_prompts(window) == ["first", "second", "third"]
    assert panel.list.count() == 4 and panel.list.item(0).text().startswith("▶")  # the running job on top

    panel.select(window.session.queue[2].id)
    qtbot.mouseClick(panel.up_button, Qt.MouseButton.LeftButton)
    assert queued_prompts(window) == ["first", "third", "second"]
    assert panel.current_id() == window.session.queue[1].id  # the moved job stays selected
    panel.select(window.session.queue[0].id)
    qtbot.mouseClick(panel.edit_button, Qt.MouseButton.LeftButton)
    assert queued_prompts(window) == ["third", "second"] and window.params_panel.prompt.toPlainText() == "first"
    panel.select(window.session.queue[1].id)
    qtbot.mouseClick(panel.remove_button, Qt.MouseButton.LeftButton)
    assert queued_prompts(window) == ["third"]

    started = []
    window.worker_thread.worker.sig_job_started.connect(lambda job_id, _what: started.append(job_id))
    third = window.session.queue[0].id
    window.cancel()  # the running job only: the queue goes on
    qtbot.waitUntil(lambda: third in started, timeout=20_000)
    qtbot.waitUntil(lambda: not window.busy, timeout=60_000)
    assert window.result.params.prompt == "third" and window.session.queue == []


def test_cancel_all_empties_the_queue_and_stops_the_running_job(qtbot, ready):
    window = ready
    settings(window, "long run", steps=400)
    window.generate()
    qtbot.waitUntil(lambda: window.session.running is not None, timeout=10_000)
    settings(window, "waits", batch=2)
    window.generate()
    assert len(window.session.queue) == 2 and window.cancel_all_action.isEnabled()
    qtbot.mouseClick(window.queue_panel.cancel_all_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.busy, timeout=20_000)
    assert window.session.queue == [] and window.result is None and window.progress.format() == "Cancelled"


def test_closing_with_a_queue_asks_once(qtbot, ready, monkeypatch):
    window = ready
    answers = [QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes]
    asked = []
    monkeypatch.setattr(QMessageBox, "question", lambda *args, **kwargs: (asked.append(args[2]), answers.pop(0))[1])
    settings(window, "long run", steps=400)
    window.generate()
    settings(window, "waits")
    window.generate()
    assert not window.close() and window.isVisible()  # "No" keeps the window and its queue
    assert "1 generation(s) wait in the queue" in asked[0] and len(window.session.queue) == 1
    assert window.close() and len(asked) == 2 and not window.worker_thread.thread.isRunning()
    window.close()  # closing again does not ask again
    assert len(asked) == 2


def test_repaint_a_folder_queues_one_job_per_image_with_the_depth_map_beside_it(qtbot, window, make_photo, tmp_path,
                                                                                monkeypatch):
    folder = tmp_path / "to-repaint"
    folder.mkdir()
    for name, seed in (("alley.png", 1), ("bridge.png", 2)):
        make_photo(64, 64, name, seed=seed).rename(folder / name)
    supplied = np.tile(np.linspace(0, 65535, 64).round().astype(np.uint16), (64, 1))  # near on the right
    Image.fromarray(supplied).save(folder / "bridge.depth.png")
    (folder / "b-broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    settings(window, "rainy street", seed=5)
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *args, **kwargs: str(folder))
    threads, real = [], worker_module.load_image
    monkeypatch.setattr(worker_module, "load_image",
                        lambda path: threads.append(threading.get_ident()) or real(path))
    saved, failed = [], []
    window.worker_thread.worker.sig_saved.connect(lambda _job_id, paths: saved.extend(paths))
    window.worker_thread.worker.sig_failed.connect(lambda message, _hint: failed.append(message))

    planners, real_plan = [], main_window_module.plan
    monkeypatch.setattr(main_window_module, "plan",
                        lambda *args: planners.append(threading.get_ident()) or real_plan(*args))

    with qtbot.waitSignal(window.sig_folder_queued, timeout=20_000) as planned:
        window.findChild(type(window.open_action), "repaintFolderAction").trigger()
    assert planned.args == [3] and len(planners) == 1 and threading.get_ident() not in planners  # hashed off the window
    queued = [window.queue_panel.list.item(row).text() for row in range(window.queue_panel.list.count())]
    assert queued == ["b-broken.jpg · seed 5 · “rainy street”", "bridge.png · seed 5 · “rainy street”"]
    assert [job.request[1] for job in window.session.queue] == [  # file paths only, read when the job starts
        BatchItem(folder / "b-broken.jpg", None), BatchItem(folder / "bridge.png", folder / "bridge.depth.png")]
    qtbot.waitUntil(lambda: len(saved) == 2 and not window.busy, timeout=90_000)
    assert failed == ["b-broken.jpg is damaged or incomplete: its pixels could not be decoded."]  # alone; the next ran
    assert len(threads) == 3 and threading.get_ident() not in threads

    records = {Path(read_record(path)["input"]["path"]).name: path for path in saved}
    assert sorted(records) == ["alley.png", "bridge.png"]
    assert np.array_equal(read_depth_levels(depth_path_for(records["bridge.png"])), supplied)
    assert not np.array_equal(read_depth_levels(depth_path_for(records["alley.png"])), supplied)  # estimated
    history = History()
    assert sorted(entry.path for entry in history.search("rainy street")) == sorted(str(path.resolve()) for path in saved)
    history.close()
    assert len(window.gallery_panel.list.findItems("5", Qt.MatchFlag.MatchExactly)) == 2

    with qtbot.waitSignal(window.sig_folder_queued, timeout=20_000) as planned:
        window.repaint_folder(folder)  # again: what is done is skipped, as `d2i batch` resumes
    assert planned.args == [1]
    assert "Skipped 2 image(s) of to-repaint already done" in window.notice.message()
    qtbot.waitUntil(lambda: not window.busy and not window.session.queue, timeout=60_000)
    assert len(saved) == 2


def test_a_folder_that_cannot_be_planned_queues_nothing_and_says_why(qtbot, window, make_photo, tmp_path):
    folder = tmp_path / "to-repaint"
    folder.mkdir()
    make_photo(64, 64, "alley.png").rename(folder / "alley.png")
    window.settings.setValue("output/dir", str(folder))
    with qtbot.waitSignal(window.sig_folder_queued, timeout=20_000) as planned:
        window.repaint_folder(folder)
    assert planned.args == [0] and window.session.queue == [] and not window.busy
    assert window.notice.level == "error" and "The output folder is the input folder." in window.notice.message()


def test_cancel_pressed_before_the_worker_starts_a_job_means_it_never_runs(qtbot, ready, tmp_path):
    """Generate then Esc at once, 20 times: whether the worker had started the job or not, it ends cancelled
    and leaves no picture; a job the worker had not reached yet never starts generating."""
    window = ready
    settings(window, "never", steps=50)
    results, cancelled = [], []
    worker = window.worker_thread.worker
    worker.sig_result.connect(results.append)
    worker.sig_cancelled.connect(lambda: cancelled.append(1))
    for attempt in range(20):
        window.generate()
        window.cancel()
        qtbot.waitUntil(lambda: not window.busy, timeout=30_000)
        assert len(cancelled) == attempt + 1
    assert results == [] and not list(window.output_dir().glob("*.png"))


@pytest.fixture
def idle_worker(engine):
    """A Worker living on this thread (not moved to one), so its signals arrive at once."""
    return worker_module.Worker(engine)


def test_a_job_cancelled_before_the_worker_reaches_it_is_never_run(idle_worker, tmp_path, monkeypatch):
    from d2i_desktop.core.generation.params import GenerationParams

    seen = []
    idle_worker.sig_job_started.connect(lambda job_id, what: seen.append("started"))
    idle_worker.sig_cancelled.connect(lambda: seen.append("cancelled"))
    idle_worker.sig_result.connect(lambda result: seen.append("result"))
    monkeypatch.setattr(idle_worker.engine, "generate", lambda *args, **kwargs: seen.append("generating"))
    idle_worker.cancel_tokens.cancel(9001)  # as the GUI does when Esc comes before the worker picks the job up
    image = Image.fromarray(np.full((64, 64, 3), 128, np.uint8))
    idle_worker.generate(9001, GenerationParams(prompt="never", steps=2), image, None,
                         worker_module.Output(tmp_path), None, None)
    assert seen == ["started", "cancelled"] and not list(tmp_path.iterdir())
    idle_worker.generate(9001, GenerationParams(prompt="again", steps=2), image, None,  # its token went with the job
                         worker_module.Output(tmp_path), None, None)
    assert seen[2:4] == ["started", "generating"]


def test_a_job_reaching_the_worker_after_the_window_closed_is_not_run(idle_worker):
    idle_worker.cancel_tokens.cancel_all()  # what closing the window does before the worker thread ends
    seen = []
    idle_worker.sig_cancelled.connect(lambda: seen.append("cancelled"))
    idle_worker.sig_depth_ready.connect(lambda *args: seen.append("depth"))
    image = Image.fromarray(np.full((64, 64, 3), 128, np.uint8))
    idle_worker.estimate_depth(9002, "key", image, DepthSettings())
    assert seen == ["cancelled"]


def shown_input(window):
    """The input picture on the canvas, as RGB bytes."""
    image = window.canvas.input_image.convertToFormat(window.canvas.input_image.Format.Format_RGB888)
    rows = np.array(image.constBits(), np.uint8).reshape(image.height(), image.bytesPerLine())
    return rows[:, :image.width() * 3].reshape(image.height(), image.width(), 3)


def test_a_result_is_shown_and_exported_beside_its_own_input(qtbot, ready, make_photo, tmp_path):
    window = ready
    dunes = np.asarray(window.session.image.image)
    saved = {}
    window.worker_thread.worker.sig_saved.connect(lambda job_id, paths: saved.update({job_id: paths}))
    previews = []  # (a preview came, it was drawn beside the harbour) for each step; the window's slot runs first
    window.worker_thread.worker.sig_step.connect(lambda info: previews.append(
        (info.preview is not None, window.session.image_name == "harbour.png" and window.canvas.result_image is not None)))
    settings(window, "dunes at dusk", steps=6, seed=21)
    window.generate()
    job_id = window.session.waiting[0].id  # sent to the idle worker at once
    assert window.open_image(make_photo(64, 64, "harbour.png", seed=8))  # before the job's result arrives
    qtbot.waitUntil(lambda: job_id in saved and not window.busy, timeout=60_000)
    assert any(came for came, _drawn in previews) and not any(drawn for _came, drawn in previews)

    # The open photo stays, with nothing beside it; the notice offers the picture with its own photo.
    assert window.session.image_path.endswith("harbour.png") and window.canvas.result_image is None
    assert "The picture made from dunes.png is ready" in window.notice.message()
    qtbot.mouseClick(window.notice.action, Qt.MouseButton.LeftButton)
    assert window.session.image_path.endswith("dunes.png") and np.array_equal(shown_input(window), dunes)
    assert window.result.params.prompt == "dunes at dusk" and window.canvas.result_image is not None
    exported = window.export_result(tmp_path / "export.png")
    assert exported.read_bytes() == saved[job_id][0].read_bytes()
    assert read_record(exported)["input"]["path"].endswith("dunes.png")

    folder = tmp_path / "to-repaint"  # a Repaint-a-folder job of another image, with the harbour open
    folder.mkdir()
    make_photo(64, 64, "alley.png", seed=1).rename(folder / "alley.png")
    assert window.open_image(make_photo(64, 64, "harbour.png", seed=8))
    with qtbot.waitSignal(window.sig_folder_queued, timeout=20_000) as planned:
        window.repaint_folder(folder)
    assert planned.args == [1]
    qtbot.waitUntil(lambda: len(saved) == 2 and not window.busy, timeout=60_000)
    folder_job = max(saved)
    assert window.session.image_path.endswith("harbour.png") and window.canvas.result_image is None
    qtbot.mouseClick(window.notice.action, Qt.MouseButton.LeftButton)
    assert window.session.image_path == str(folder / "alley.png")
    assert np.array_equal(shown_input(window), np.asarray(Image.open(folder / "alley.png").convert("RGB")))
    exported = window.export_result(tmp_path / "export-alley.png")
    assert exported.read_bytes() == saved[folder_job][0].read_bytes()
