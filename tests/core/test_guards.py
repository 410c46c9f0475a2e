"""Invalid values and out-of-memory errors, injected into the real demo pipeline on the CPU.

NaN and infinity are injected with forward hooks on the real modules (UNet, VAE decoder, depth
estimator); memory errors by raising torch.OutOfMemoryError (as CUDA does) or MemoryError from
the same places. No GPU exists here, so a CUDA out-of-memory error is raised, not provoked.
"""

import contextlib
import weakref

import numpy as np
import pytest
import torch
from PIL import Image

from d2i_desktop.core.speed.acceleration import PRESETS, PerformanceSettings
from d2i_desktop.core.generation.engine import Engine
from d2i_desktop.core.generation.guards import InvalidValues, OutOfMemory
from d2i_desktop.core.generation.params import GenerationParams


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return Image.fromarray(np.random.default_rng(21).integers(0, 255, (64, 64, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def bf16_engine(demo_model_dir) -> Engine:
    engine = Engine(device="cpu", dtype="bf16")
    engine.load(demo_model_dir)
    return engine


def params(**overrides) -> GenerationParams:
    return GenerationParams(**({"prompt": "a quiet street", "steps": 4, "seed": 5, "scheduler": "DDIM"} | overrides))


def pixels(result) -> np.ndarray:
    return np.asarray(result.images[0], dtype=np.int16)


@contextlib.contextmanager
def hooked(module: torch.nn.Module, hook):
    handle = module.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def nan_output(_module, _inputs, output):
    return torch.full_like(output, float("nan"))


def raising(error: BaseException):
    def hook(_module, _inputs, _output):
        raise error
    return hook


# -- invalid values --------------------------------------------------------------------------------
def test_nan_from_the_unet_fails_clearly_and_the_next_run_works(demo_engine, photo):
    depth = demo_engine.estimate_depth(photo)
    reference = pixels(demo_engine.generate(params(), photo, depth))
    with hooked(demo_engine.pipe.unet.conv_out, nan_output), pytest.raises(InvalidValues) as caught:
        demo_engine.generate(params(), photo, depth)
    assert "invalid values" in caught.value.message and "generating" in caught.value.message
    assert "model file" in caught.value.hint and caught.value.fix is None  # fp32 with no fast path: the file is left
    assert np.array_equal(pixels(demo_engine.generate(params(), photo, depth)), reference)


def test_infinity_in_half_precision_offers_fp32_as_the_fix(bf16_engine, photo):
    depth = bf16_engine.estimate_depth(photo)

    def infinite(_module, _inputs, output):
        return output.masked_fill(torch.zeros_like(output, dtype=torch.bool).index_fill_(-1, torch.tensor([0]), True),
                                  float("inf"))

    with hooked(bf16_engine.pipe.unet.conv_out, infinite), pytest.raises(InvalidValues) as caught:
        bf16_engine.generate(params(), photo, depth)
    fix = caught.value.fix
    assert fix.label == "Use fp32 precision" and "bfloat16 precision" in caught.value.hint
    assert "--precision fp32" in caught.value.hint
    settings = PRESETS["balanced"].with_fix(fix)
    assert settings.precision == "fp32" and settings.compile == PRESETS["balanced"].compile


def test_a_fast_setting_on_fp32_is_the_fix_offered(demo_model_dir, photo):
    engine = Engine(device="cpu")
    engine.set_performance(PRESETS["fastest"])
    engine.load(demo_model_dir)
    with hooked(engine.pipe.unet.conv_out, nan_output), pytest.raises(InvalidValues) as caught:
        engine.generate(params(), photo, np.eye(64, dtype=np.float32))
    fix = caught.value.fix
    assert fix.label == "Turn the speed options off"
    plain = PRESETS["fastest"].with_fix(fix)
    assert (plain.compile, plain.fuse_qkv, plain.channels_last) == ("off", False, False)


def test_a_half_precision_vae_overflow_is_decoded_again_in_fp32_and_said(bf16_engine, photo):
    depth = bf16_engine.estimate_depth(photo)

    def nan_in_bf16(_module, _inputs, output):
        return torch.full_like(output, float("nan")) if output.dtype == torch.bfloat16 else None

    with hooked(bf16_engine.pipe.vae.decoder.conv_out, nan_in_bf16):
        result = bf16_engine.generate(params(), photo, depth)
    assert result.notes == ("The VAE gave invalid values in bfloat16; the picture was decoded again in fp32.",)
    assert pixels(result).std() > 0
    assert bf16_engine.pipe.vae.dtype == torch.bfloat16
    assert bf16_engine.generate(params(), photo, depth).notes == ()


def test_a_vae_that_fails_in_fp32_too_gives_no_picture(bf16_engine, photo):
    with hooked(bf16_engine.pipe.vae.decoder.conv_out, nan_output), pytest.raises(InvalidValues) as caught:
        bf16_engine.generate(params(), photo, np.eye(64, dtype=np.float32))
    assert "VAE" in caught.value.message and bf16_engine.pipe.vae.dtype == torch.bfloat16


def test_invalid_depth_estimate_is_refused(demo_model_dir, photo):
    engine = Engine(device="cpu")
    engine.load(demo_model_dir)
    with hooked(engine.pipe.depth_estimator, lambda _m, _i, output: (setattr(output, "predicted_depth",
                                                                             output.predicted_depth * float("nan")),
                                                                     output)[1]):
        with pytest.raises(InvalidValues, match="depth estimator"):
            engine.estimate_depth(photo)
    assert np.isfinite(engine.estimate_depth(photo)).all()


def test_the_command_line_exits_2_with_one_line_and_saves_nothing(demo_model_dir, make_photo, tmp_path, capsys,
                                                                 monkeypatch):
    from d2i_desktop.cli import main

    load = Engine.load

    def load_with_nan(self, *args, **kwargs):
        info = load(self, *args, **kwargs)
        self.pipe.unet.conv_out.register_forward_hook(nan_output)
        return info

    monkeypatch.setattr(Engine, "load", load_with_nan)
    out = tmp_path / "out" / "result.png"
    code = main(["generate", "--model", str(demo_model_dir), "--image", str(make_photo(64, 64)), "--prompt", "a hill",
                 "--steps", "3", "--device", "cpu", "--out", str(out)])
    assert code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "invalid values" in errors[0]
    assert not out.parent.exists() or not any(out.parent.iterdir())


# -- out of memory ---------------------------------------------------------------------------------
CUDA_OOM = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


@pytest.mark.parametrize("where, error, stage", [
    ("unet", CUDA_OOM, "generating"),
    ("unet", MemoryError(), "generating"),
    ("vae", CUDA_OOM, "decoding the picture"),
    ("vae", MemoryError(), "decoding the picture"),
])
def test_out_of_memory_while_generating_is_explained_and_the_next_run_works(demo_engine, photo, where, error, stage):
    depth = demo_engine.estimate_depth(photo)
    reference = pixels(demo_engine.generate(params(), photo, depth))
    module = demo_engine.pipe.unet.conv_out if where == "unet" else demo_engine.pipe.vae.decoder.conv_out
    held = []

    def hold_and_fail(_module, _inputs, _output):
        tensor = torch.ones(1024, 1024)  # what a failed step holds: released with the failure, not kept by the error
        held.append(weakref.ref(tensor))
        raise error

    with hooked(module, hold_and_fail), pytest.raises(OutOfMemory) as caught:
        demo_engine.generate(params(), photo, depth)
    gpu = isinstance(error, torch.OutOfMemoryError)
    assert caught.value.message == f"The {'GPU' if gpu else 'computer'} ran out of memory while {stage}."
    assert caught.value.hint and (caught.value.fix is not None) == gpu
    assert held and held[0]() is None
    assert np.array_equal(pixels(demo_engine.generate(params(), photo, depth)), reference)


def test_out_of_memory_while_estimating_depth(demo_model_dir, photo):
    engine = Engine(device="cpu")
    engine.load(demo_model_dir)
    with hooked(engine.pipe.depth_estimator, raising(MemoryError())), pytest.raises(OutOfMemory) as caught:
        engine.estimate_depth(photo)
    assert caught.value.message == "The computer ran out of memory while estimating depth."
    assert "depth map" in caught.value.hint
    assert engine.estimate_depth(photo).shape == (64, 64)


def test_out_of_memory_while_loading_leaves_no_model_and_a_retry_works(demo_model_dir, demo_engine, photo, monkeypatch):
    from diffusers import StableDiffusionDepth2ImgPipeline

    engine = Engine(device="cpu")
    engine.load(demo_model_dir)
    move = StableDiffusionDepth2ImgPipeline.to

    def out_of_memory(*_args, **_kwargs):
        raise CUDA_OOM

    monkeypatch.setattr(StableDiffusionDepth2ImgPipeline, "to", out_of_memory)
    with pytest.raises(OutOfMemory) as caught:
        engine.load(demo_model_dir)
    assert caught.value.message == "The GPU ran out of memory while loading the model."
    assert caught.value.fix.preset == "low VRAM" and "low VRAM" in caught.value.hint
    assert engine.pipe is None and engine.info is None
    monkeypatch.setattr(StableDiffusionDepth2ImgPipeline, "to", move)
    engine.load(demo_model_dir)
    depth = np.eye(64, dtype=np.float32)
    assert np.array_equal(pixels(engine.generate(params(), photo, depth)), pixels(demo_engine.generate(params(), photo, depth)))


def test_fixes_apply_to_any_settings():
    from d2i_desktop.core.generation.guards import LOW_VRAM_FIX

    mine = PerformanceSettings(device="cpu", precision="fp16", attention_slicing=True)
    low = mine.with_fix(LOW_VRAM_FIX)
    assert low.preset == "low VRAM" and (low.device, low.precision) == ("cpu", "fp16")
