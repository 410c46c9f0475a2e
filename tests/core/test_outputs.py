"""Saving outputs (never overwriting, atomic) and reading other tools' generation text."""

import json
import os
import random
import re
import sys

import pytest
from PIL import Image

from d2i_desktop.core.errors import ImageError, ParamError
from d2i_desktop.core.files.outputs import (
    OutputError,
    OutputExistsError,
    parse_parameters,
    read_parameters,
    save_numbered_png,
    save_png,
    save_unique_png,
)
from d2i_desktop.core.files.outputs import _unquote
from d2i_desktop.core.generation.params import GenerationParams, parameters_text

A1111_TEXT = (
    "photo of a duck\nNegative prompt: monochrome\nSteps: 15, Sampler: UniPC, CFG scale: 5, "
    "Seed: 235284042, Size: 512x400, Model hash: c0d1994c73, Model: realistic_realisticVisionV20_v20"
)


def _picture() -> Image.Image:
    return Image.new("RGB", (64, 48), (200, 100, 50))


def _names(folder) -> list[str]:
    return sorted(entry.name for entry in folder.iterdir())


# --- save_png ----------------------------------------------------------------------------------

def test_save_png_writes_parameters_that_survive_non_ascii(tmp_path):
    text = "a café in 東京, \"quoted\"\nNegative prompt: ugly\nSteps: 20, Seed: 1, Size: 64x48"
    path = save_png(_picture(), tmp_path / "out.png", text)
    assert path == tmp_path / "out.png"
    with Image.open(path) as saved:
        assert saved.format == "PNG" and saved.size == (64, 48)
    assert read_parameters(path) == text
    assert _names(tmp_path) == ["out.png"]  # no temp file left behind


def test_save_png_creates_parent_folders(tmp_path):
    path = save_png(_picture(), tmp_path / "a" / "b" / "out.png")
    assert path.is_file()
    assert read_parameters(path) is None


def test_save_png_never_overwrites(tmp_path):
    target = tmp_path / "keep.png"
    target.write_bytes(b"precious")
    with pytest.raises(OutputExistsError) as caught:
        save_png(_picture(), target, "text")
    assert "keep.png" in caught.value.message and caught.value.hint
    assert caught.value.path == target
    assert target.read_bytes() == b"precious"
    assert _names(tmp_path) == ["keep.png"]


def test_image_that_fails_to_encode_leaves_nothing_behind(tmp_path):
    with pytest.raises(OutputError) as caught:
        save_png(Image.new("CMYK", (8, 8)), tmp_path / "out.png")  # PNG cannot hold CMYK
    assert "out.png" in caught.value.message and caught.value.hint
    assert _names(tmp_path) == []


def test_folder_that_cannot_be_created_is_reported(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("in the way")
    with pytest.raises(OutputError):
        save_png(_picture(), blocker / "out.png")
    assert _names(tmp_path) == ["file"]


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0,
                    reason="folder permissions do not stop Windows users or root")
