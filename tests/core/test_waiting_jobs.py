"""The kept queue: jobs written with their files, read back in order, dropped with a note when their files are gone."""

import numpy as np
from PIL import Image

from d2i_desktop.core.generation.depth_origin import DepthOrigin
from d2i_desktop.core.generation.params import GenerationParams
from d2i_desktop.core.files.app_data import take_notices
from d2i_desktop.core.generation.waiting_jobs import WaitingJob, WaitingJobs


def test_jobs_come_back_in_order_with_their_arrays(tmp_path):
    kept = WaitingJobs(tmp_path / "app-data")
    photo = tmp_path / "photo.png"
    Image.new("RGB", (16, 16), "teal").save(photo)
    depth = np.linspace(0, 1, 256, dtype=np.float32).reshape(16, 16)
    mask = np.full((16, 16), 200, np.uint8)
    pasted = Image.new("RGB", (16, 16), "red")
    params = GenerationParams(prompt="first", seed=3, loras=(("ink", 0.6),))
    first = kept.keep_files(WaitingJob("first", params, photo, tmp_path / "out", str(photo),
                                       depth_origin=DepthOrigin.loaded("photo.depth.png")), None, depth, mask)
    second = kept.keep_files(WaitingJob("second", GenerationParams(prompt="second"), tmp_path, tmp_path / "out", None),
                             pasted, None, None)
    kept.save([first, second])

    jobs, notes = WaitingJobs(tmp_path / "app-data").load()
    assert notes == [] and jobs == [first, second]
    assert jobs[0].params.loras == (("ink", 0.6),) and jobs[0].depth_origin == DepthOrigin.loaded("photo.depth.png")
    assert np.array_equal(np.load(jobs[0].depth), depth)
    assert np.array_equal(np.asarray(Image.open(jobs[0].mask)), mask)
    assert jobs[1].input_path is None and np.array_equal(np.asarray(Image.open(jobs[1].image)), np.asarray(pasted))

    kept.save([second])  # the first left the queue: its files go with it
    assert not first.depth.exists() and second.image.exists()
    kept.discard()
    assert WaitingJobs(tmp_path / "app-data").load() == ([], []) and not second.image.exists()


def test_a_job_whose_files_are_gone_is_dropped_with_a_note(tmp_path):
    kept = WaitingJobs(tmp_path)
    photos = [tmp_path / "a.png", tmp_path / "b.png"]
    for photo in photos:
        Image.new("RGB", (8, 8)).save(photo)
    kept.save([WaitingJob(photo.name, GenerationParams(prompt=photo.stem), photo, tmp_path, str(photo)) for photo in photos])
    photos[0].unlink()

    jobs, notes = kept.load()
    assert [job.what for job in jobs] == ["b.png"]
    assert notes == [f"“a.png” was dropped: {photos[0]} is gone."]


def test_a_damaged_list_is_kept_aside_and_nothing_comes_back(tmp_path):
    (tmp_path / "waiting-jobs.json").write_text("[{half written")
    assert WaitingJobs(tmp_path).load() == ([], [])
    assert list(tmp_path.glob("waiting-jobs.json.corrupt-*"))
    notices = take_notices()  # what the window shows after its first job
    assert len(notices) == 1 and notices[0].startswith("The list of waiting jobs was damaged")
