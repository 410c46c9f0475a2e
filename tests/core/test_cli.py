"""The `d2i` command line, run as a user would: a real process, real files."""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from d2i_desktop.core.files.outputs import parse_parameters, read_parameters


def d2i(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "d2i_desktop.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


@pytest.fixture
def photo_file(make_photo):
    return make_photo(100, 72, "photo.png", seed=3)


def test_generate_writes_png_with_a1111_metadata_and_never_overwrites(demo_model_dir, photo_file, tmp_path):
    out = tmp_path / "out.png"
    out.write_bytes(b"precious")
    run = d2i("generate", "--model", demo_model_dir, "--image", photo_file, "--prompt", "a stone bridge, dusk",
              "--negative", "blurry", "--steps", "4", "--seed", "77", "--scheduler", "euler a", "--out", out)
    assert run.returncode == 0, run.stderr
    assert out.read_bytes() == b"precious"
    written = tmp_path / "out-1.png"
    assert run.stdout.split("\t")[0] == str(written)
    assert "step 3/3" in run.stderr and "Traceback" not in run.stderr
    assert "demo model (random weights)" in run.stderr
    image = Image.open(written)
    assert image.size == (104, 72)  # 100 wide snaps to the nearest multiple of 8
    fields = parse_parameters(read_parameters(written))
    assert fields["prompt"] == "a stone bridge, dusk" and fields["negative_prompt"] == "blurry"
    assert fields["Seed"] == "77" and fields["Sampler"] == "Euler a" and fields["Steps"] == "4"
    assert fields["Model"] == "demo model (random weights)" and fields["Denoising strength"] == "0.8"


def test_generate_with_a_user_depth_map(demo_model_dir, photo_file, tmp_path):
    depth = tmp_path / "depth.npy"
    np.save(depth, np.tile(np.linspace(0, 1, 50, dtype=np.float32), (36, 1)))
    run = d2i("generate", "--model", demo_model_dir, "--image", photo_file, "--prompt", "p", "--steps", "2",
              "--strength", "1", "--depth", depth, "--out", tmp_path / "with-depth.png")
    assert run.returncode == 0, run.stderr
    assert "Resized" in run.stderr  # the map of another size is scaled, and the user is told
    assert (tmp_path / "with-depth.png").is_file()


def test_depth_writes_16_bit_png(demo_model_dir, photo_file, tmp_path):
    out = tmp_path / "depth.png"
    run = d2i("depth", "--model", demo_model_dir, "--image", photo_file, "--out", out)
    assert run.returncode == 0, run.stderr
    depth = Image.open(out)
    assert depth.mode.startswith("I;16") or depth.mode == "I"
    assert depth.size == (104, 72)
    values = np.asarray(depth)
    assert values.max() > 255  # real 16-bit range, not 8-bit values in a 16-bit file


def test_make_demo_model(tmp_path):
    run = d2i("make-demo-model", tmp_path / "demo")
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "demo" / "model_index.json").is_file()
    assert (tmp_path / "demo" / "unet" / "diffusion_pytorch_model.safetensors").is_file()


@pytest.mark.parametrize("args, words", [
    (["--strength", "1.5"], "Strength 1.5 is outside (0, 1]"),
    (["--steps", "0"], "Steps 0 is outside"),
    (["--guidance", "-2"], "Guidance scale -2 is outside"),
    (["--scheduler", "nope"], "Unknown scheduler 'nope'"),
    (["--steps", "many"], "invalid int value"),
])
def test_bad_parameters_exit_2_with_one_line(demo_model_dir, photo_file, tmp_path, args, words):
    run = d2i("generate", "--model", demo_model_dir, "--image", photo_file, "--prompt", "p", *args,
              "--out", tmp_path / "x.png")
    assert run.returncode == 2
    assert words in run.stderr
    assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("content, words", [(b"", "empty"), (b"not an image at all", "not an image")])
def test_bad_image_files_exit_2(demo_model_dir, tmp_path, content, words):
    bad = tmp_path / "bad.png"
    bad.write_bytes(content)
    run = d2i("depth", "--model", demo_model_dir, "--image", bad, "--out", tmp_path / "d.png")
    assert run.returncode == 2
    assert words in run.stderr.lower() and "Traceback" not in run.stderr


def test_missing_model_exits_2(photo_file, tmp_path):
    run = d2i("depth", "--model", tmp_path / "no-model", "--image", photo_file, "--out", tmp_path / "d.png")
    assert run.returncode == 2
    assert "No model found" in run.stderr and "Traceback" not in run.stderr
