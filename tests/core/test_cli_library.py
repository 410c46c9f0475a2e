"""`d2i library …` and `d2i generate --lora` through the real CLI entry point."""

import os

import numpy as np
import pytest
from PIL import Image

from d2i_desktop.cli import main
from d2i_desktop.core.extras.library import Library
from d2i_desktop.core.files.outputs import parse_parameters, read_parameters
from library_samples import embedding_vectors, lora_state, write_a1111_embedding, write_lora, write_pickle_payload


@pytest.fixture(scope="module")
def pipe():
    from d2i_desktop.core.models.demo import build_demo_pipeline

    return build_demo_pipeline()


def test_import_list_and_remove(pipe, tmp_path, capsys, monkeypatch, isolated_data_dir):
    from send2trash import plat_other

    monkeypatch.setattr(plat_other, "XDG_DATA_HOME", os.fsencode(tmp_path / "share"))
    monkeypatch.setattr(plat_other, "HOMETRASH_B", os.fsencode(tmp_path / "share" / "Trash"))
    lora = write_lora(tmp_path / "in" / "ink.safetensors", lora_state(pipe, "kohya"))
    embedding = write_a1111_embedding(tmp_path / "in" / "moody.pt", embedding_vectors())

    assert main(["library", "import", str(lora), str(embedding), str(lora)]) == 0
    imported = capsys.readouterr().out
    assert main(["library", "list"]) == 0
    listed = capsys.readouterr().out
    assert main(["library", "remove", "ink"]) == 0

    assert "ink\tLoRA\t" in imported and "moody\tembedding\t" in imported
    assert "note: ink.safetensors is already in the library as 'ink'." in imported
    assert [line.split("\t")[:3] for line in listed.splitlines()] == [
        ["ink", "LoRA", "a 32-wide model"], ["moody", "embedding", "a 32-wide model"]]
    assert [item.name for item in Library().items()] == ["moody"]


def test_refusals_are_one_line_with_exit_2(tmp_path, capsys, isolated_data_dir):
    marker = tmp_path / "ran"
    payload = write_pickle_payload(tmp_path / "evil.pt", marker)

    assert main(["library", "import", str(payload)]) == 2
    assert main(["library", "remove", "nothing"]) == 2
    errors = capsys.readouterr().err.strip().splitlines()

    assert errors[0].startswith("error: evil.pt holds code, not just weights")
    assert errors[1].startswith("error: There is nothing named 'nothing' in the library.")
    assert not marker.exists()


def test_generate_with_lora_option(pipe, demo_model_dir, tmp_path, capsys, isolated_data_dir):
    write_lora(Library().root / "ink.safetensors", lora_state(pipe, "peft"))
    image = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(image)
    common = ["generate", "--model", str(demo_model_dir), "--image", str(image), "--prompt", "a wall", "--steps", "2",
              "--strength", "1", "--seed", "3", "--device", "cpu"]

    assert main([*common, "--lora", "ink:0.6", "--out", str(tmp_path / "out.png")]) == 0
    assert main([*common, "--lora", "ink:lots", "--out", str(tmp_path / "bad.png")]) == 2

    fields = parse_parameters(read_parameters(tmp_path / "out.png"))
    assert fields["prompt"] == "a wall <lora:ink:0.6>"
    assert fields["Lora hashes"].startswith("ink: ")
    assert "error: --lora ink:lots: 'lots' is not a weight." in capsys.readouterr().err


def test_extra_folders_are_added_listed_and_removed(pipe, tmp_path, capsys, isolated_data_dir):
    extra = tmp_path / "my-loras"
    write_lora(extra / "outside.safetensors", lora_state(pipe, "peft"))

    assert main(["library", "add-folder", str(extra)]) == 0
    assert capsys.readouterr().out == "1 files in the library's folders\n"
    assert main(["library", "folders"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert main(["library", "remove-folder", str(extra / ".." / "my-loras")]) == 0
    assert main(["library", "remove-folder", str(extra)]) == 2

    assert listed == [str(Library().root), str(extra.resolve())]
    assert "is not one of the library's extra folders" in capsys.readouterr().err
    assert Library().items() == [] and (extra / "outside.safetensors").is_file()
