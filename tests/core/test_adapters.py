"""Applying LoRAs and embeddings through the engine: real files, the real pipeline, same-seed comparisons."""

import numpy as np
import pytest
import torch
from PIL import Image

from d2i_desktop.core.extras.adapters import adapter_name, split_lora_tags
from d2i_desktop.core.errors import ParamError
from d2i_desktop.core.extras.library import LORA, Library
from d2i_desktop.core.extras.lora_files import LibraryFileError
from d2i_desktop.core.files.outputs import parse_parameters
from d2i_desktop.core.generation.params import GenerationParams
from library_samples import (
    embedding_vectors, lora_state, sd1_lora, sdxl_lora, write_a1111_embedding, write_diffusers_embedding, write_lora,
    write_pickle_payload,
)


@pytest.fixture(scope="module")
def photo():
    rng = np.random.default_rng(7)
    return Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def depth():
    return np.random.default_rng(8).random((64, 64), dtype=np.float32)


@pytest.fixture
def library(isolated_data_dir):
    return Library()


def run(engine, photo, depth, prompt="a quiet harbour", **kwargs):
    params = GenerationParams(prompt, steps=3, strength=1.0, seed=11, guidance_scale=5.0, **kwargs)
    return engine.generate(params, photo, depth)


def pixels(result) -> np.ndarray:
    return np.asarray(result.images[0], dtype=np.int16)


def test_no_lora_run_is_bit_exact_before_and_after_loras(engine, photo, depth, library):
    write_lora(library.root / "peft.safetensors", lora_state(engine.pipe, "peft", seed=1))
    write_lora(library.root / "kohya.safetensors", lora_state(engine.pipe, "kohya", seed=2))
    before = pixels(run(engine, photo, depth))

    with_peft = pixels(run(engine, photo, depth, loras=(("peft", 1.0),)))
    stacked = pixels(run(engine, photo, depth, loras=(("peft", 1.0), ("kohya", 0.8))))
    after = pixels(run(engine, photo, depth))

    assert np.abs(with_peft - before).max() > 10
    assert np.abs(stacked - with_peft).max() > 10
    assert np.array_equal(after, before)


def test_both_layouts_of_the_same_weights_give_the_same_image(engine, photo, depth, library):
    write_lora(library.root / "as-peft.safetensors", lora_state(engine.pipe, "peft", seed=3))
    write_lora(library.root / "as-kohya.safetensors", lora_state(engine.pipe, "kohya", seed=3))  # alpha = rank: scale 1

    peft = pixels(run(engine, photo, depth, loras=(("as-peft", 0.9),)))
    kohya = pixels(run(engine, photo, depth, loras=(("as-kohya", 0.9),)))

    assert np.array_equal(peft, kohya)


def test_text_encoder_part_is_applied(engine, photo, depth, library):
    write_lora(library.root / "unet-only.safetensors", lora_state(engine.pipe, "peft", seed=4, text_encoder=False))
    write_lora(library.root / "both.safetensors", lora_state(engine.pipe, "peft", seed=4))

    unet_only = pixels(run(engine, photo, depth, loras=(("unet-only", 1.0),)))
    both = pixels(run(engine, photo, depth, loras=(("both", 1.0),)))

    assert np.abs(both - unet_only).max() > 10


def test_weights_change_without_reloading(engine, photo, depth, library):
    write_lora(library.root / "w.safetensors", lora_state(engine.pipe, "peft", seed=5))
    base = pixels(run(engine, photo, depth))
    pipe, unet = engine.pipe, engine.pipe.unet

    full = pixels(run(engine, photo, depth, loras=(("w", 1.0),)))
    half = pixels(run(engine, photo, depth, loras=(("w", 0.5),)))
    zero = pixels(run(engine, photo, depth, loras=(("w", 0.0),)))
    full_again = pixels(run(engine, photo, depth, loras=(("w", 1.0),)))

    assert engine.pipe is pipe and engine.pipe.unet is unet
    assert list(unet.peft_config).count(adapter_name(library.find("w", LORA))) == 1
    assert np.abs(half - full).max() > 5 and np.abs(half - base).max() > 5
    assert np.array_equal(zero, base)
    assert np.array_equal(full_again, full)


