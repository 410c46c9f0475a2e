"""Performance settings and the reuse caches, on the demo model through the real pipeline class (CPU).

No CUDA exists here: the CUDA-only options are checked for their stated fallbacks, and the
background-compile router is exercised with torch.compile's cheap "aot_eager" backend instead of
inductor (which takes over a minute to compile even the demo UNet on two CPU cores).
"""

import dataclasses

import numpy as np
import pytest
import torch
from diffusers.models.attention_processor import AttnProcessor2_0, FusedAttnProcessor2_0, SlicedAttnProcessor
from PIL import Image

from d2i_desktop.core.speed.acceleration import (
    PRESETS, PerformanceSettings, SettingsError, adapter_signature, apply_performance, has_adapters,
)
from d2i_desktop.core.generation.engine import Engine
from d2i_desktop.core.generation.params import GenerationParams
from d2i_desktop.core.generation.preview import latents_to_rgb
from d2i_desktop.core.speed.unet_accel import UNetAccelerator


@pytest.fixture(autouse=True)
def balanced(engine):
    engine.set_performance(PRESETS["balanced"])
    yield
    engine.set_performance(PRESETS["balanced"])


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    rng = np.random.default_rng(3)
    return Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))


def params(**overrides) -> GenerationParams:
    return GenerationParams(**({"prompt": "a stone bridge in fog", "steps": 4, "seed": 77, "scheduler": "DDIM"} | overrides))


def pixels(result) -> np.ndarray:
    return np.asarray(result.images[0], dtype=np.int16)


def processors(engine) -> set[type]:
    return {type(p) for p in engine.pipe.unet.attn_processors.values()}


# -- settings ------------------------------------------------------------------------------------
def test_defaults_are_the_balanced_preset_and_presets_are_recognised():
    assert PerformanceSettings() == PRESETS["balanced"]
    assert PerformanceSettings().preset == "balanced"
    mine = PerformanceSettings(device="cpu", precision="fp32")
    fastest = mine.with_preset("fastest")
    assert (fastest.device, fastest.precision, fastest.compile) == ("cpu", "fp32", "torch-compile")
    assert fastest.preset == "fastest"
    assert dataclasses.replace(fastest, vae_tiling=True).preset == "custom"
    low = mine.with_preset("low VRAM")
    assert low.offload == "model" and low.vae_slicing and low.vae_tiling
    assert not low.attention_slicing  # SDPA's memory-efficient kernels do better than slicing


def test_settings_round_trip_through_stored_strings():
    settings = PRESETS["low VRAM"]
    stored = {key: (("true" if value else "false") if isinstance(value, bool) else value)
              for key, value in settings.to_dict().items()}
    assert PerformanceSettings.from_dict(stored | {"unknown": "x"}) == settings
    assert PerformanceSettings.from_dict({}) == PerformanceSettings()


@pytest.mark.parametrize("field, value", [("compile", "turbo"), ("offload", "disk"), ("attention", "flash"),
                                          ("precision", "fp8")])
def test_unknown_values_are_refused_clearly(field, value):
    with pytest.raises(SettingsError) as caught:
        PerformanceSettings(**{field: value}).validated()
    assert value in caught.value.message and "Choose one of" in caught.value.hint
    with pytest.raises(SettingsError):
        PerformanceSettings().with_preset("warp speed")


# -- applying them -------------------------------------------------------------------------------
def test_low_memory_options_slice_and_tile_and_state_why_offload_is_off(engine):
    report = engine.set_performance(dataclasses.replace(PRESETS["low VRAM"], attention_slicing=True))
    assert processors(engine) == {SlicedAttnProcessor}
    assert engine.pipe.vae.use_slicing and engine.pipe.vae.use_tiling
    assert report.effective.offload == "none" and report.requested.offload == "model"
    assert any(note.startswith("offload:") and "CUDA" in note for note in report.fallbacks)
    assert "attention slicing" in report.applied and "VAE tiling" in report.summary()

    report = engine.set_performance(PRESETS["balanced"])  # everything switches back
    assert processors(engine) == {AttnProcessor2_0}
    assert not engine.pipe.vae.use_slicing and not engine.pipe.vae.use_tiling


def test_fastest_preset_on_cpu_fuses_and_goes_channels_last_but_does_not_compile(engine):
    report = engine.set_performance(PRESETS["fastest"])
    assert processors(engine) == {FusedAttnProcessor2_0}
    assert engine.pipe.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    assert report.effective.compile == "off" and engine.accelerator is None
    assert any(note.startswith("compile:") and "CUDA only" in note for note in report.fallbacks)
    engine.set_performance(PRESETS["balanced"])
    assert engine.pipe.unet.conv_in.weight.is_contiguous()


