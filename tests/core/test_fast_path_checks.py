"""Every fast path is checked against the eager step before it is used, on the CPU.

CUDA graphs cannot exist here: where the accelerator would capture one, these tests put a CPU
stand-in in CapturedStep's place (one that replays the function, or one that bakes its first
input in, as a faulty graph would). The check itself is the real one; compiles use torch.compile's
cheap "aot_eager" backend, as in test_acceleration.py.
"""

import gc

import numpy as np
import pytest
import torch
from diffusers.models.attention_processor import AttnProcessor2_0, FusedAttnProcessor2_0
from PIL import Image

from d2i_desktop.core.speed import unet_accel
from d2i_desktop.core.speed.acceleration import PRESETS, PerformanceSettings, apply_performance, checked_unet_change
from d2i_desktop.core.generation.engine import Engine
from d2i_desktop.core.generation.params import GenerationParams
from d2i_desktop.core.speed.unet_accel import UNetAccelerator, check_fast_step, compare


def step(sample, timestep, hidden, scale=1.0):
    return sample * timestep.float() / 1000 + hidden.mean() * scale


INPUTS = (torch.randn(2, 4, 8, 8), torch.tensor(700), torch.randn(2, 77, 32))


@pytest.mark.parametrize("fast, reason", [
    (step, None),
    (lambda *inputs, **kw: step(*inputs, **kw) + 1e-4, None),
    (lambda *inputs, **kw: step(*inputs, **kw) * float("nan"), "gives invalid values"),
    (lambda *inputs, **kw: step(*inputs, **kw).masked_fill(torch.rand(2, 4, 8, 8) > 0.5, float("inf")),
     "gives invalid values"),
    (lambda *inputs, **kw: step(*inputs, **kw) * 1.1, "differs from eager by 10.0%"),
    (lambda *inputs, **kw: step(*INPUTS, **kw), "on a second input"),  # the first input baked in
])
def test_check_fast_step(fast, reason):
    why = check_fast_step(fast, step, INPUTS, {"scale": 1.0})
    assert why is None if reason is None else reason in why


def test_a_nan_error_is_a_difference_not_a_pass():
    huge = torch.full((2,), 3e38)  # finite, but the error's norms overflow: inf / inf is NaN, and NaN > tolerance is False
    assert "differs" in compare(-huge, huge)
    assert "eager step itself" in compare(torch.ones(3), torch.full((3,), float("nan")))


# -- the accelerator's routing, with a CPU stand-in for CUDA graphs --------------------------------------------
class ReplayOnCpu:
    """Stands in for CapturedStep (CUDA graphs cannot exist here): replays by calling the captured function."""

    def __init__(self, fn, sample, timestep, encoder_hidden_states, kwargs, pool=None):
        self.fn, self.kwargs = fn, kwargs

    def __call__(self, sample, timestep, encoder_hidden_states):
        return self.fn(sample, timestep, encoder_hidden_states, **self.kwargs)[0]


class BakedOnCpu(ReplayOnCpu):
    """A faulty graph: its output depends only on the input it was captured with."""

    def __init__(self, fn, sample, timestep, encoder_hidden_states, kwargs, pool=None):
        super().__init__(fn, sample, timestep, encoder_hidden_states, kwargs)
        self.output = fn(sample, timestep, encoder_hidden_states, **kwargs)[0]

    def __call__(self, sample, timestep, encoder_hidden_states):
        return self.output.clone()


@pytest.fixture
def engine(demo_model_dir):
    engine = Engine(device="cpu")
    engine.load(demo_model_dir)
    yield engine
    engine.unload()
    gc.collect()


@pytest.fixture(scope="module")
def photo():
    return Image.fromarray(np.random.default_rng(8).integers(0, 255, (64, 64, 3), dtype=np.uint8))


def params(**overrides):
    return GenerationParams(**({"prompt": "a barn at noon", "steps": 4, "seed": 9, "scheduler": "DDIM"} | overrides))


def pixels(result):
    return np.asarray(result.images[0], dtype=np.int16)


def graphs_on_cpu(router, monkeypatch, stand_in):
    monkeypatch.setattr(unet_accel, "CapturedStep", stand_in)
    router.use_graphs = True


def test_a_rejected_compile_still_gets_a_graph_of_the_eager_step(engine, photo, monkeypatch):
    depth = engine.estimate_depth(photo)
    eager = pixels(engine.generate(params(), photo, depth))
    router = engine.accelerator = UNetAccelerator(engine.pipe.unet, "torch-compile", backend="aot_eager")
    router.compiled = lambda sample, *args, **kwargs: (torch.full_like(sample[:, :4], float("nan")),)  # a broken compiler
    graphs_on_cpu(router, monkeypatch, ReplayOnCpu)
    engine.generate(params(), photo, depth)
    assert router.wait_until_compiled(timeout=30)
    assert router.stats["rejected"] == 1 and "compiled step gives invalid values" in router.errors[0]
    again = pixels(engine.generate(params(), photo, depth))
    assert router.ran == {"eager": 3, "CUDA graph of the eager step": 3} and router.stats["captured"] == 1
    assert np.array_equal(again, eager)


