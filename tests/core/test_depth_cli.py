"""The depth workspace's headless side: `d2i depth` to .npy, and `d2i generate --depth-bright`."""

import subprocess
import sys

import numpy as np
from PIL import Image


def d2i(*args):
    return subprocess.run([sys.executable, "-m", "d2i_desktop.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


def test_depth_to_npy_keeps_float_precision(demo_model_dir, tmp_path):
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(4).integers(0, 255, (64, 80, 3), dtype=np.uint8)).save(photo)
    run = d2i("depth", "--model", demo_model_dir, "--image", photo, "--out", tmp_path / "depth.npy")
    assert run.returncode == 0, run.stderr
    depth = np.load(tmp_path / "depth.npy")
    assert depth.dtype == np.float32 and depth.shape == (64, 80)
    assert depth.min() == 0 and depth.max() == 1 and len(np.unique(depth)) > 1000  # more levels than 8 bits hold


def test_generate_reads_a_z_pass_as_distances_and_says_so(demo_model_dir, tmp_path):
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(5).integers(0, 255, (64, 80, 3), dtype=np.uint8)).save(photo)
    z = np.full((64, 80), 30.0, dtype=np.float32)
    z[10:50, 20:60] = 3.0
    Image.fromarray(z).save(tmp_path / "z.tif")
    run = d2i("generate", "--model", demo_model_dir, "--image", photo, "--prompt", "a box", "--steps", "2",
              "--seed", "1", "--depth", tmp_path / "z.tif", "--out", tmp_path / "out.png")
    assert run.returncode == 0, run.stderr
    assert "note: Assumed bright = far" in run.stderr and "inverse depth" in run.stderr
    run = d2i("generate", "--model", demo_model_dir, "--image", photo, "--prompt", "a box", "--steps", "2",
              "--depth-bright", "sideways", "--depth", tmp_path / "z.tif", "--out", tmp_path / "out.png")
    assert run.returncode == 2 and "--depth-bright" in run.stderr and "Traceback" not in run.stderr