@pytest.mark.parametrize("settings, option, reason", [
    (PerformanceSettings(attention="xformers"), "attention", "CUDA only"),
    (PerformanceSettings(compile="cuda-graphs"), "compile", "need a CUDA GPU"),
    (PerformanceSettings(offload="sequential"), "offload", "needs a CUDA GPU"),
    (PerformanceSettings(fuse_qkv=True, attention_slicing=True), "fuse qkv", "attention slicing"),
])
def test_options_that_cannot_apply_fall_back_with_a_reason(engine, settings, option, reason):
    report = engine.set_performance(settings)
    notes = [note for note in report.fallbacks if note.startswith(option + ":")]
    assert len(notes) == 1 and reason in notes[0]
    assert engine.generate(params(), Image.new("RGB", (64, 64), "gray"), np.eye(64, dtype=np.float32)).images


def test_speed_options_keep_the_picture(engine, photo):
    depth = engine.estimate_depth(photo)
    reference = pixels(engine.generate(params(), photo, depth))
    for settings in (PRESETS["fastest"], dataclasses.replace(PRESETS["low VRAM"], attention_slicing=True)):
        engine.set_performance(settings)
        other = pixels(engine.generate(params(), photo, depth))
        assert np.abs(other - reference).max() <= 2, settings  # same maths, other kernels: rounding only


def test_offload_cannot_be_applied_to_a_pipeline_in_use(engine):
    report = apply_performance(engine.pipe, PRESETS["low VRAM"], "cuda", current_offload="none")
    assert report.effective.offload == "none" and any("reload" in note for note in report.fallbacks)
    assert "CPU offload" not in " ".join(report.applied)


# -- reuse between runs --------------------------------------------------------------------------
def test_prompt_embeddings_are_reused_until_the_prompt_changes(engine, photo):
    depth = engine.estimate_depth(photo)
    engine.invalidate_prompt_cache()
    stats = engine.prompt_cache_stats
    before = dict(stats)
    first = engine.generate(params(), photo, depth)
    for change in ({"seed": 78}, {"strength": 0.6}, {"steps": 5}):
        engine.generate(params(**change), photo, depth)
    assert (stats["misses"] - before["misses"], stats["hits"] - before["hits"]) == (1, 3)
    engine.generate(params(prompt="another prompt"), photo, depth)
    engine.generate(params(negative_prompt="blurry"), photo, depth)
    assert stats["misses"] - before["misses"] == 3

    cached = engine.generate(params(), photo, depth)
    engine.invalidate_prompt_cache()
    fresh = engine.generate(params(), photo, depth)
    assert stats["misses"] - before["misses"] == 4
    assert np.array_equal(pixels(first), pixels(cached)) and np.array_equal(pixels(cached), pixels(fresh))


def test_embeddings_match_what_the_pipeline_computes_itself(engine, photo):
    depth = torch.from_numpy(engine.estimate_depth(photo))[None]
    ours = engine.generate(params(negative_prompt="dull"), photo, depth.numpy()[0])
    with torch.inference_mode():
        latents = engine.pipe(prompt="a stone bridge in fog", negative_prompt="dull", image=photo, depth_map=depth,
                              strength=0.8, num_inference_steps=4, generator=torch.Generator("cpu").manual_seed(77),
                              output_type="latent").images
        theirs = engine._decode(latents)[0]
    assert np.array_equal(pixels(ours), np.asarray(theirs, dtype=np.int16))


def test_loras_change_the_cache_keys_and_turn_off_fused_projections(demo_model_dir, photo):
    from peft import LoraConfig, inject_adapter_in_model

    engine = Engine(device="cpu")
    engine.load(demo_model_dir)
    engine.set_performance(PRESETS["fastest"])
    depth = engine.estimate_depth(photo)
    engine.generate(params(), photo, depth)
    assert adapter_signature(engine.pipe.text_encoder) == () and not has_adapters(engine.pipe.unet)

    inject_adapter_in_model(LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False),
                            engine.pipe.text_encoder)
    engine.pipe.unet.add_adapter(LoraConfig(r=2, target_modules=["to_q", "to_k", "to_v"], init_lora_weights=False))
    misses = engine.prompt_cache_stats["misses"]
    engine.adapters_changed()
    report = engine.performance_report
    assert any(note.startswith("fuse qkv:") and "LoRA" in note for note in report.fallbacks)
    assert FusedAttnProcessor2_0 not in processors(engine)
    engine.generate(params(), photo, depth)
    assert engine.prompt_cache_stats["misses"] == misses + 1


# -- the background-compile router -------------------------------------------------------------------
@pytest.fixture
def fresh_dynamo():
    """Compiled code and its guards are dropped on this thread afterwards, not later by whichever thread collects."""
    yield
    import gc

    torch._dynamo.reset()
    gc.collect()


