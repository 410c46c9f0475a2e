"""Seamless tiles: circular padding in the UNet and VAE, on the demo model through the real pipeline and CLI."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from d2i_desktop.core.files.outputs import parse_parameters, read_parameters
from d2i_desktop.core.generation.params import GenerationParams, params_from_fields, parameters_text
from d2i_desktop.core.generation.tiling import seamless


@pytest.fixture(scope="module")
def photo():
    return Image.fromarray(np.random.default_rng(3).integers(0, 255, (128, 128, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def depth():
    return np.random.default_rng(4).random((128, 128), dtype=np.float32)


def run(engine, photo, depth, tile, **kwargs):
    params = GenerationParams("a brick wall", steps=4, strength=1.0, seed=5, num_images=4, tile=tile, **kwargs)
    return np.stack([np.asarray(image, dtype=np.float64) for image in engine.generate(params, photo, depth).images])


def seam_ratio(pictures: np.ndarray) -> float:
    """How far apart the last and first columns are, against neighbouring columns inside.

    The decoder paints 8x8 blocks, so the wrap (a block edge) is compared with the other block edges.
    """
    steps = np.abs(np.diff(pictures, axis=2)).mean(axis=(0, 1, 3))
    return float(np.abs(pictures[:, :, -1] - pictures[:, :, 0]).mean() / steps[7::8].mean())


def test_networks_wrap_around(engine):
    """With tiling, shifting the input around the edge shifts the output the same way; without, the edges differ."""
    pipe = engine.pipe
    latents, noisy = torch.randn(1, 4, 16, 16), torch.randn(1, 5, 16, 16)
    text = torch.randn(1, 77, pipe.unet.config.cross_attention_dim)
    errors = {}
    with torch.inference_mode():
        for tile in (False, True):
            with seamless(pipe, tile):
                decode = lambda z: pipe.vae.decode(z).sample  # noqa: E731
                unet = lambda x: pipe.unet(x, torch.tensor(500), text).sample  # noqa: E731
                errors[tile] = (
                    (decode(torch.roll(latents, 8, dims=3)) - torch.roll(decode(latents), 64, dims=3)).abs().max(),
                    (unet(torch.roll(noisy, (8, 8), dims=(2, 3))) - torch.roll(unet(noisy), (8, 8), dims=(2, 3))).abs().max(),
                )
    assert max(errors[True]) < 1e-4
    assert min(errors[False]) > 0.1


def test_tiles_wrap_left_right_and_top_bottom(engine, photo, depth):
    plain, tiled = run(engine, photo, depth, False), run(engine, photo, depth, True)
    assert seam_ratio(tiled) < 1.15 and seam_ratio(tiled.transpose(0, 2, 1, 3)) < 1.15
    assert seam_ratio(plain) > 1.2 and seam_ratio(plain.transpose(0, 2, 1, 3)) > 1.2  # the measure sees a seam


def test_tiling_is_undone_exactly(engine, photo, depth):
    before = run(engine, photo, depth, False)
    run(engine, photo, depth, True)
    assert np.array_equal(run(engine, photo, depth, False), before)
    modes = {conv.padding_mode for model in (engine.pipe.unet, engine.pipe.vae) for conv in model.modules()
             if isinstance(conv, torch.nn.Conv2d)}
    assert modes == {"zeros"}


def test_tiling_is_recorded_and_read_back():
    params = GenerationParams("a wall", tile=True)
    text = parameters_text(params, 5, (64, 64), "demo")
    assert "Tiling: True" in text
    assert "Tiling" not in parameters_text(GenerationParams("a wall"), 5, (64, 64), "demo")
    assert params_from_fields(parse_parameters(text), GenerationParams("x"))[0].tile
    assert GenerationParams.from_json(params.to_json()) == params


def test_cli_tile(demo_model_dir, make_photo, tmp_path):
    out = tmp_path / "tile.png"
    done = subprocess.run([sys.executable, "-m", "d2i_desktop.cli", "generate", "--model", str(demo_model_dir),
                           "--image", str(make_photo(64, 64)), "--prompt", "a wall", "--steps", "2", "--seed", "1",
                           "--tile", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert parse_parameters(read_parameters(out))["Tiling"] == "True"
