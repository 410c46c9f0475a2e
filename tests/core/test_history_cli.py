"""`d2i generate` records and indexes; `d2i history` and `d2i info` as a user runs them: real processes, real files."""

import json
import subprocess
import sys

import pytest

SAMPLES = ("sdparsers_automatic1111_cropped.png", "sdparsers_automatic1111_cropped.jpg", "sdparsers_text_after_idat.png",
           "sdparsers_fooocus1_cropped.png", "sdparsers_invokeai_imeta1.png", "sdparsers_img2img_cropped.png")


def d2i(*args):
    return subprocess.run([sys.executable, "-m", "d2i_desktop.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


def test_generate_indexes_and_history_reproduces_bit_for_bit(demo_model_dir, make_photo, tmp_path):
    photo = make_photo(96, 64)
    run = d2i("generate", "--model", demo_model_dir, "--image", photo, "--prompt", "a stone bridge at dusk",
              "--steps", "4", "--seed", "9", "--images", "2", "--out", tmp_path / "out.png")
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "out.depth.png").is_file() and (tmp_path / "out-1.depth.png").is_file()

    listed = d2i("history", "list", "--search", "bridge", "--json")
    assert listed.returncode == 0, listed.stderr
    entries = json.loads(listed.stdout)
    assert sorted(entry["seed"] for entry in entries) == [9, 10]
    assert d2i("history", "list", "--search", "castle", "--json").stdout.strip() == "[]"
    text = d2i("history", "list").stdout
    assert "a stone bridge at dusk" in text and str(tmp_path / "out-1.png") in text

    second = next(entry for entry in entries if entry["seed"] == 10)
    shown = json.loads(d2i("history", "show", second["id"], "--json").stdout)
    assert shown["tool"] == "d2i-desktop" and shown["record"]["batch"]["index"] == 1

    again = d2i("history", "reproduce", second["id"], "--out", tmp_path / "again.png")
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith(f"{tmp_path / 'again.png'}: identical to the recorded picture")

    (tmp_path / "out.depth.png").unlink()  # an estimated map: estimated again, with the recorded estimator
    first = next(entry for entry in entries if entry["seed"] == 9)
    missing = d2i("history", "reproduce", first["id"], "--out", tmp_path / "x.png")
    assert missing.returncode == 0, missing.stderr
    assert "out.depth.png beside the picture is missing: estimating it again (estimated with DPT-Hybrid" in missing.stderr
    assert missing.stdout.startswith(f"{tmp_path / 'x.png'}: identical to the recorded picture")


def test_bad_input_gets_one_line(tmp_path, make_photo):
    for args, words in ((("history", "show", "5"), "no picture 5 in the history"),
                        (("info", tmp_path / "nothing.png"), "is not there"),
                        (("info", make_photo(64, 64)), "carries no generation settings"),
                        (("history", "reproduce", "1", "--out", tmp_path / "x.png"), "no picture 1")):
        run = d2i(*args)
        assert run.returncode == 2 and words in run.stderr, run.stderr
        assert "Traceback" not in run.stderr


@pytest.mark.parametrize("name", SAMPLES)
def test_info_reads_other_tools_pictures(third_party_samples, name):
    run = d2i("info", third_party_samples / name, "--json")
    assert run.returncode == 0, run.stderr
    info = json.loads(run.stdout)
    expected = {"automatic1111": ("AUTOMATIC1111", "photo of a duck", 235284042, "UniPC"),
                "text_after": ("AUTOMATIC1111", "photo of a duck", 235284042, "UniPC"),
                "fooocus": ("Fooocus", "cinematic still a smiling goldfish", -1, "DPM++ 2M SDE Karras"),
                "invokeai": ("InvokeAI", "digital artwork, oil painting", 3293022630, "Euler"),
                "img2img": ("ComfyUI", "photograph of victorian woman with wings", -1, "DPM++ 2M")}
    tool, prompt, seed, sampler = next(value for key, value in expected.items() if key in name)
    assert info["tool"] == tool and info["prompt"].startswith(prompt)
    assert info["params"]["seed"] == seed and info["params"]["scheduler"] == sampler
    notes = " ".join(info["notes"])
    if tool in ("Fooocus", "InvokeAI"):
        assert "(SDXL): its prompt and seed give another picture" in notes
    if tool in ("Fooocus", "ComfyUI"):
        assert "beyond this app's 32-bit seeds" in notes
    if tool == "ComfyUI":
        assert info["params"]["strength"] == pytest.approx(0.87) and "(SD 1.5)" in notes


def test_info_on_an_empty_sample_file(third_party_samples):
    run = d2i("info", third_party_samples / "sdparsers_empty_file.png")
    assert run.returncode == 2 and "empty" in run.stderr and "Traceback" not in run.stderr
    run = d2i("info", third_party_samples / "sdparsers_empty_image.png")
    assert run.returncode == 2 and "carries no generation settings" in run.stderr