def test_compiled_step_is_swapped_in_when_ready_and_new_shapes_run_eagerly(demo_model_dir, photo, fresh_dynamo):
    engine = Engine(device="cpu")
    engine.load(demo_model_dir)
    depth = engine.estimate_depth(photo)
    eager = pixels(engine.generate(params(), photo, depth))
    router = engine.accelerator = UNetAccelerator(engine.pipe.unet, "torch-compile", backend="aot_eager")
    try:
        first = pixels(engine.generate(params(), photo, depth))  # eager while compiling in the background
        assert router.stats["fast"] == 0 and router.stats["eager"] == 3  # 4 steps at strength 0.8: 3 UNet calls
        assert router.wait_until_compiled(timeout=120) and router.stats["compiled"] == 1
        fast = pixels(engine.generate(params(), photo, depth))
        assert router.stats["fast"] == 3
        assert np.abs(fast - eager).max() <= 1 and np.array_equal(first, eager)

        wide = Image.new("RGB", (96, 64), "gray")
        engine.generate(params(), wide, np.tile(np.linspace(0, 1, 96, dtype=np.float32), (64, 1)))
        engine.generate(params(scheduler="Euler"), photo, depth)
        assert router.stats["fast"] == 3  # new size, new scheduler: eager, never the other shape's artefact
        assert router.wait_until_compiled(timeout=120) and router.stats["compiled"] == 3
        router.begin_run("other LoRA weights")
        with torch.inference_mode():
            assert router.forward(*_unet_inputs(engine), return_dict=False)[0].shape == (2, 4, 8, 8)
        assert router.stats["fast"] == 3 and router.compiling
    finally:
        router.remove()
    assert "forward" not in engine.pipe.unet.__dict__


def test_a_fast_path_that_disagrees_with_eager_is_never_used(demo_model_dir, photo, fresh_dynamo):
    engine = Engine(device="cpu")
    engine.load(demo_model_dir)
    depth = engine.estimate_depth(photo)
    eager = pixels(engine.generate(params(), photo, depth))
    router = engine.accelerator = UNetAccelerator(engine.pipe.unet, "torch-compile", backend="aot_eager")
    router.compiled = lambda sample, *args, **kwargs: (torch.zeros_like(sample[:, :4]),)  # a broken compiler
    try:
        engine.generate(params(), photo, depth)
        assert router.wait_until_compiled(timeout=30)
        again = pixels(engine.generate(params(), photo, depth))
        assert router.stats["rejected"] == 1 and router.stats["fast"] == 0 and "differs" in router.errors[0]
        assert np.array_equal(again, eager)
    finally:
        router.remove()


def test_cuda_graphs_are_refused_off_cuda(engine):
    with pytest.raises(ValueError):
        UNetAccelerator(engine.pipe.unet, "cuda-graphs")


def _unet_inputs(engine):
    with torch.inference_mode():
        sample = torch.randn(2, 5, 8, 8)
        hidden = torch.randn(2, 77, engine.pipe.text_encoder.config.hidden_size)
    return sample, torch.tensor(500), hidden


def test_preview_is_a_small_uint8_image_on_any_latent_dtype():
    latents = torch.randn(2, 4, 12, 10)
    preview = latents_to_rgb(latents)
    assert preview.shape == (12, 10, 3) and preview.dtype == np.uint8 and preview.std() > 0
    assert np.abs(latents_to_rgb(latents.to(torch.bfloat16)).astype(int) - preview).max() <= 3


def test_the_command_line_takes_a_preset_and_says_what_falls_back(demo_model_dir, tmp_path, capsys):
    from d2i_desktop.cli import build_parser, main

    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(5).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(photo)
    out = tmp_path / "result.png"
    assert main(["generate", "--model", str(demo_model_dir), "--image", str(photo), "--prompt", "a hill", "--steps", "3",
                 "--seed", "1", "--device", "cpu", "--preset", "low VRAM", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert out.is_file() and "note: offload: needs a CUDA GPU" in captured.err
    assert main(["generate", "--model", str(demo_model_dir), "--image", str(photo), "--prompt", "a hill",
                 "--preset", "warp", "--out", str(out)]) == 2
    generate = build_parser()._subparsers._group_actions[0].choices["generate"]
    assert next(a for a in generate._actions if a.dest == "preset").choices == tuple(PRESETS)


def test_compile_cache_goes_to_the_app_folder_unless_the_user_chose_one(tmp_path, monkeypatch):
    from torch._inductor.runtime.cache_dir_utils import cache_dir, default_cache_dir

    from d2i_desktop.core.speed.unet_accel import configure_compile_cache

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", default_cache_dir())  # what importing torch._inductor leaves behind
    monkeypatch.delenv("TRITON_CACHE_DIR", raising=False)
    assert configure_compile_cache(tmp_path / "app") == tmp_path / "app" / "inductor"
    assert cache_dir() == str(tmp_path / "app" / "inductor")  # where inductor's FX graph cache now writes
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))
    assert configure_compile_cache(tmp_path / "app") == tmp_path / "mine"