def test_a_graph_that_baked_in_its_capture_input_is_rejected(engine, photo, monkeypatch):
    depth = engine.estimate_depth(photo)
    eager = pixels(engine.generate(params(), photo, depth))
    router = engine.accelerator = UNetAccelerator(engine.pipe.unet, "torch-compile", backend="aot_eager")
    router.compiled = None  # as in "cuda-graphs" mode, which refuses to start without CUDA
    graphs_on_cpu(router, monkeypatch, BakedOnCpu)
    result = pixels(engine.generate(params(), photo, depth))
    assert router.stats["rejected"] == 1 and router.stats["captured"] == 0
    assert "CUDA graph of the eager step differs from eager" in router.errors[0] and "second input" in router.errors[0]
    assert router.ran == {"eager": 3} and np.array_equal(result, eager)


def test_unloading_stops_the_background_compile_and_resets_dynamo(engine, photo):
    from torch._dynamo.eval_frame import _debug_get_cache_entry_list

    code = type(engine.pipe.unet).forward.__code__
    router = engine.accelerator = UNetAccelerator(engine.pipe.unet, "torch-compile", backend="aot_eager")
    engine.generate(params(), photo, np.eye(64, dtype=np.float32))
    assert router.wait_until_compiled(timeout=180) and router.stats["compiled"] == 1
    assert len(_debug_get_cache_entry_list(code)) > 0
    engine.unload()
    assert not router._thread.is_alive() and router.compiled is None
    assert len(_debug_get_cache_entry_list(code)) == 0


def test_a_lora_change_stops_a_compile_that_waits_for_the_run_to_end(engine, photo):
    router = engine.accelerator = UNetAccelerator(engine.pipe.unet, "torch-compile", backend="aot_eager")
    router.begin_run("a run in progress")  # compiles wait while a run goes on
    with torch.inference_mode():
        sample, hidden = torch.randn(2, 5, 8, 8), torch.randn(2, 77, engine.pipe.text_encoder.config.hidden_size)
        router.forward(sample, torch.tensor(500), hidden, return_dict=False)
    assert router.compiling and router._thread.is_alive()
    engine.adapters_changed()  # what applying or re-weighting a LoRA calls
    assert not router._thread.is_alive() and router.stats["compiled"] == 0
    assert "forward" not in engine.pipe.unet.__dict__


# -- options that change the UNet itself ----------------------------------------------------------------------
def processors(engine):
    return {type(p) for p in engine.pipe.unet.attn_processors.values()}


@pytest.mark.parametrize("damage, reason", [(float("nan"), "gives invalid values"), (2.0, "differs from eager")])
def test_fused_projections_that_change_the_output_are_refused(engine, photo, monkeypatch, damage, reason):
    from diffusers.models.attention_processor import Attention

    fuse = Attention.fuse_projections

    def damaged_fuse(self, fuse_=True, **kwargs):
        fuse(self, **kwargs)
        fused = getattr(self, "to_qkv", None) or self.to_kv
        fused.weight.data.mul_(damage)

    reference = pixels(engine.generate(params(), photo, np.eye(64, dtype=np.float32)))
    monkeypatch.setattr(Attention, "fuse_projections", damaged_fuse)
    report = engine.set_performance(PRESETS["fastest"])
    notes = [note for note in report.fallbacks if note.startswith("fuse qkv:")]
    assert len(notes) == 1 and reason in notes[0] and not report.effective.fuse_qkv
    assert processors(engine) == {AttnProcessor2_0}
    assert "channels-last UNet" in report.applied  # the other option is checked on its own and kept
    assert np.abs(pixels(engine.generate(params(), photo, np.eye(64, dtype=np.float32))) - reference).max() <= 2


def test_sound_fast_options_pass_their_check(engine):
    report = engine.set_performance(PRESETS["fastest"])
    assert processors(engine) == {FusedAttnProcessor2_0} and "channels-last UNet" in report.applied
    assert not [note for note in report.fallbacks if "rejected" in note]


def test_a_unet_change_is_undone_when_its_output_is_not_finite(engine):
    handles, notes = [], []

    def change():
        handles.append(engine.pipe.unet.conv_out.register_forward_hook(lambda _m, _i, out: out * float("inf")))

    kept = checked_unet_change(engine.pipe, change, lambda: handles.pop().remove(), "channels_last",
                               lambda option, value, why: notes.append((option, value, why)))
    assert not kept and not handles
    assert notes == [("channels_last", False, "rejected: the UNet's output with it gives invalid values (NaN or infinity)")]


def test_xformers_that_cannot_load_falls_back_to_sdpa_with_the_reason(engine, photo, tmp_path, monkeypatch):
    package = tmp_path / "site" / "xformers"
    package.mkdir(parents=True)  # installed, but built for another torch
    (package / "__init__.py").write_text('raise ImportError("xformers/_C.so: undefined symbol: _ZN3c104cuda9SetDevice")\n')
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    report = apply_performance(engine.pipe, PerformanceSettings(attention="xformers", compile="off"), "cuda")
    notes = [note for note in report.fallbacks if note.startswith("attention:")]
    assert len(notes) == 1 and "xformers cannot be used here" in notes[0] and "using PyTorch SDPA" in notes[0]
    assert report.effective.attention == "sdpa" and "PyTorch SDPA attention" in report.applied
    assert processors(engine) == {AttnProcessor2_0}
    assert engine.generate(params(), photo, np.eye(64, dtype=np.float32)).images
