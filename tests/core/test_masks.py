"""Repainting a region: masks on the demo model through the real pipeline, mask files, and d2i generate --mask."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from d2i_desktop.core.errors import ImageError
from d2i_desktop.core.history.record import mask_path_for, read_mask_levels, read_record
from d2i_desktop.core.generation.masks import LatentBlend, check_mask, feather, load_mask, save_mask
from d2i_desktop.core.files.outputs import parse_parameters, read_parameters
from d2i_desktop.core.generation.params import GenerationParams

WIDTH, HEIGHT = 96, 64


@pytest.fixture(scope="module")
def photo():
    return Image.fromarray(np.random.default_rng(3).integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def depth():
    return np.random.default_rng(4).random((HEIGHT, WIDTH), dtype=np.float32)


def box(top=16, bottom=48, left=32, right=72) -> np.ndarray:
    mask = np.zeros((HEIGHT, WIDTH), dtype=np.float32)
    mask[top:bottom, left:right] = 1
    return mask


def pixels(image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def fast(**overrides) -> GenerationParams:
    return GenerationParams(**({"prompt": "a brick wall", "steps": 5, "strength": 0.7, "seed": 11} | overrides))


@pytest.mark.parametrize("scheduler", ["DPM++ 2M Karras", "Euler a", "DDIM"])
def test_outside_the_mask_is_the_input_inside_is_repainted(demo_engine, photo, depth, scheduler):
    mask = feather(box(), 4)
    result = demo_engine.generate(fast(scheduler=scheduler, num_images=2), photo, depth, mask=mask)
    original = pixels(photo)
    for picture in map(pixels, result.images):
        assert np.array_equal(picture[mask == 0], original[mask == 0])
        assert np.abs(picture[mask == 1] - original[mask == 1]).mean() > 20
        band = (mask > 0) & (mask < 1)  # the feathered edge lies between the input and the repainted picture
        assert 0 < np.abs(picture[band] - original[band]).mean() < np.abs(picture[mask == 1] - original[mask == 1]).mean()
    assert result.extra["Mask"] == "True" and "Mask: True" in result.parameters_text(0)


def test_the_region_is_repainted_with_its_surroundings_in_view(demo_engine, photo, depth):
    """Inside the mask the picture is not the unmasked picture cut out: the kept input steers the denoising."""
    mask = box()
    plain = pixels(demo_engine.generate(fast(), photo, depth).images[0])
    masked = pixels(demo_engine.generate(fast(), photo, depth, mask=mask).images[0])
    assert np.abs(plain[mask == 1] - masked[mask == 1]).mean() > 3


def test_a_full_mask_gives_the_unmasked_picture(demo_engine, photo, depth):
    plain = demo_engine.generate(fast(), photo, depth)
    full = demo_engine.generate(fast(), photo, depth, mask=np.ones((HEIGHT, WIDTH), dtype=np.float32))
    assert np.abs(pixels(full.images[0]) - pixels(plain.images[0])).max() <= 1
    assert any("whole picture" in note for note in full.notes)


def test_bad_masks_are_refused_clearly(demo_engine, photo, depth):
    with pytest.raises(ImageError, match="empty"):
        demo_engine.generate(fast(), photo, depth, mask=np.zeros((HEIGHT, WIDTH), dtype=np.float32))
    with pytest.raises(ImageError, match="does not match"):
        demo_engine.generate(fast(), photo, depth, mask=np.ones((HEIGHT // 2, WIDTH), dtype=np.float32))
    with pytest.raises(ImageError, match="outside 0..1"):
        check_mask(box() * 2, (WIDTH, HEIGHT))


@pytest.mark.parametrize("scheduler", ["DDIM", "Euler"])
def test_latents_outside_are_the_input_noised_for_the_next_step(demo_engine, photo, depth, scheduler):
    """Against the schedulers' own formulas: after step i the latents outside the mask are the clean input
    latents plus the run's seeded noise at the level of timestep i + 1 (clean after the last step)."""
    pipe = demo_engine.pipe
    demo_engine._use_scheduler(scheduler)
    generator = torch.Generator("cpu").manual_seed(5)
    with torch.inference_mode():  # the pipeline draws the VAE sample first, then the noise, from the same generator
        clean = pipe.vae.encode(pipe.image_processor.preprocess(photo)).latent_dist.sample(generator)
        clean = clean * pipe.vae.config.scaling_factor
        noise = torch.randn(clean.shape, generator=generator)
    blend = LatentBlend(box())
    outside = blend.mask[0, 0] == 0
    seen = []

    def step_end(pipeline, i, t, tensors):
        latents = blend.apply(pipeline, i, tensors["latents"])
        seen.append((pipeline.scheduler.timesteps[-pipeline.num_timesteps:], latents))
        return {"latents": latents}

    with torch.inference_mode(), blend.watch(pipe):
        pipe(prompt="a wall", image=photo, depth_map=torch.from_numpy(depth)[None], strength=0.6, num_inference_steps=8,
             generator=[generator.manual_seed(5)], output_type="latent", callback_on_step_end=step_end)
    assert len(seen) == 4
    scheduler = pipe.scheduler
    for i, (timesteps, latents) in enumerate(seen):
        if i + 1 == len(seen):
            expected = clean
        elif scheduler.__class__.__name__ == "DDIMScheduler":
            alpha = scheduler.alphas_cumprod[int(timesteps[i + 1])]
            expected = alpha.sqrt() * clean + (1 - alpha).sqrt() * noise
        else:
            sigma = scheduler.sigmas[len(scheduler.timesteps) - len(timesteps) + i + 1]
            expected = clean + sigma * noise
        assert torch.allclose(latents[..., outside], expected[..., outside], atol=1e-4), f"step {i}"
        assert not torch.allclose(latents[..., ~outside], expected[..., ~outside], atol=1e-2)