def test_unwritable_folder_is_reported(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(OutputError, match="Could not save"):
            save_png(_picture(), folder / "out.png")
        assert _names(folder) == []
    finally:
        folder.chmod(0o700)


# --- unique and numbered names -----------------------------------------------------------------

def test_save_unique_png_picks_the_next_free_name(tmp_path):
    first = save_unique_png(_picture(), tmp_path / "render.png")
    (tmp_path / "render-1.png").write_bytes(b"someone else's")
    second = save_unique_png(_picture(), tmp_path / "render.png", "two")
    third = save_unique_png(_picture(), tmp_path / "render.png", "three")
    assert [first.name, second.name, third.name] == ["render.png", "render-2.png", "render-3.png"]
    assert (tmp_path / "render-1.png").read_bytes() == b"someone else's"
    assert read_parameters(third) == "three"
    assert _names(tmp_path) == ["render-1.png", "render-2.png", "render-3.png", "render.png"]


def test_save_numbered_png_counts_up_from_the_highest_number(tmp_path):
    assert save_numbered_png(_picture(), tmp_path / "new", 42).name == "00001-42.png"
    (tmp_path / "00007-123.png").write_bytes(b"x")
    (tmp_path / "00003-9.jpg").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("x")
    assert save_numbered_png(_picture(), tmp_path, 42).name == "00008-42.png"
    assert save_numbered_png(_picture(), tmp_path, 42).name == "00009-42.png"


# --- reading other tools' metadata -------------------------------------------------------------

@pytest.mark.parametrize("name", ["sdparsers_automatic1111_cropped.png", "sdparsers_automatic1111_cropped.jpg",
                                  "sdparsers_text_after_idat.png"])
def test_read_automatic1111_parameters(third_party_samples, name):
    assert read_parameters(third_party_samples / name) == A1111_TEXT


def test_read_fooocus_returns_its_raw_json(third_party_samples):
    text = read_parameters(third_party_samples / "sdparsers_fooocus1_cropped.png")
    assert json.loads(text)["prompt"] == "a smiling goldfish"


def test_read_invokeai_returns_its_raw_json(third_party_samples):
    text = read_parameters(third_party_samples / "sdparsers_invokeai_imeta1.png")
    assert json.loads(text)["positive_prompt"].startswith("digital artwork")


def test_read_comfyui_returns_its_raw_prompt_graph(third_party_samples):
    text = read_parameters(third_party_samples / "sdparsers_img2img_cropped.png")
    assert json.loads(text)["3"]["inputs"]["steps"] == 20


def test_files_without_metadata_give_none(third_party_samples):
    assert read_parameters(third_party_samples / "pillow_hopper.png") is None
    assert read_parameters(third_party_samples / "sdparsers_empty_image.png") is None


def test_empty_file_is_an_image_error_not_none(third_party_samples):
    # Decision: None means "a readable image without generation text"; a file that is not
    # an image at all is reported like everywhere else.
    with pytest.raises(ImageError, match="empty"):
        read_parameters(third_party_samples / "sdparsers_empty_file.png")


@pytest.mark.parametrize("prefix, encoded", [
    (b"UNICODE\0", "cat, café: 東京".encode("utf-16-be")),
    (b"UNICODE\0", "cat, café: 東京".encode("utf-16-le")),
    (b"ASCII\0\0\0", "cat, café: 東京".encode("utf-8")),
])
@pytest.mark.parametrize("suffix", [".jpg", ".webp"])
def test_exif_user_comment_encodings(tmp_path, prefix, encoded, suffix):
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = prefix + encoded
    path = tmp_path / f"comment{suffix}"
    _picture().save(path, exif=exif)
    assert read_parameters(path) == "cat, café: 東京"


# --- parsing -----------------------------------------------------------------------------------

def test_parse_automatic1111_sample(third_party_samples):
    fields = parse_parameters(read_parameters(third_party_samples / "sdparsers_automatic1111_cropped.png"))
    assert fields == {
        "prompt": "photo of a duck", "negative_prompt": "monochrome", "Steps": "15", "Sampler": "UniPC",
        "CFG scale": "5", "Seed": "235284042", "Size": "512x400", "Model hash": "c0d1994c73",
        "Model": "realistic_realisticVisionV20_v20",
    }


def test_parse_without_settings_line_is_all_prompt():
    assert parse_parameters("just a prompt, with a comma") == {
        "prompt": "just a prompt, with a comma", "negative_prompt": ""}


def test_round_trip_with_parameters_text_through_a_file(tmp_path):
    params = GenerationParams(
        prompt='a "quoted" cat, sitting: on a mat\nsecond line — café 東京',
        negative_prompt="blurry, low quality: bad",
        strength=0.65, steps=28, guidance_scale=6.5, seed=123, scheduler="Euler a",
    ).validated()
    extra = {"Note": 'say "hi", then: go\nnext \\ line', "Depth": "estimated"}
    text = parameters_text(params, seed=123, size=(768, 512), model_name="sd2-depth, v1: demo", extra=extra)
    path = save_png(_picture(), tmp_path / "round.png", text)
    fields = parse_parameters(read_parameters(path))
    assert fields == {
        "prompt": params.prompt, "negative_prompt": params.negative_prompt, "Steps": "28",
        "Sampler": "Euler a", "CFG scale": "6.5", "Seed": "123", "Size": "768x512",
        "Model": "sd2-depth, v1: demo", "Denoising strength": "0.65", **extra,
    }


def test_round_trip_without_negative_prompt():
    params = GenerationParams(prompt="mountains").validated()
    fields = parse_parameters(parameters_text(params, seed=7, size=(512, 512), model_name="m"))
    assert fields["prompt"] == "mountains" and fields["negative_prompt"] == ""
    assert fields["Sampler"] == params.scheduler


A1111_FIELD = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')  # AUTOMATIC1111's own pattern


def test_the_settings_line_is_read_as_automatic1111_reads_it():
    rng = random.Random(5)
    lines = ["".join(rng.choice('ab :,"\\-/_é\t') for _ in range(rng.randint(1, 40))) for _ in range(5000)]
    lines.append('Steps: 20, Sampler: DPM++ 2M, Lora hashes: "ink: 0123abcd, sky: 4567", Size: 512x512, Model: x')
    for line in lines:
        expected = A1111_FIELD.findall(line)
        fields = parse_parameters(f"prompt\n{line}")
        if len(expected) >= 3:
            assert {k: v for k, v in fields.items() if k not in ("prompt", "negative_prompt")} == \
                {key.strip(): _unquote(value.strip()) for key, value in expected}, line
        else:
            assert fields == {"prompt": f"prompt\n{line}", "negative_prompt": ""}, line


def test_a_long_line_without_a_colon_is_prompt_text():
    line = "a" * 30_000  # AUTOMATIC1111's pattern backtracks for seconds on this
    assert parse_parameters(line) == {"prompt": line, "negative_prompt": ""}


def test_settings_text_over_the_limit_is_refused_with_a_message():
    with pytest.raises(ParamError, match="settings text is 150 KB long"):
        parse_parameters("x" * 150_000)
