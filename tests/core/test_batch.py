"""`d2i batch`: a folder repainted with the demo model, depth maps beside images, bad files, resume, summary, Ray."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from d2i_desktop.cli import main
from d2i_desktop.core.depth.maps import load_depth
from d2i_desktop.core.history.hashes import HashCache
from d2i_desktop.core.history.index import History
from d2i_desktop.core.history.record import depth_levels, read_depth_levels, read_record

SIZE = (64, 64)


@pytest.fixture
def folder(tmp_path, make_photo):
    """a.png with a.depth.npy, b.jpg with a 16-bit b.depth.png, c.png (depth estimated), a damaged d.png, a note."""
    folder = tmp_path / "in"
    folder.mkdir()
    for seed, name in enumerate(("a.png", "c.png")):
        make_photo(*SIZE, name=f"in/{name}", seed=seed)
    Image.open(make_photo(*SIZE, name="b.png", seed=2)).convert("RGB").save(folder / "b.jpg")
    ramp = np.linspace(0, 1, SIZE[0], dtype=np.float32)
    np.save(folder / "a.depth.npy", np.tile(ramp, (SIZE[1], 1)))
    Image.fromarray((np.tile(ramp[:, None], (1, SIZE[0])) * 65535).astype(np.uint16)).save(folder / "b.depth.png")
    (folder / "d.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (folder / "notes.txt").write_text("not an image")
    return folder


def batch(demo_model_dir, input_dir, out_dir, *more):
    return main(["batch", "--input-dir", str(input_dir), "--out-dir", str(out_dir), "--model", str(demo_model_dir),
                 "--prompt", "a hill", "--steps", "2", "--seed", "5", *more])


def test_batch_uses_depth_maps_skips_bad_images_and_resumes(demo_model_dir, folder, tmp_path, capsys):
    out = tmp_path / "out"
    assert batch(demo_model_dir, folder, out) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("4 images: 3 repainted (3 pictures), 0 already done, 1 failed, in ")
    assert captured.out.count("\n") == 1
    assert "[4/4] d.png: skipped: d.png is not an image this app can read." in captured.err
    assert "Traceback" not in captured.err
    pictures = sorted(path.name for path in out.glob("*.png") if not path.name.endswith(".depth.png"))
    assert pictures == ["a.png", "b.png", "c.png"]  # the depth files beside the images are no inputs

    hashes = HashCache()
    records = {name: read_record(out / f"{name}.png") for name in "abc"}
    for name, source in (("a", "a.png"), ("b", "b.jpg"), ("c", "c.png")):
        assert records[name]["input"]["sha256"] == hashes.sha256(folder / source)
        assert records[name]["seed"] == 5
    for name, depth_file in (("a", "a.depth.npy"), ("b", "b.depth.png")):  # the map beside the image was used
        expected = depth_levels(load_depth(folder / depth_file, SIZE)[0])
        assert np.array_equal(read_depth_levels(out / f"{name}.depth.png"), expected)
    horizontal, vertical = (read_depth_levels(out / f"{name}.depth.png").astype(int) for name in "ab")
    assert (np.diff(horizontal, axis=1) >= 0).all() and (np.diff(vertical, axis=0) >= 0).all()

    summary = json.loads((out / "batch-summary.json").read_text())
    assert summary["found"] == 4 and summary["complete"] and summary["already_done"] == [] and summary["ray"] is None
    assert summary["settings"]["steps"] == 2 and summary["settings"]["prompt"] == "a hill"
    assert [(item["input"], item["outputs"], item["seeds"]) for item in summary["made"]] == [
        (str(folder / source), [str(out / f"{name}.png")], [5]) for name, source in (("a", "a.png"), ("b", "b.jpg"), ("c", "c.png"))]
    assert [failure["input"] for failure in summary["failed"]] == [str(folder / "d.png")]
    assert "d.png" in summary["failed"][0]["error"]
    history = History()
    assert sorted(entry.path for entry in history.search()) == [str(out / f"{name}.png") for name in "abc"]
    history.close()

    # An interrupted run: b's picture is missing; a rerun makes only b, the same picture again.
    (out / "b.png").unlink()
    (out / "b.depth.png").unlink()
    a_written = (out / "a.png").stat().st_mtime_ns
    assert batch(demo_model_dir, folder, out) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("4 images: 1 repainted (1 pictures), 2 already done, 1 failed, in ")
    assert "4 images, 2 already done" in captured.err
    assert read_record(out / "b.png")["image"]["pixels_sha256"] == records["b"]["image"]["pixels_sha256"]
    assert (out / "a.png").stat().st_mtime_ns == a_written and not (out / "a-1.png").exists()
    summary = json.loads((out / "batch-summary.json").read_text())
    assert summary["already_done"] == [str(folder / "a.png"), str(folder / "c.png")]
    assert [item["input"] for item in summary["made"]] == [str(folder / "b.jpg")]


def test_batch_refuses_bad_folders_in_one_line(demo_model_dir, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "x.depth.png").write_bytes(b"")
    (empty / "readme.txt").write_text("no pictures")
    cases = (((tmp_path / "nowhere", tmp_path / "out"), "No folder at"),
             ((empty, tmp_path / "out"), "holds no images"),
             ((empty, empty), "The output folder is the input folder"))
    for (input_dir, out_dir), words in cases:
        assert batch(demo_model_dir, input_dir, out_dir) == 2
        err = capsys.readouterr().err
        assert words in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert batch(demo_model_dir, empty, tmp_path / "out", "--actors", "2") == 2
    assert "--actors needs --ray" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_ray_batch_makes_the_same_pictures_as_a_local_run(demo_model_dir, folder, tmp_path, capsys):
    ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'd2i-desktop[ray]'")
    (folder / "d.png").unlink()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each of the two actors on two cores: float sums are then done in the same order
    try:
        assert batch(demo_model_dir, folder, tmp_path / "here") == 0
    finally:
        torch.set_num_threads(threads)
    ray.init(num_cpus=2, include_dashboard=False, logging_level="warning")
    try:
        assert batch(demo_model_dir, folder, tmp_path / "ray", "--ray", "local", "--actors", "2") == 0
    finally:
        ray.shutdown()
    captured = capsys.readouterr()
    assert "2 actors on cpu" in captured.err
    assert captured.out.splitlines()[-1].startswith("3 images: 3 repainted (3 pictures), 0 already done, 0 failed")
    for name in "abc":
        here, there = read_record(tmp_path / "here" / f"{name}.png"), read_record(tmp_path / "ray" / f"{name}.png")
        assert there["image"]["pixels_sha256"] == here["image"]["pixels_sha256"]
        assert there["depth"]["sha256"] == here["depth"]["sha256"]
    summary = json.loads((tmp_path / "ray" / "batch-summary.json").read_text())
    assert summary["ray"] == "local" and summary["complete"] and len(summary["made"]) == 3
