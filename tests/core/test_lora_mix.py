"""LoRA mixes on the demo model: real LoRA files in both layouts, the real pipeline, the real CLI."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from safetensors import safe_open

from d2i_desktop.core.errors import ParamError
from d2i_desktop.core.extras.library import LORA, Library
from d2i_desktop.core.extras.lora_files import LibraryFileError, sha256_file
from d2i_desktop.core.extras.lora_mix import MIX_METADATA_KEY, export_mix
from d2i_desktop.core.generation.engine import Engine
from d2i_desktop.core.generation.params import GenerationParams
from library_samples import lora_state, write_lora


@pytest.fixture
def library(engine, isolated_data_dir):
    library = Library()
    write_lora(library.root / "ink.safetensors", lora_state(engine.pipe, "peft", seed=1))
    write_lora(library.root / "chalk.safetensors", lora_state(engine.pipe, "kohya", seed=2, rank=2))
    return library


def pixels(engine, loras) -> np.ndarray:
    photo = Image.fromarray(np.random.default_rng(7).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    depth = np.random.default_rng(8).random((64, 64), dtype=np.float32)
    params = GenerationParams("a quiet harbour", steps=3, strength=1.0, seed=11, guidance_scale=5.0, loras=loras)
    return np.asarray(engine.generate(params, photo, depth).images[0], dtype=np.int16)


def test_a_mix_gives_the_picture_of_its_sources(engine, library, tmp_path):
    item = export_mix(engine.adapters(), [("ink", 0.6), ("chalk", 0.4)], tmp_path / "blend.safetensors", library)
    assert item.kind == LORA and item.base_model == library.find("ink", LORA).base_model
    assert library.find("blend", LORA).path == item.path  # in the library at once

    sources = pixels(engine, (("ink", 0.6), ("chalk", 0.4)))
    mixed = pixels(engine, (("blend", 1.0),))
    assert np.abs(pixels(engine, ()) - sources).max() > 5  # the LoRAs do change the picture
    assert np.abs(mixed - sources).max() <= 1  # fp rounding only


def test_the_file_is_in_the_diffusers_layout_with_its_sources_named(engine, library, tmp_path):
    out = library.root / "blend.safetensors"
    export_mix(engine.adapters(), [("ink", 0.6), ("chalk", -0.4)], out, library)
    with safe_open(str(out), "pt") as file:
        keys, metadata = set(file.keys()), file.metadata()
    assert all(key.startswith(("unet.", "text_encoder.text_model.")) and ".lora_" in key for key in keys)
    assert any(key.startswith("text_encoder.") for key in keys) and any(key.startswith("unet.") for key in keys)
    assert json.loads(metadata[MIX_METADATA_KEY]) == [
        {"name": "ink", "sha256": sha256_file(library.root / "ink.safetensors"), "weight": 0.6},
        {"name": "chalk", "sha256": sha256_file(library.root / "chalk.safetensors"), "weight": -0.4}]
    state = engine.pipe.lora_state_dict(str(out))[0]  # diffusers reads it as it writes it
    assert len(state) == len(keys)
    assert [item.name for item in library.items()].count("blend") == 1  # written in the library: not copied again


@pytest.mark.parametrize("sources, name, error, message", [
    ([("ink", 0.5), ("nowhere", 0.5)], "m.safetensors", LibraryFileError, "no LoRA named 'nowhere'"),
    ([("ink", 9.0)], "m.safetensors", ParamError, "outside -4..4"),
    ([], "m.safetensors", ParamError, "at least one LoRA"),
    ([("ink", 0.5)], "m.ckpt", ParamError, "written as a .safetensors file"),
])
def test_bad_requests_are_refused_before_writing(engine, library, tmp_path, sources, name, error, message):
    with pytest.raises(error, match=message):
        export_mix(engine.adapters(), sources, tmp_path / name, library)
    assert not (tmp_path / name).exists()


def test_cli_export_mix(engine, library, demo_model_dir, tmp_path):
    def d2i(*args):
        return subprocess.run([sys.executable, "-m", "d2i_desktop.cli", "library", "export-mix", "--model",
                               str(demo_model_dir), *map(str, args)], capture_output=True, text=True, timeout=300)

    out = tmp_path / "blend.safetensors"
    done = d2i("--lora", "ink:0.6", "--lora", "chalk:0.4", "--out", out)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("blend\tLoRA\t") and Library().find("blend", LORA)
    again = d2i("--lora", "ink:0.6", "--out", out)
    unknown = d2i("--lora", "ghost:0.6", "--out", tmp_path / "other.safetensors")
    for failed, message in ((again, "already exists"), (unknown, "no LoRA named 'ghost'")):
        assert failed.returncode == 2 and message in failed.stderr and "Traceback" not in failed.stderr


def test_cli_export_mix_checks_against_the_model_used_last(library, demo_model_dir, tmp_path, monkeypatch):
    def d2i(*args):
        return subprocess.run([sys.executable, "-m", "d2i_desktop.cli", "library", "export-mix", *map(str, args)],
                              capture_output=True, text=True, timeout=300)

    Engine(device="cpu").load(demo_model_dir)  # the model used last, as the window or the CLI records it
    done = d2i("--lora", "ink:0.6", "--lora", "chalk:0.4", "--out", tmp_path / "last-used.safetensors")
    assert done.returncode == 0, done.stderr
    monkeypatch.setenv("D2I_DATA_DIR", str(tmp_path / "fresh"))
    never = d2i("--lora", "ink:0.6", "--out", tmp_path / "none.safetensors")
    assert never.returncode == 2 and "No model has been used yet" in never.stderr and "--model" in never.stderr
