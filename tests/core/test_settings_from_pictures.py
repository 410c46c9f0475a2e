"""Taking over the settings other pictures carry: real files from AUTOMATIC1111 and others."""

import pytest

from d2i_desktop.core.errors import ParamError
from d2i_desktop.core.files.outputs import parse_parameters, read_parameters
from d2i_desktop.core.generation.params import GenerationParams, parameters_text, params_from_fields

BASE = GenerationParams(prompt="current", steps=30, strength=0.6, scheduler="Euler")


@pytest.mark.parametrize("name", ["sdparsers_automatic1111_cropped.png", "sdparsers_automatic1111_cropped.jpg"])
def test_automatic1111_pictures(third_party_samples, name):
    fields = parse_parameters(read_parameters(third_party_samples / name))
    params, notes = params_from_fields(fields, BASE)
    assert (params.prompt, params.negative_prompt) == ("photo of a duck", "monochrome")
    assert (params.steps, params.guidance_scale, params.seed, params.scheduler) == (15, 5.0, 235284042, "UniPC")
    assert params.strength == 0.6  # a txt2img picture has no denoising strength: the current one stays
    assert notes == ["It was made with the model 'realistic_realisticVisionV20_v20'."]


@pytest.mark.parametrize("name", ["sdparsers_fooocus1_cropped.png", "sdparsers_img2img_cropped.png"])
def test_other_formats_are_refused_clearly(third_party_samples, name):
    with pytest.raises(ParamError, match="not in the AUTOMATIC1111 format"):
        params_from_fields(parse_parameters(read_parameters(third_party_samples / name)), BASE)


def test_our_own_text_round_trips():
    made = GenerationParams(prompt="a quay, dusk: rain", negative_prompt="blur", strength=0.45, steps=28,
                            guidance_scale=6.5, seed=77, scheduler="DPM++ 2M SDE Karras")
    text = parameters_text(made, 77, (512, 384), "my-model")
    params, notes = params_from_fields(parse_parameters(text), BASE)
    assert params == made
    assert notes == ["It was made with the model 'my-model'."]


def test_schedule_type_karras_and_unknown_samplers():
    fields = {"prompt": "p", "Steps": "20", "Sampler": "DPM++ 2M", "Schedule type": "Karras", "Seed": "1"}
    assert params_from_fields(fields, BASE)[0].scheduler == "DPM++ 2M Karras"
    params, notes = params_from_fields(fields | {"Sampler": "Restart", "Schedule type": ""}, BASE)
    assert params.scheduler == "Euler" and "Sampler 'Restart' is not available here" in notes[0]


def test_values_out_of_range_keep_the_current_ones():
    params, notes = params_from_fields({"prompt": "p", "Steps": "9000", "Seed": "x"}, BASE)
    assert params.steps == 30 and params.seed == -1
    assert any("Seed 'x' is not a number" in n for n in notes) and any("Steps 9000" in n for n in notes)
