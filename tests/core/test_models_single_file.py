"""Single checkpoint files: the original (LDM) layout, safety of pickle files, damaged headers."""

import json
import pickle
import struct

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from d2i_desktop.core.models import registry as models
from d2i_desktop.core.models.checkpoints import classify, load_state_dict, read_safetensors_header
from d2i_desktop.core.generation.engine import Engine
from d2i_desktop.core.errors import ModelError
from d2i_desktop.core.generation.params import GenerationParams
from ldm_layout import pipeline_to_ldm

UNET_IN = "model.diffusion_model.input_blocks.0.0.weight"
CROSS = "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"


@pytest.fixture(scope="module")
def demo_checkpoint(demo_model_dir, tmp_path_factory):
    """The demo model's weights written as one .safetensors file in the original SD layout."""
    from diffusers import StableDiffusionDepth2ImgPipeline

    pipe = StableDiffusionDepth2ImgPipeline.from_pretrained(demo_model_dir)
    path = tmp_path_factory.mktemp("single") / "512-depth-demo.safetensors"
    save_file(pipeline_to_ldm(pipe), str(path))
    return path, pipe


def _tiny_checkpoint(path, **shapes):
    save_file({name: torch.zeros(shape) for name, shape in shapes.items()}, str(path))
    return path


def test_single_file_loads_with_the_demo_configs_and_generates(demo_checkpoint, demo_model_dir, no_network):
    path, reference = demo_checkpoint
    models.add_model(path, config_dir=demo_model_dir, depth_estimator=demo_model_dir / "depth_estimator")
    engine = Engine(device="cpu")
    info = engine.load(path)
    assert info.name == "512-depth-demo" and not info.is_demo
    assert any("Depth estimator" in note for note in info.notes)
    for part in ("unet", "vae", "text_encoder"):
        expected, got = getattr(reference, part).state_dict(), getattr(engine.pipe, part).state_dict()
        assert expected.keys() == got.keys() and all(torch.equal(expected[k], got[k]) for k in expected)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    result = engine.generate(GenerationParams(prompt="a house", steps=2, seed=3), image)
    assert result.images[0].size == (64, 64)
    assert models.ModelRegistry().get(str(path)).last_used > 0


def test_single_file_without_a_depth_estimator_asks_for_depth_maps(demo_checkpoint, demo_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))  # no DPT model to be found anywhere
    path, _ = demo_checkpoint
    models.add_model(path, config_dir=demo_model_dir)
    engine = Engine(device="cpu")
    info = engine.load(path)
    assert engine.pipe.depth_estimator is None and models.NO_DEPTH_ESTIMATOR_NOTE in info.notes
    image = Image.new("RGB", (64, 64), "gray")
    with pytest.raises(ModelError, match="no depth estimator"):
        engine.generate(GenerationParams(prompt="x", steps=2, seed=1), image)
    depth = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (64, 1))
    assert engine.generate(GenerationParams(prompt="x", steps=2, seed=1), image, depth).images[0].size == (64, 64)


@pytest.mark.parametrize("shapes, message", [
    ({UNET_IN: (320, 4, 3, 3), CROSS: (320, 768), "cond_stage_model.transformer.text_model.final_layer_norm.weight": (768,)},
     "Stable Diffusion 1.x"),
    ({UNET_IN: (320, 4, 3, 3), "conditioner.embedders.1.model.ln_final.weight": (1280,)}, "SDXL"),
    ({UNET_IN: (320, 4, 3, 3), CROSS: (320, 1024), "cond_stage_model.model.ln_final.weight": (1024,)},
     "text-to-image model"),
    ({UNET_IN: (320, 9, 3, 3), CROSS: (320, 1024), "cond_stage_model.model.ln_final.weight": (1024,)}, "inpainting"),
    ({"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": (4, 320)}, "LoRA"),
    ({"conv_in.weight": (320, 5, 3, 3)}, "single part of a diffusers model"),
    ({"something.else": (3,)}, "not a Stable Diffusion checkpoint"),
])
def test_other_checkpoints_are_recognised_and_refused(tmp_path, shapes, message):
    path = _tiny_checkpoint(tmp_path / "other.safetensors", **shapes)
    with pytest.raises(ModelError, match=message) as raised:
        Engine(device="cpu").load(path)
    assert "SD2" in str(raised.value)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_planted_pickle_payload_never_runs(tmp_path):
    marker = tmp_path / "payload-ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "model.ckpt"
    with path.open("wb") as handle:
        pickle.dump({"state_dict": {"w": Payload()}}, handle)
    with pytest.raises(ModelError, match="refused") as raised:
        Engine(device="cpu").load(path)
    assert ".safetensors" in raised.value.hint
    assert not marker.exists()


def test_plain_ckpt_checkpoints_load_with_weights_only(demo_checkpoint, demo_model_dir, tmp_path):
    path, reference = demo_checkpoint
    ckpt = tmp_path / "512-depth-demo.ckpt"
    torch.save({"state_dict": load_state_dict(path), "global_step": 875000}, ckpt)  # as the original training code saves
    assert classify({k: tuple(v.shape) for k, v in load_state_dict(ckpt).items()}).is_sd2_depth
    models.add_model(ckpt, config_dir=demo_model_dir, depth_estimator=demo_model_dir / "depth_estimator")
    engine = Engine(device="cpu")
    engine.load(ckpt)
    assert torch.equal(engine.pipe.unet.conv_in.weight, reference.unet.conv_in.weight)


def _raw_safetensors(path, header: dict, data: bytes = b"", declared_len: int | None = None):
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", declared_len if declared_len is not None else len(raw)) + raw + data)
    return path


@pytest.mark.parametrize("build, message", [
    (lambda p: p.write_bytes(b"\x01\x02"), "empty or truncated"),
    (lambda p: _raw_safetensors(p, {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8, 10**9),
     "corrupt safetensors header"),
    (lambda p: p.write_bytes(struct.pack("<Q", 4) + b"{{{{"), "not valid JSON"),
    (lambda p: _raw_safetensors(p, {"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 9), "truncated"),
    (lambda p: _raw_safetensors(p, {"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}}, b"\0" * 8),
     "does not match its shape"),
    (lambda p: _raw_safetensors(p, {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                    "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, b"\0" * 12), "overlap"),
    (lambda p: _raw_safetensors(p, {"a": {"dtype": "WHAT", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8), "bad entry"),
])
def test_damaged_safetensors_headers_are_refused_before_loading(tmp_path, build, message):
    path = tmp_path / "broken.safetensors"
    build(path)
    with pytest.raises(ModelError, match=message):
        read_safetensors_header(path)
    with pytest.raises(ModelError):
        Engine(device="cpu").load(path)


def test_a_truncated_real_checkpoint_is_refused(demo_checkpoint, tmp_path):
    path, _ = demo_checkpoint
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ModelError, match="truncated"):
        models.add_model(cut)


def test_a_truncated_pickle_is_refused(demo_checkpoint, tmp_path):
    path, _ = demo_checkpoint
    ckpt = tmp_path / "whole.ckpt"
    torch.save(load_state_dict(path), ckpt)
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(ckpt.read_bytes()[:5000])
    with pytest.raises(ModelError, match="corrupt or truncated"):
        load_state_dict(cut)
