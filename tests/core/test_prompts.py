"""Prompt weighting and long prompts (AUTOMATIC1111 syntax) on the demo model, through the real pipeline."""

import numpy as np
import pytest
import torch
from PIL import Image

from d2i_desktop.core.generation import prompts
from d2i_desktop.core.errors import ParamError
from d2i_desktop.core.extras.library import Library
from d2i_desktop.core.files.outputs import parse_parameters
from d2i_desktop.core.generation.params import GenerationParams
from library_samples import embedding_vectors, lora_state, write_a1111_embedding, write_lora


@pytest.fixture(scope="module")
def photo():
    return Image.fromarray(np.random.default_rng(3).integers(0, 255, (64, 64, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def depth():
    return np.random.default_rng(4).random((64, 64), dtype=np.float32)


def run(engine, photo, depth, prompt, **kwargs):
    params = GenerationParams(prompt, steps=3, strength=1.0, seed=5, guidance_scale=6.0, **kwargs)
    return engine.generate(params, photo, depth)


def pixels(result) -> np.ndarray:
    return np.asarray(result.images[0], dtype=np.int16)


# -- the parser ---------------------------------------------------------------------------------
@pytest.mark.parametrize("text, pieces", [
    ("a cat", [("a cat", 1.0)]),
    ("a (cat)", [("a ", 1.0), ("cat", 1.1)]),
    ("a ((cat))", [("a ", 1.0), ("cat", 1.1 * 1.1)]),
    ("a (cat:1.3) on a mat", [("a ", 1.0), ("cat", 1.3), (" on a mat", 1.0)]),
    ("a [cat]", [("a ", 1.0), ("cat", 1 / 1.1)]),
    ("(a (cat:0.5))", [("a ", 1.1), ("cat", 0.55)]),
    (r"a \(cat\)", [("a (cat)", 1.0)]),
    ("a cat BREAK a dog", [("a cat", 1.0), ("", -1.0), ("a dog", 1.0)]),
    ("(style: photo)", [("style: photo", 1.1)]),
])
def test_parse_follows_automatic1111(text, pieces):
    parsed = prompts.parse(text)
    assert [text for text, _ in parsed.pieces] == [text for text, _ in pieces]
    assert [weight for _, weight in parsed.pieces] == pytest.approx([weight for _, weight in pieces])
    assert parsed.notes == ()


def test_unbalanced_brackets_are_read_as_automatic1111_does_with_a_note():
    stray = prompts.parse("a cat) on a mat")
    assert stray.pieces == (("a cat) on a mat", 1.0),) and "read as text" in stray.notes[0]
    unclosed = prompts.parse("a (cat on a mat")
    assert unclosed.pieces == (("a ", 1.0), ("cat on a mat", pytest.approx(1.1))) and "left open" in unclosed.notes[0]


@pytest.mark.parametrize("text, message", [
    ("(cat:11)", "outside -10..10"),
    ("(cat:-12.5)", "outside -10..10"),
    ("(cat:1.2.3)", "'1.2.3' is not a number"),
])
def test_bad_weights_are_refused_clearly(engine, photo, depth, text, message):
    with pytest.raises(ParamError, match=message):
        prompts.parse(text)
    with pytest.raises(ParamError, match=message):
        run(engine, photo, depth, f"a {text}")


# -- pictures -----------------------------------------------------------------------------------
def test_weight_one_is_bit_exact_and_weights_change_the_picture(engine, photo, depth):
    plain = pixels(run(engine, photo, depth, "a red cat on a mat"))
    assert np.array_equal(pixels(run(engine, photo, depth, "a red (cat:1.0) on a mat")), plain)
    assert np.array_equal(pixels(run(engine, photo, depth, "a red cat on a mat BREAK")), plain)  # empty chunk pads only
    for weighted in ("a red ((cat)) on a mat", "a red [cat] on a mat"):
        assert not np.array_equal(pixels(run(engine, photo, depth, weighted)), plain), weighted
    change = [np.abs(pixels(run(engine, photo, depth, f"a red (cat:{w}) on a mat")) - plain).mean() for w in (1.6, 3)]
    assert 0 < change[0] < change[1]  # the demo's text encoder is weak: 1.1 moves a few pixels, 3 moves many


def test_a_word_after_token_75_changes_the_picture_and_chunks_are_padded_on_both_sides(engine, photo, depth):
    long = " ".join(["a"] * 80)  # one token each in the demo's vocabulary
    tokens = engine.pipe.tokenizer(long, add_special_tokens=False).input_ids
    assert len(tokens) == 80
    embeds, negative, _ = prompts.encode(engine.pipe, long, "", "cpu")
    assert embeds.shape[1] == negative.shape[1] == 2 * engine.pipe.tokenizer.model_max_length
    with torch.inference_mode():  # the pipeline's own encoding cuts the prompt at 75 tokens
        cut = [engine.pipe.encode_prompt(text, "cpu", 1, False)[0] for text in (long, long + " x")]
    assert torch.equal(*cut)
    base = pixels(run(engine, photo, depth, long))
    assert not np.array_equal(pixels(run(engine, photo, depth, long + " x")), base)
    assert not np.array_equal(pixels(run(engine, photo, depth, "a cat", negative_prompt=long + " x")),
                              pixels(run(engine, photo, depth, "a cat", negative_prompt=long)))


def test_chunks_break_after_a_nearby_comma(engine):
    text = " ".join(["a"] * 70) + ", " + " ".join(["a"] * 10)  # 81 tokens, a comma at 71
    chunks = [tokens for tokens, _ in prompts._chunks(engine.pipe, prompts.parse(text))]
    comma = engine.pipe.tokenizer.convert_tokens_to_ids(",</w>")
    assert [len(tokens) for tokens in chunks] == [71, 10] and chunks[0][-1] == comma
    no_comma = [tokens for tokens, _ in prompts._chunks(engine.pipe, prompts.parse(" ".join(["a"] * 81)))]
    assert [len(tokens) for tokens in no_comma] == [75, 6]


def test_recorded_prompt_keeps_the_text_and_notes_report_brackets(engine, photo, depth):
    result = run(engine, photo, depth, "a (cat:1.3) on a mat)")
    assert parse_parameters(result.parameters_text(0))["prompt"] == "a (cat:1.3) on a mat)"
    assert any("read as text" in note for note in result.notes)


def test_cache_keeps_working_with_weights(engine, photo, depth):
    engine.invalidate_prompt_cache()
    before = dict(engine.prompt_cache_stats)
    first = pixels(run(engine, photo, depth, "a (harbour:1.4)"))
    again = pixels(run(engine, photo, depth, "a (harbour:1.4)"))
    assert engine.prompt_cache_stats["misses"] - before["misses"] == 1
    assert engine.prompt_cache_stats["hits"] - before["hits"] == 1
    assert np.array_equal(first, again)


def test_lora_tags_and_embeddings_inside_weights(engine, photo, depth, isolated_data_dir):
    library = Library()
    write_lora(library.root / "ink.safetensors", lora_state(engine.pipe, "peft", seed=3))
    write_a1111_embedding(library.root / "concept.safetensors", embedding_vectors(count=3, seed=2) * 0.5)
    plain = pixels(run(engine, photo, depth, "a concept harbour <lora:ink:0.8>"))
    same = pixels(run(engine, photo, depth, "a (concept:1.0) harbour <lora:ink:0.8>"))
    weighted = run(engine, photo, depth, "a (concept:1.5) harbour <lora:ink:0.8>")
    assert np.array_equal(plain, same)
    assert np.abs(pixels(weighted) - plain).max() > 5
    fields = parse_parameters(weighted.parameters_text(0))
    assert fields["prompt"] == "a (concept:1.5) harbour <lora:ink:0.8>"
    assert "Lora hashes" in fields and "TI hashes" in fields


def test_weighted_chunks_keep_their_mean(engine):
    norm = engine.pipe.text_encoder.final_layer_norm
    with torch.inference_mode():
        plain, _, _ = prompts.encode(engine.pipe, "a red cat on a mat", "", "cpu")
        bias = norm.bias.clone()
        norm.bias.add_(0.25)  # a trained encoder's output has a mean; the demo's layer norm has none
        try:
            shifted, _, _ = prompts.encode(engine.pipe, "a red cat on a mat", "", "cpu")
            weighted, _, _ = prompts.encode(engine.pipe, "a red (cat:1.5) on a mat", "", "cpu")
        finally:
            norm.bias.copy_(bias)
    assert weighted.mean().item() == pytest.approx(shifted.mean().item(), rel=1e-5)
    assert not torch.allclose(weighted, shifted)
    assert plain.mean().abs() < 1e-6 < shifted.mean().abs()