def test_feather_is_soft_and_stays_within_its_band():
    mask = box()
    soft = feather(mask, 4)
    assert soft.dtype == np.float32 and soft.min() == 0 and soft.max() == 1
    row = soft[32]
    assert (row[:28] == 0).all() and (row[28:32] > 0).all() and (row[36:68] == 1).all() and (row[76:] == 0).all()
    assert (np.diff(row[26:38]) >= 0).all()
    assert np.array_equal(feather(mask, 0), mask)
    assert (feather(np.ones((20, 20)), 6) == 1).all()  # the picture's border is not an edge of the mask


def test_mask_file_round_trip(tmp_path):
    mask = feather(box(), 3)
    path = save_mask(mask, tmp_path / "mask.png")
    with Image.open(path) as image:
        assert image.mode == "L" and image.size == (WIDTH, HEIGHT)
    loaded, notes = load_mask(path, (WIDTH, HEIGHT))
    assert notes == () and loaded.dtype == np.float32
    assert np.abs(loaded - mask).max() <= 0.5 / 255 + 1e-7
    assert np.array_equal(save_and_load(loaded, tmp_path), loaded)  # 8-bit levels come back exactly


def save_and_load(mask, folder):
    return load_mask(save_mask(mask, folder / "again.png"), (WIDTH, HEIGHT))[0]


def test_mask_files_of_another_size_colour_or_with_transparency(tmp_path):
    Image.fromarray((box()[::2, ::2] * 255).astype(np.uint8)).save(tmp_path / "half.png")
    loaded, notes = load_mask(tmp_path / "half.png", (WIDTH, HEIGHT))
    assert loaded.shape == (HEIGHT, WIDTH) and notes == ("Resized the mask from 48x32 to 96x64 to match the image.",)
    assert loaded[32, 50] == 1 and loaded[2, 2] == 0
    rgba = np.zeros((HEIGHT, WIDTH, 4), dtype=np.uint8)
    rgba[..., :3] = 255
    rgba[..., 3] = (box() * 255).astype(np.uint8)  # white where opaque: transparent areas are kept
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    assert np.array_equal(load_mask(tmp_path / "alpha.png", (WIDTH, HEIGHT))[0], box())
    Image.new("RGB", (WIDTH, HEIGHT), "black").save(tmp_path / "empty.png")
    with pytest.raises(ImageError, match="empty.png is an empty mask"):
        load_mask(tmp_path / "empty.png", (WIDTH, HEIGHT))
    (tmp_path / "text.png").write_text("not a picture")
    with pytest.raises(ImageError):
        load_mask(tmp_path / "text.png", (WIDTH, HEIGHT))


def generate(demo_model_dir, photo_path, out, *extra):
    return subprocess.run([sys.executable, "-m", "d2i_desktop.cli", "generate", "--model", str(demo_model_dir),
                           "--image", str(photo_path), "--prompt", "a wall", "--steps", "2", "--seed", "1",
                           "--out", str(out), *extra], capture_output=True, text=True, timeout=300)


def test_cli_mask(demo_model_dir, make_photo, tmp_path):
    photo_path = make_photo(WIDTH, HEIGHT)
    save_mask(box(), tmp_path / "mask.png")
    done = generate(demo_model_dir, photo_path, tmp_path / "out.png", "--mask", str(tmp_path / "mask.png"), "--mask-blur", "4")
    assert done.returncode == 0, done.stderr
    picture = tmp_path / "out.png"
    used = read_mask_levels(mask_path_for(picture))
    assert np.array_equal(used, np.round(feather(box(), 4) * 255).astype(np.uint8))  # the feathered mask, as used
    record = read_record(picture)
    assert record["mask"]["width"] == WIDTH and json.dumps(record["mask"])
    assert parse_parameters(read_parameters(picture))["Mask"] == "True"
    keep = used == 0
    assert np.array_equal(pixels(Image.open(picture))[keep], pixels(Image.open(photo_path))[keep])


def test_cli_mask_errors_are_one_line(demo_model_dir, make_photo, tmp_path):
    photo_path = make_photo(WIDTH, HEIGHT)
    Image.new("L", (WIDTH, HEIGHT), 0).save(tmp_path / "empty.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    for name, message in (("empty.png", "empty mask"), ("missing.png", "missing.png"), ("broken.png", "broken.png")):
        done = generate(demo_model_dir, photo_path, tmp_path / "out.png", "--mask", str(tmp_path / name))
        assert done.returncode == 2, done.stderr
        errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and message in errors[0] and "Traceback" not in done.stderr
    done = generate(demo_model_dir, photo_path, tmp_path / "out.png", "--mask", str(tmp_path / "empty.png"), "--mask-blur", "-1")
    assert done.returncode == 2 and "--mask-blur" in done.stderr
    assert not (tmp_path / "out.png").exists()
