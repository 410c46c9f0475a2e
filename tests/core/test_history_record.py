"""The record inside each output: written with the picture, read back, and enough to make the picture again."""

import hashlib
import json
import os

import numpy as np
import pytest
from PIL import Image

from d2i_desktop.core.history.hashes import HashCache
from d2i_desktop.core.history.record import (RECORD_KEY, RecordError, depth_levels, depth_path_for, depth_sha256,
                                             levels_to_depth, read_depth_levels, read_record, save_result)
from d2i_desktop.core.history.reproduce import reproduce
from d2i_desktop.core.files.images import load_image
from d2i_desktop.core.files.outputs import parse_parameters, read_parameters
from d2i_desktop.core.generation.params import GenerationParams


@pytest.fixture
def made(demo_engine, make_photo, tmp_path):
    """Two pictures of one run, saved with their records: (paths, records, input path)."""
    photo = make_photo(80, 64)
    image = load_image(photo).image
    levels = depth_levels(demo_engine.estimate_depth(image))
    result = demo_engine.generate(GenerationParams("a harbour at dusk", negative_prompt="blurry", steps=4, seed=77,
                                                   num_images=2), image, levels_to_depth(levels))
    saved = save_result(demo_engine, result, photo, image, levels, [tmp_path / "out" / "a.png", tmp_path / "out" / "b.png"])
    return [path for path, _ in saved], [record for _, record in saved], photo


def test_each_picture_carries_a_full_record_beside_its_automatic1111_text(made, demo_model_dir):
    paths, records, photo = made
    record = read_record(paths[1])
    assert record == records[1]
    assert parse_parameters(read_parameters(paths[1]))["Seed"] == "78"  # the AUTOMATIC1111 text is still there
    assert record["seed"] == 78 and record["batch"] == {"size": 2, "index": 1, "first_seed": 77}
    assert record["params"]["prompt"] == "a harbour at dusk" and record["params"]["negative_prompt"] == "blurry"
    assert record["model"]["demo"] is True
    unet = demo_model_dir / "unet" / "diffusion_pytorch_model.safetensors"
    assert record["model"]["files"]["unet/diffusion_pytorch_model.safetensors"] == hashlib.sha256(unet.read_bytes()).hexdigest()
    assert len(record["model"]["sha256"]) == 64
    assert record["input"]["sha256"] == hashlib.sha256(photo.read_bytes()).hexdigest()
    assert record["scheduler"]["name"] == "DPM++ 2M Karras"
    assert record["scheduler"]["class"] == "DPMSolverMultistepScheduler" and record["scheduler"]["config"]["use_karras_sigmas"]
    assert record["generator_device"] == "cpu" and record["device"]["type"] == "cpu" and record["precision"] == "fp32"
    assert record["performance"]["preset"] in ("balanced", "custom") and record["performance"]["effective"]["compile"]
    import diffusers, torch, transformers
    assert record["versions"].items() >= {"torch": torch.__version__, "diffusers": diffusers.__version__,
                                       "transformers": transformers.__version__}.items()
    assert records[0]["id"] != records[1]["id"]


def test_the_depth_map_used_is_kept_beside_the_picture_in_16_bits(made):
    paths, records, _ = made
    depth_file = depth_path_for(paths[0])
    assert depth_file.name == "a.depth.png"
    with Image.open(depth_file) as depth:
        assert depth.mode.startswith("I") and depth.size == (80, 64)
    levels = read_depth_levels(depth_file)
    assert levels.max() == 65535 and levels.min() == 0
    assert depth_sha256(levels) == records[0]["depth"]["sha256"]


def test_a_recorded_picture_is_made_again_bit_for_bit(made, demo_engine, tmp_path):
    paths, records, _ = made
    again = reproduce(paths[1], read_record(paths[1]), tmp_path / "again.png", engine=demo_engine)
    assert again.identical and again.max_difference == 0 and again.changed == ()
    assert again.saved.name == "again.png" and read_record(again.saved)["image"] == records[1]["image"]


def test_reproduction_names_what_changed_since(made, demo_engine, tmp_path):
    paths, _, _ = made
    record = read_record(paths[0])
    record["versions"]["torch"] = "1.0.0"
    record["model"]["sha256"] = "0" * 64
    again = reproduce(paths[0], record, tmp_path / "again.png", engine=demo_engine)
    assert again.identical
    assert any(line.startswith("torch version: 1.0.0 then") for line in again.changed)
    assert any(line.startswith("model weights (sha256)") for line in again.changed)
    assert "changed since: torch version" in again.summary()


def test_a_changed_depth_map_gives_a_different_picture_and_says_so(made, demo_engine, tmp_path):
    paths, _, _ = made
    depth_file = depth_path_for(paths[0])
    levels = read_depth_levels(depth_file)
    depth_file.unlink()
    Image.fromarray(np.ascontiguousarray(levels[::-1])).save(depth_file)  # an edited map
    again = reproduce(paths[0], read_record(paths[0]), tmp_path / "again.png", engine=demo_engine)
    assert not again.identical and again.max_difference > 0 and again.psnr < 100
    assert any(line.startswith("depth map:") for line in again.changed)


def test_missing_input_or_depth_map_is_a_clear_error(made, demo_engine, tmp_path):
    paths, _, photo = made
    depth_path_for(paths[0]).unlink()
    with pytest.raises(RecordError, match="depth map a.depth.png beside the picture is missing"):
        reproduce(paths[0], read_record(paths[0]), tmp_path / "x.png", engine=demo_engine)
    photo.unlink()
    with pytest.raises(RecordError, match="is no longer there"):
        reproduce(paths[1], read_record(paths[1]), tmp_path / "x.png", engine=demo_engine)


def test_pictures_without_or_with_a_damaged_record(tmp_path, make_photo):
    assert read_record(make_photo(16, 16)) is None
    from PIL.PngImagePlugin import PngInfo
    info = PngInfo()
    info.add_text(RECORD_KEY, "{not json")
    Image.new("RGB", (8, 8)).save(tmp_path / "bad.png", pnginfo=info)
    with pytest.raises(RecordError, match="The record in bad.png is damaged"):
        read_record(tmp_path / "bad.png")
    info = PngInfo()
    info.add_text(RECORD_KEY, json.dumps({"format": 99, "params": {}}))
    Image.new("RGB", (8, 8)).save(tmp_path / "new.png", pnginfo=info)
    with pytest.raises(RecordError, match="newer version"):
        read_record(tmp_path / "new.png")


def test_file_hashes_are_computed_once_per_file_version(tmp_path):
    cache = HashCache(tmp_path / "hashes.json")
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"a" * 1000)
    first = cache.sha256(weights)
    assert first == hashlib.sha256(b"a" * 1000).hexdigest()
    stat = weights.stat()
    weights.write_bytes(b"b" * 1000)  # same size; same time put back: the cached digest is used
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert HashCache(tmp_path / "hashes.json").sha256(weights) == first
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert cache.sha256(weights) == hashlib.sha256(b"b" * 1000).hexdigest()