def test_prompt_tag_is_removed_from_the_text_and_recorded_in_the_metadata(engine, photo, depth, library):
    path = write_lora(library.root / "ink.safetensors", lora_state(engine.pipe, "kohya", seed=6))
    write_lora(library.root / "fog.safetensors", lora_state(engine.pipe, "peft", seed=7))
    from d2i_desktop.core.extras.lora_files import short_hash

    tagged = run(engine, photo, depth, prompt="a quiet <lora:ink:0.7> harbour")
    picked = run(engine, photo, depth, prompt="a quiet harbour", loras=(("ink", 0.7),))
    both = run(engine, photo, depth, prompt="a quiet harbour <lora:ink:0.7>", loras=(("fog", 0.4),))
    fields = parse_parameters(both.parameters_text(0))

    assert np.array_equal(pixels(tagged), pixels(picked))
    assert picked.params.prompt == "a quiet harbour <lora:ink:0.7>"
    assert fields["prompt"] == "a quiet harbour <lora:ink:0.7> <lora:fog:0.4>"
    assert fields["Lora hashes"] == f"ink: {short_hash(path)}, fog: {short_hash(library.root / 'fog.safetensors')}"
    assert "TI hashes" not in fields


def test_default_weight_applies_to_a_tag_without_weight(engine, photo, depth, library):
    write_lora(library.root / "soft.safetensors", lora_state(engine.pipe, "peft", seed=8))
    library.edit("soft", default_weight=0.3)

    untagged_weight = pixels(run(engine, photo, depth, prompt="a quiet harbour <lora:soft>"))
    explicit = pixels(run(engine, photo, depth, loras=(("soft", 0.3),)))

    assert np.array_equal(untagged_weight, explicit)


def test_split_lora_tags():
    assert split_lora_tags("a <lora:ink:0.7>, b <LORA:fog> c") == ("a , b c", [("ink", 0.7), ("fog", None)])
    assert split_lora_tags("no tags here") == ("no tags here", [])
    with pytest.raises(ParamError, match="weight 'x' of LoRA 'ink' is not a number"):
        split_lora_tags("<lora:ink:x>")
    with pytest.raises(ParamError, match="outside -4..4"):
        split_lora_tags("<lora:ink:9>")


@pytest.mark.parametrize("kwargs, message", [
    ({"prompt": "<lora:nowhere:1>"}, "There is no LoRA named 'nowhere'"),
    ({"negative_prompt": "<lora:ink:1>"}, "LoRA tags work in the prompt, not in the negative prompt"),
    ({"prompt": "<lora:ink:0.5>", "loras": (("ink", 0.9),)}, "asked for twice, with weights 0.5 and 0.9"),
    ({"loras": (("ink", float("nan")),)}, "outside -4..4"),
])
def test_bad_requests_are_refused_clearly(engine, photo, depth, library, kwargs, message):
    write_lora(library.root / "ink.safetensors", lora_state(engine.pipe, "peft", seed=6))
    params = GenerationParams(**({"prompt": "a harbour", "steps": 2, "strength": 1.0, "seed": 1} | kwargs))

    with pytest.raises((ParamError, LibraryFileError), match=message):
        engine.generate(params, photo, depth)


@pytest.mark.parametrize("make, message", [
    (lambda: sd1_lora(), "made-for is a LoRA for SD 1.x; the loaded model is demo model"),
    (lambda: sdxl_lora(), "made-for is a LoRA for SDXL; the loaded model is demo model"),
])
def test_lora_for_another_base_model_is_refused_and_nothing_changes(engine, photo, depth, library, make, message):
    write_lora(library.root / "good.safetensors", lora_state(engine.pipe, "peft", seed=9))
    write_lora(library.root / "made-for.safetensors", make())
    before = pixels(run(engine, photo, depth, loras=(("good", 1.0),)))
    adapters_before = dict(engine.pipe.get_list_adapters())

    with pytest.raises(LibraryFileError, match=message):
        run(engine, photo, depth, loras=(("good", 0.5), ("made-for", 1.0)))

    assert engine.pipe.get_list_adapters() == adapters_before
    assert np.array_equal(pixels(run(engine, photo, depth, loras=(("good", 1.0),))), before)


