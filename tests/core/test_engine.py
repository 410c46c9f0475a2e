"""The engine on the demo model, through the real StableDiffusionDepth2ImgPipeline class."""

import shutil
import threading

import numpy as np
import pytest
from PIL import Image

from d2i_desktop.core.generation.engine import Engine, StepInfo
from d2i_desktop.core.errors import Cancelled, D2IError, ModelError, ParamError
from d2i_desktop.core.generation.params import SCHEDULERS, GenerationParams


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    rng = np.random.default_rng(7)
    gradient = np.linspace(0, 255, 96, dtype=np.float32)[None, :, None]
    pixels = np.clip(gradient + rng.normal(0, 20, (64, 96, 3)), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels)


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def fast(**overrides) -> GenerationParams:
    return GenerationParams(**({"prompt": "a watercolour harbour", "steps": 4, "seed": 1234} | overrides))


def test_loads_through_from_pretrained_and_reports_demo(demo_engine, demo_model_dir):
    info = demo_engine.info
    assert info.is_demo and info.label == "demo model (random weights)"
    assert info.device == "cpu" and info.dtype == "float32"
    assert demo_engine.pipe.unet.config.in_channels == 5
    assert type(demo_engine.pipe).__name__ == "StableDiffusionDepth2ImgPipeline"


def test_estimate_depth_is_float_at_image_size_and_cached(demo_engine, photo):
    depth = demo_engine.estimate_depth(photo)
    assert depth.shape == (photo.height, photo.width) and depth.dtype == np.float32
    assert np.isfinite(depth).all() and depth.max() > depth.min()
    depth[:] = 0  # the caller's copy must not alter the cache
    assert np.array_equal(demo_engine.estimate_depth(photo), demo_engine.estimate_depth(photo.copy()))
    assert demo_engine.estimate_depth(photo).max() > 0 or demo_engine.estimate_depth(photo).min() < 0


def test_same_seed_same_image_other_seed_other_image(demo_engine, photo):
    first = demo_engine.generate(fast(), photo)
    again = demo_engine.generate(fast(), photo)
    other = demo_engine.generate(fast(seed=4321), photo)
    assert first.seeds == [1234]
    assert first.images[0].size == photo.size
    assert np.array_equal(pixels(first.images[0]), pixels(again.images[0]))
    assert not np.array_equal(pixels(first.images[0]), pixels(other.images[0]))


def test_random_seed_is_reported_and_reproduces(demo_engine, photo):
    result = demo_engine.generate(fast(seed=-1), photo)
    seed = result.seeds[0]
    assert 0 <= seed < 2**31
    replay = demo_engine.generate(fast(seed=seed), photo)
    assert np.array_equal(pixels(result.images[0]), pixels(replay.images[0]))


def test_images_per_prompt_use_consecutive_seeds(demo_engine, photo):
    batch = demo_engine.generate(fast(num_images=2), photo)
    assert batch.seeds == [1234, 1235] and len(batch.images) == 2
    single = demo_engine.generate(fast(seed=1235), photo)
    # Batched convolutions may round differently from single ones; the picture is the same.
    assert np.abs(pixels(batch.images[1]) - pixels(single.images[0])).max() <= 2


def test_user_depth_map_is_used(demo_engine, photo):
    estimated = demo_engine.estimate_depth(photo)
    ramp = np.tile(np.linspace(0, 1, photo.width, dtype=np.float32), (photo.height, 1))
    with_estimate = demo_engine.generate(fast(), photo, estimated)
    default = demo_engine.generate(fast(), photo)
    with_ramp = demo_engine.generate(fast(), photo, ramp)
    with_inverted_ramp = demo_engine.generate(fast(), photo, 1 - ramp)
    assert np.array_equal(pixels(with_estimate.images[0]), pixels(default.images[0]))
    assert not np.array_equal(pixels(with_ramp.images[0]), pixels(default.images[0]))
    assert not np.array_equal(pixels(with_ramp.images[0]), pixels(with_inverted_ramp.images[0]))


def test_depth_map_of_another_resolution_is_accepted(demo_engine, photo):
    small = np.tile(np.linspace(0, 1, 24, dtype=np.float32), (16, 1))
    result = demo_engine.generate(fast(), photo, small)
    assert result.images[0].size == photo.size


@pytest.mark.parametrize("scheduler", list(SCHEDULERS))
def test_every_scheduler_generates_deterministically(demo_engine, photo, scheduler):
    steps = []
    first = demo_engine.generate(fast(scheduler=scheduler), photo, on_step=steps.append)
    again = demo_engine.generate(fast(scheduler=scheduler), photo)
    assert type(demo_engine.pipe.scheduler).__name__ == SCHEDULERS[scheduler][0]
    assert np.array_equal(pixels(first.images[0]), pixels(again.images[0]))
    assert steps and steps[-1].step == steps[-1].total


