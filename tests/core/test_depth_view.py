"""What the model sees of a depth map, and the parallax view."""

import numpy as np
import pytest
import torch
from PIL import Image

from d2i_desktop.core.depth.view import model_view, parallax


def _depth(height=96, width=128, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((height, width)) * 7 + np.linspace(0, 20, width)[None, :]).astype(np.float32)


def test_model_view_equals_the_pipelines_own_preparation(demo_engine):
    pipe = demo_engine.pipe
    image = Image.new("RGB", (128, 96))
    depth = _depth()
    prepared = pipe.prepare_depth_map(image, torch.from_numpy(depth)[None], batch_size=1,
                                      do_classifier_free_guidance=False, dtype=torch.float32,
                                      device=torch.device("cpu"))
    seen = model_view(depth, image.size, latent_scale=pipe.vae_scale_factor)
    assert seen.shape == (96 // pipe.vae_scale_factor, 128 // pipe.vae_scale_factor)
    np.testing.assert_allclose(seen, prepared[0, 0].numpy(), atol=1e-6)


def test_only_the_relative_shape_reaches_the_model():
    depth = _depth()
    seen = model_view(depth)
    assert seen.min() == pytest.approx(-1) and seen.max() == pytest.approx(1)
    np.testing.assert_allclose(model_view(depth * 3 + 100), seen, atol=1e-5)  # brightness and contrast vanish


def test_model_view_of_a_constant_map_is_flat():
    assert not model_view(np.full((64, 64), 2.0, dtype=np.float32)).any()


def test_parallax_moves_near_pixels_and_keeps_mid_depth_still():
    image = np.zeros((40, 60, 3), dtype=np.uint8)
    image[:, 30] = 255  # a white column
    depth = np.full((40, 60), 0.5, dtype=np.float32)
    assert np.array_equal(parallax(image, depth, 10, 0), image)  # mid depth: no motion
    depth[:, 20:40] = 1.0  # a near band under the column
    moved = parallax(image, depth, 10, 0)
    assert (moved[:, 35] == 255).all() and (moved[:, 30] == 0).all()  # shifted right by 0.5 * 10 px
    depth[:, 20:40] = 0.0  # a far band: the column moves the other way
    assert (parallax(image, depth, 10, 0)[:, 25] == 255).all()


def test_parallax_without_offset_is_the_image():
    image = np.random.default_rng(0).integers(0, 255, (32, 48, 3), dtype=np.uint8)
    assert np.array_equal(parallax(image, np.random.default_rng(1).random((32, 48)).astype(np.float32), 0, 0), image)
