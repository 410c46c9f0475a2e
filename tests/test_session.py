"""The session model on its own: image, depth with undo, results and jobs, without a window."""

import numpy as np
from PIL import Image
from PySide6.QtCore import QPointF

from d2i_desktop.core.files.images import prepare_image
from d2i_desktop.session import Session


def photo(seed=0):
    rng = np.random.default_rng(seed)
    return prepare_image(Image.fromarray(rng.integers(0, 255, (64, 80, 3), dtype=np.uint8)))


def test_a_new_image_forgets_the_depth_and_the_result():
    session = Session()
    session.open_image(photo(), "a.png")
    session.depth.load(np.ones((64, 80), np.float32), "Estimate depth", estimate_key=session.image_key)
    session.result = object()
    first_key = session.image_key
    session.open_image(photo(1), "b.png")
    assert session.image_name == "b.png" and session.image_key != first_key
    assert session.depth.depth is None and session.depth.history.count() == 0 and session.result is None


def test_depth_edits_undo_and_redo_with_their_names():
    session = Session()
    depth = session.depth
    depth.load(np.linspace(0, 1, 64 * 80, dtype=np.float32).reshape(64, 80), "Estimate depth", estimate_key="k")
    before = depth.depth.copy()
    depth.set_brush(kind="raise", size=16, strength=1.0)
    depth.begin_stroke(QPointF(40, 32))
    depth.continue_stroke(QPointF(50, 32))
    depth.end_stroke()
    assert depth.history.count() == 1 and depth.history.undo_text() == "Raise stroke" and depth.is_edited()
    depth.apply(lambda d: 1 - d, "Invert")
    assert depth.history.undo_text() == "Invert"
    depth.undo()
    depth.undo()
    np.testing.assert_array_equal(depth.depth, before)
    assert depth.history.redo_text() == "Raise stroke" and not depth.is_edited()
    depth.redo()
    assert depth.is_edited() and depth.history.count() == 1
    depth.apply(lambda d: d * 0.5, "Levels")  # a new edit drops what could be redone
    assert depth.history.redo_text() == ""


def test_a_mask_stroke_is_recorded_as_the_box_it_changed_and_clear_undoes_back_to_the_mask():
    session = Session()
    session.open_image(photo(), "a.png")
    mask = session.mask_to_paint()
    before = mask.copy()
    mask[10:20, 30:35] = 1
    session.record_mask(before, "Mask brush")
    session.record_mask(mask.copy(), "Mask brush")  # nothing painted: no step
    assert session.mask_history.count() == 1 and session.mask_history.take_undo().box == (10, 30, 20, 35)
    session.mask_history.take_redo()
    painted = mask.copy()
    session.set_mask(None, "Clear mask")
    assert session.mask is None
    session.undo_mask()
    np.testing.assert_array_equal(session.mask, painted)
    session.undo_mask()
    assert not session.mask.any() and session.mask_history.undo_text() == ""
    session.open_image(photo(1), "b.png")
    assert session.mask is None and session.mask_history.redo_text() == ""


def test_jobs_keep_the_session_busy_until_the_last_one_ends():
    session = Session()
    changes = []
    session.sig_jobs_changed.connect(lambda: changes.append(session.busy))
    model, depth = session.add_job("Loading model…"), session.add_job("Estimating depth…")
    assert model.id != depth.id and session.busy
    session.job_started(model.id)
    assert session.running == model and session.status() == "Loading model… (1 more waiting)"
    session.job_ended(model.id)
    assert session.busy and session.running is None  # the depth job still waits: never idle meanwhile
    session.job_started(depth.id)
    session.job_ended(depth.id)
    assert not session.busy and session.status() == "" and changes[-1] is False


def test_queued_generations_wait_their_turn_and_can_be_moved_or_taken_back():
    session = Session()
    first, second, third = (session.enqueue(f"seed {seed}", ("params", seed)) for seed in (1, 2, 3))
    assert not session.busy and [job.id for job in session.queue] == [first.id, second.id, third.id]
    assert session.move(third.id, -2) and [job.id for job in session.queue] == [third.id, first.id, second.id]
    assert not session.move(third.id, -1)  # already first
    assert session.take_back(first.id) == first and session.take_back(first.id) is None
    model = session.add_job("Loading model…")
    assert session.take_next() is None  # the worker is busy: the queue waits
    session.job_started(model.id)
    assert session.status() == "Loading model… (2 more waiting)"
    session.job_ended(model.id)
    job = session.take_next()
    assert job == third and job.request == ("params", 3) and session.busy and session.take_next() is None
    session.job_started(job.id)
    session.clear_queue()
    assert session.queue == [] and session.running == third