def test_lora_with_wrong_shapes_for_the_same_family_names_the_layer(engine, photo, depth, library):
    state = lora_state(engine.pipe, "kohya", seed=10)
    key = next(k for k in state if k.startswith("lora_unet") and k.endswith("lora_up.weight"))
    state[key] = torch.zeros(48, 4)
    write_lora(library.root / "odd.safetensors", state)

    with pytest.raises(LibraryFileError, match=r"odd does not fit the loaded model: layer 'down_blocks_1.*' maps 64 -> 48"):
        run(engine, photo, depth, loras=(("odd", 1.0),))


def test_rollback_when_the_unet_part_loads_and_the_text_encoder_part_fails(engine, photo, depth, library):
    write_lora(library.root / "keep.safetensors", lora_state(engine.pipe, "peft", seed=12))
    write_lora(library.root / "half.safetensors", lora_state(engine.pipe, "kohya", seed=13))
    before = pixels(run(engine, photo, depth, loras=(("keep", 0.8),)))
    adapters_before = dict(engine.pipe.get_list_adapters())
    item = library.find("half", LORA)
    _, state = engine._adapters.prepare_lora(item)
    # A text-encoder layer that cannot load, past the checks: diffusers loads the UNet part, then fails.
    key = next(k for k in state if k.startswith("text_encoder") and k.endswith("lora_A.weight"))
    state[key] = torch.zeros(4, 40)

    with pytest.raises(LibraryFileError, match="half could not be applied.*The model was left as it was"):
        engine._adapters.load_lora(adapter_name(item), item, state)

    assert engine.pipe.get_list_adapters() == adapters_before
    assert np.array_equal(pixels(run(engine, photo, depth, loras=(("keep", 0.8),))), before)
    assert not np.array_equal(pixels(run(engine, photo, depth, loras=(("keep", 0.8), ("half", 1.0)))), before)


def test_pickle_lora_payload_never_runs(engine, photo, depth, library, tmp_path):
    marker = tmp_path / "payload-ran"
    write_pickle_payload(library.root / "trap.pt", marker)

    with pytest.raises(LibraryFileError, match="trap.*cannot be used.*holds code"):
        run(engine, photo, depth, prompt="harbour <lora:trap:1>")

    assert not marker.exists()


@pytest.mark.parametrize("write, file_name", [
    (lambda p, v: write_diffusers_embedding(p, v), "concept.safetensors"),
    (lambda p, v: write_diffusers_embedding(p, v), "concept.bin"),
    (lambda p, v: write_a1111_embedding(p, v), "concept.pt"),
    (lambda p, v: write_a1111_embedding(p, v), "concept.safetensors"),
])
def test_embeddings_in_both_formats_apply_by_token_and_unload(engine, photo, depth, library, write, file_name):
    plain = pixels(run(engine, photo, depth, prompt="a concept harbour"))
    base = pixels(run(engine, photo, depth))
    vocabulary = len(engine.pipe.tokenizer)
    path = write(library.root / file_name, embedding_vectors(count=3, seed=2) * 0.5)

    used = run(engine, photo, depth, prompt="a concept harbour")
    again = pixels(run(engine, photo, depth))
    fields = parse_parameters(used.parameters_text(0))

    from d2i_desktop.core.extras.lora_files import sha256_file
    assert np.abs(pixels(used) - plain).max() > 5
    assert fields["TI hashes"] == f"concept: {sha256_file(path)[:12]}"
    assert fields["prompt"] == "a concept harbour"
    assert np.array_equal(again, base) and len(engine.pipe.tokenizer) == vocabulary


def test_embedding_of_the_wrong_width_is_refused(engine, photo, depth, library):
    write_a1111_embedding(library.root / "wide.pt", embedding_vectors(width=768))
    write_lora(library.root / "xl-embed.safetensors", {"clip_l": torch.zeros(2, 768), "clip_g": torch.zeros(2, 1280)})

    with pytest.raises(LibraryFileError, match=r"wide is an embedding for SD 1.x \(768-wide vectors\); the loaded model is demo"):
        run(engine, photo, depth, prompt="a wide harbour")
    with pytest.raises(LibraryFileError, match="xl-embed is an embedding for SDXL"):
        run(engine, photo, depth, prompt="a xl-embed harbour")