def test_scheduler_names_are_forgiving(demo_engine, photo):
    result = demo_engine.generate(fast(scheduler="euler_a"), photo)
    assert result.params.scheduler == "Euler a"
    assert "Sampler: Euler a" in result.parameters_text(0)


def test_progress_reports_every_step_with_previews(demo_engine, photo):
    steps: list[StepInfo] = []
    demo_engine.generate(fast(steps=10, strength=0.5), photo, on_step=steps.append)
    assert [s.step for s in steps] == [1, 2, 3, 4, 5]
    assert all(s.total == 5 for s in steps)
    preview = steps[0].preview
    assert preview.dtype == np.uint8 and preview.shape == (photo.height // 8, photo.width // 8, 3)
    assert all(b.elapsed >= a.elapsed for a, b in zip(steps, steps[1:]))


def test_cancel_mid_run_stops_within_one_step(demo_engine, photo):
    cancel = threading.Event()
    seen = []

    def on_step(info):
        seen.append(info.step)
        if info.step == 3:
            cancel.set()

    with pytest.raises(Cancelled):
        demo_engine.generate(fast(steps=40, strength=1.0), photo, on_step=on_step, cancel=cancel)
    assert seen == [1, 2, 3, 4] or seen == [1, 2, 3]  # the check runs at the end of the next step
    cancel.clear()
    assert demo_engine.generate(fast(), photo, cancel=cancel).images  # usable afterwards


def test_cancel_before_start_skips_depth_estimation(demo_engine, photo):
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        demo_engine.generate(fast(), photo.rotate(90, expand=True), cancel=cancel)
    with pytest.raises(Cancelled):
        demo_engine.estimate_depth(photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT), cancel)


@pytest.mark.parametrize("overrides, words", [
    ({"strength": 0.0}, "Strength 0 is outside (0, 1]"),
    ({"strength": 1.2}, "Strength 1.2 is outside (0, 1]"),
    ({"steps": 0}, "Steps 0 is outside"),
    ({"steps": 2, "strength": 0.3}, "leave no denoising step"),
    ({"guidance_scale": -1.0}, "Guidance scale -1 is outside"),
    ({"scheduler": "Karras Magic"}, "Unknown scheduler 'Karras Magic'"),
    ({"seed": -5}, "Seed -5 is outside"),
    ({"num_images": 0}, "Images per prompt 0"),
])
def test_out_of_range_parameters_are_refused_clearly(demo_engine, photo, overrides, words):
    with pytest.raises(ParamError) as raised:
        demo_engine.generate(fast(**overrides), photo)
    assert words in raised.value.message
    assert raised.value.hint


def test_size_not_multiple_of_eight_is_refused(demo_engine):
    with pytest.raises(D2IError, match="not a multiple of 8"):
        demo_engine.generate(fast(), Image.new("RGB", (100, 64)))


@pytest.mark.parametrize("bad_depth", [np.zeros((64, 96), np.float32), np.full((64, 96), np.nan, np.float32)])
def test_constant_or_invalid_depth_is_refused(demo_engine, photo, bad_depth):
    with pytest.raises(D2IError, match="constant or holds invalid values"):
        demo_engine.generate(fast(), photo, bad_depth)


def test_no_model_yet_gives_a_clear_message(photo):
    engine = Engine(device="cpu")
    with pytest.raises(ModelError, match="No model is loaded"):
        engine.generate(fast(), photo)
    with pytest.raises(ModelError, match="No model is loaded"):
        engine.estimate_depth(photo)


def test_missing_model_folder(tmp_path):
    with pytest.raises(ModelError, match="No model found"):
        Engine(device="cpu").load(tmp_path / "nowhere")


def test_folder_without_model_index(tmp_path):
    with pytest.raises(ModelError, match="not a diffusers model folder"):
        Engine(device="cpu").load(tmp_path)


def test_text_to_image_unet_is_refused(demo_model_dir, tmp_path):
    from diffusers import UNet2DConditionModel

    folder = tmp_path / "txt2img"
    shutil.copytree(demo_model_dir, folder)
    unet = UNet2DConditionModel.from_pretrained(folder / "unet")
    config = dict(unet.config) | {"in_channels": 4}
    UNet2DConditionModel.from_config(config).save_pretrained(folder / "unet")
    with pytest.raises(ModelError, match="takes 4 input channels"):
        Engine(device="cpu").load(folder)


def test_cuda_requested_without_cuda_is_clear():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ModelError, match="no CUDA GPU"):
        Engine(device="cuda")


def test_previews_are_throttled_but_first_and_last_always_come(demo_engine, photo):
    every: list[StepInfo] = []
    throttled: list[StepInfo] = []
    demo_engine.generate(fast(steps=12, strength=1.0), photo, on_step=every.append)
    demo_engine.generate(fast(steps=12, strength=1.0), photo, on_step=throttled.append, preview_interval=3600)
    assert all(s.preview is not None for s in every)
    assert [s.step for s in throttled if s.preview is not None] == [1, 12]
    assert [s.step for s in throttled] == list(range(1, 13))  # progress still reports every step