def test_embedding_token_clashes_are_refused(engine, photo, depth, library):
    base = pixels(run(engine, photo, depth, prompt="a h harbour"))
    write_diffusers_embedding(library.root / "h.safetensors", embedding_vectors())
    write_diffusers_embedding(library.root / "twin.safetensors", embedding_vectors(count=2))
    write_diffusers_embedding(library.root / "twin_1.safetensors", embedding_vectors(count=1))

    with pytest.raises(LibraryFileError, match="The embedding name 'h' is already a word the model knows"):
        run(engine, photo, depth, prompt="a h harbour")
    with pytest.raises(LibraryFileError, match="clashes with another embedding's token 'twin_1'"):
        run(engine, photo, depth, prompt="twin and twin_1")
    (library.root / "h.safetensors").unlink()
    assert np.array_equal(pixels(run(engine, photo, depth, prompt="a h harbour")), base)


def test_unused_loras_beyond_a_few_are_unloaded_least_recently_used_first(library):
    from d2i_desktop.core.extras.adapters import KEEP_LOADED, Adapters
    from d2i_desktop.core.models.demo import build_demo_pipeline

    pipe = build_demo_pipeline()
    adapters = Adapters(pipe, "demo model")
    for index in range(KEEP_LOADED + 2):
        write_lora(library.root / f"l{index}.safetensors", lora_state(pipe, "peft", seed=index, text_encoder=False))
    items = [library.find(f"l{index}", LORA) for index in range(KEEP_LOADED + 2)]

    for item in items[1:]:
        adapters.apply([(items[0], 1.0), (item, 0.5)])

    loaded = pipe.get_list_adapters()["unet"]
    assert len(loaded) == KEEP_LOADED
    assert adapter_name(items[0]) in loaded and adapter_name(items[1]) not in loaded
    assert pipe.get_active_adapters() == [adapter_name(items[0]), adapter_name(items[-1])]


def _conv_layer(unet) -> str:
    return next(name for name, module in unet.named_modules()
                if isinstance(module, torch.nn.Conv2d) and module.kernel_size == (3, 3) and "resnets" in name)


def _malformed(pipe, how: str) -> dict[str, torch.Tensor]:
    state = lora_state(pipe, "kohya", seed=21)
    alpha = next(k for k in state if k.endswith(".alpha"))
    down = next(k for k in state if k.startswith("lora_unet") and k.endswith("lora_down.weight"))
    if how == "alpha-vector":
        state[alpha] = torch.ones(3)
    elif how == "alpha-nan":
        state[alpha] = torch.tensor(float("nan"))
    elif how == "rank-0":
        up = down.replace("lora_down", "lora_up")
        state[down], state[up] = torch.zeros(0, state[down].shape[1]), torch.zeros(state[up].shape[0], 0)
    elif how == "nan-weights":
        state[down][0, 0] = float("nan")
    elif how == "conv-kernel":
        conv = pipe.unet.get_submodule(_conv_layer(pipe.unet))
        kohya = "lora_unet_" + _conv_layer(pipe.unet).replace(".", "_")
        state[f"{kohya}.lora_down.weight"] = torch.zeros(4, conv.in_channels, 1, 1)  # 1x1 for a 3x3 conv
        state[f"{kohya}.lora_up.weight"] = torch.zeros(conv.out_channels, 4, 1, 1)
    return state


@pytest.mark.parametrize("how, message", [
    ("alpha-vector", "alpha that is not one finite number"),
    ("alpha-nan", "alpha that is not one finite number"),
    ("rank-0", "rank 0"),
    ("nan-weights", "NaN or infinite"),
    ("conv-kernel", "1x1 and 1x1 kernels for a 3x3 conv layer"),
])
def test_malformed_lora_layers_are_refused_before_the_pipeline_is_touched(engine, photo, depth, library, how, message):
    write_lora(library.root / "bad.safetensors", _malformed(engine.pipe, how))
    adapters_before = dict(engine.pipe.get_list_adapters())
    state_before = engine._adapters.state_key if engine._adapters else None

    with pytest.raises(LibraryFileError, match=message):
        run(engine, photo, depth, loras=(("bad", 1.0),))

    assert engine.pipe.get_list_adapters() == adapters_before
    assert (engine._adapters.state_key if engine._adapters else None) == state_before
