"""The library: scanning, what files say about themselves, import, trash, edits, and refusals of bad files."""

import json
import os

import pytest
import torch
from PIL import Image

from d2i_desktop.core.extras.library import EMBEDDING, LORA, AlreadyInLibrary, Library
from d2i_desktop.core.extras.lora_files import LibraryFileError, inspect_file, read_safetensors_header, short_hash
from library_samples import (
    embedding_vectors, lora_state, sd1_lora, sdxl_lora, write_a1111_embedding, write_diffusers_embedding, write_lora,
    write_pickle_payload,
)


@pytest.fixture(scope="module")
def pipe():
    from d2i_desktop.core.models.demo import build_demo_pipeline

    return build_demo_pipeline()


@pytest.fixture
def library(isolated_data_dir):
    return Library()


@pytest.fixture
def trash(tmp_path, monkeypatch):
    """Send the system trash to a temporary folder so tests leave nothing in the real one."""
    from send2trash import plat_other

    share = tmp_path / "share"
    monkeypatch.setattr(plat_other, "XDG_DATA_HOME", os.fsencode(share))
    monkeypatch.setattr(plat_other, "HOMETRASH_B", os.fsencode(share / "Trash"))
    return share / "Trash" / "files"


def test_scan_tells_kind_layout_and_base_model(library, pipe, tmp_path):
    write_lora(library.root / "peft-style.safetensors", lora_state(pipe, "peft"))
    write_lora(library.root / "kohya-style.safetensors", lora_state(pipe, "kohya"))
    write_lora(library.root / "old-sd1.safetensors", sd1_lora())
    write_lora(library.root / "big-xl.safetensors", sdxl_lora())
    write_diffusers_embedding(library.root / "concept.safetensors", embedding_vectors(3))
    write_a1111_embedding(library.root / "a1111-pt.pt", embedding_vectors(2))
    write_a1111_embedding(library.root / "a1111-st.safetensors", embedding_vectors(1, width=768))
    (library.root / "notes.md").write_text("not a weights file")

    items = {item.name: item for item in library.items()}

    assert set(items) == {"peft-style", "kohya-style", "old-sd1", "big-xl", "concept", "a1111-pt", "a1111-st"}
    assert [items[n].kind for n in ("peft-style", "kohya-style", "old-sd1", "big-xl")] == [LORA] * 4
    assert [items[n].kind for n in ("concept", "a1111-pt", "a1111-st")] == [EMBEDDING] * 3
    assert items["old-sd1"].base_model == "SD 1.x"
    assert items["big-xl"].base_model == "SDXL"
    assert items["a1111-st"].base_model == "SD 1.x"
    assert items["peft-style"].base_model == items["concept"].base_model == "a 32-wide model"
    assert all(item.usable for item in items.values())
    assert items["peft-style"].size == (library.root / "peft-style.safetensors").stat().st_size


def test_metadata_is_read_from_the_header_without_the_weights(library, pipe):
    tags = {"img_dir_a": {"red coat": 30, "1girl": 50, "snow": 5}, "img_dir_b": {"red coat": 25, "forest": 12}}
    path = write_lora(library.root / "coat.safetensors", lora_state(pipe, "kohya"),
                      {"ss_base_model_version": "sd_v2", "ss_sd_model_name": "v2-1_768-ema-pruned.safetensors",
                       "ss_tag_frequency": json.dumps(tags)})
    shapes, metadata = read_safetensors_header(path)

    item = library.items()[0]

    assert metadata["ss_sd_model_name"] == "v2-1_768-ema-pruned.safetensors"
    assert all(isinstance(shape, tuple) for shape in shapes.values())
    assert item.suggested_words == ("red coat", "1girl", "forest", "snow")
    assert item.metadata["ss_base_model_version"] == "sd_v2"


def test_sidecar_files_give_trigger_words_weight_notes_and_preview(library, pipe):
    write_lora(library.root / "civitai.safetensors", lora_state(pipe, "peft"))
    (library.root / "civitai.civitai.info").write_text(json.dumps(
        {"trainedWords": ["inkwash", "sumi-e"], "baseModel": "SD 2.1", "description": "Ink wash painting"}))
    Image.new("RGB", (32, 32), "red").save(library.root / "civitai.preview.png")
    write_lora(library.root / "a1111.safetensors", lora_state(pipe, "peft", seed=1))
    (library.root / "a1111.json").write_text(json.dumps({"activation text": "neon, glow", "preferred weight": 0.6}))
    Image.new("RGB", (32, 32), "blue").save(library.root / "a1111.png")
    write_diffusers_embedding(library.root / "plain.safetensors", embedding_vectors())
    (library.root / "plain.txt").write_text("plainstyle\n")

    items = {item.name: item for item in library.items()}

    assert items["civitai"].trigger_words == ("inkwash", "sumi-e")
    assert items["civitai"].notes == "Ink wash painting"
    assert items["civitai"].thumbnail == library.root / "civitai.preview.png"
    assert items["a1111"].trigger_words == ("neon", "glow")
    assert items["a1111"].default_weight == 0.6
    assert items["a1111"].thumbnail == library.root / "a1111.png"
    assert items["plain"].trigger_words == ("plainstyle",)
    assert items["plain"].thumbnail is None


def test_user_edits_live_beside_the_library_and_leave_the_file_alone(library, pipe):
    path = write_lora(library.root / "mine.safetensors", lora_state(pipe, "peft"))
    before = path.read_bytes()

    library.edit("mine", trigger_words=["foggy", " dawn "], default_weight=0.75)
    thumb = library.set_thumbnail("mine", Image.new("RGB", (512, 256), "green"))
    item = library.items()[0]

    assert item.trigger_words == ("foggy", "dawn")
    assert item.default_weight == 0.75
    assert item.thumbnail == thumb and max(Image.open(thumb).size) == 256
    assert path.read_bytes() == before
    assert json.loads(library.settings_path.read_text())["items"]["mine"]["default_weight"] == 0.75
    assert library.settings_path.parent == library.root.parent


def test_extra_folders_are_scanned_in_place(library, pipe, tmp_path):
    elsewhere = tmp_path / "my-loras"
    write_lora(elsewhere / "outside.safetensors", lora_state(pipe, "peft"))

    library.add_folder(elsewhere)
    names = [item.name for item in library.items()]
    library.remove_folder(elsewhere.resolve())

    assert names == ["outside"]
    assert not (library.root / "outside.safetensors").exists()
    assert library.items() == []
    with pytest.raises(LibraryFileError, match="not a folder"):
        library.add_folder(tmp_path / "missing")


def test_import_copies_with_sidecars_and_detects_identical_files(library, pipe, tmp_path):
    source = write_lora(tmp_path / "downloads" / "style.safetensors", lora_state(pipe, "peft"))
    (source.parent / "style.txt").write_text("brushy")
    Image.new("RGB", (16, 16)).save(source.parent / "style.preview.png")

    item = library.import_file(source)
    with pytest.raises(AlreadyInLibrary, match="already in the library as 'style'"):
        library.import_file(source)
    renamed_copy = tmp_path / "other" / "style-copy.safetensors"
    renamed_copy.parent.mkdir()
    renamed_copy.write_bytes(source.read_bytes())
    with pytest.raises(AlreadyInLibrary):
        library.import_file(renamed_copy)

    assert item.path == library.root / "style.safetensors"
    assert item.path.read_bytes() == source.read_bytes() and source.exists()
    assert item.trigger_words == ("brushy",)
    assert item.thumbnail == library.root / "style.preview.png"
    assert sorted(p.name for p in library.root.iterdir()) == ["style.preview.png", "style.safetensors", "style.txt"]


def test_import_of_a_different_file_with_a_taken_name_picks_a_free_name(library, pipe, tmp_path):
    first = write_lora(tmp_path / "a" / "style.safetensors", lora_state(pipe, "peft", seed=1))
    second = write_lora(tmp_path / "b" / "style.safetensors", lora_state(pipe, "peft", seed=2))

    library.import_file(first)
    item = library.import_file(second)

    assert item.name == "style-2"
    assert (library.root / "style.safetensors").read_bytes() == first.read_bytes()


def test_duplicate_names_across_folders_are_marked_not_silently_mixed(library, pipe, tmp_path):
    write_lora(library.root / "twin.safetensors", lora_state(pipe, "peft", seed=1))
    write_lora(tmp_path / "extra" / "twin.safetensors", lora_state(pipe, "peft", seed=2))
    library.add_folder(tmp_path / "extra")

    first, second = library.items()

    assert first.usable and first.path.parent == library.root
    assert not second.usable and "Another LoRA named 'twin' comes first" in second.problem
    assert library.find("twin", LORA).path == first.path


def test_remove_sends_file_and_sidecars_to_the_trash_and_forgets_edits(library, pipe, trash):
    write_lora(library.root / "gone.safetensors", lora_state(pipe, "peft"))
    (library.root / "gone.txt").write_text("word")
    library.edit("gone", default_weight=0.5)

    library.remove(library.items()[0])

    assert list(library.root.iterdir()) == []
    assert sorted(p.name for p in trash.iterdir()) == ["gone.safetensors", "gone.txt"]
    assert "gone" not in json.loads(library.settings_path.read_text())["items"]


@pytest.mark.parametrize("damage, message", [
    (lambda p: p.write_bytes(b""), "is empty"),
    (lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), "is damaged: it is truncated"),
    (lambda p: p.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all"), "is damaged: its header is not valid JSON"),
    (lambda p: p.write_bytes(b"\xff" * 64), "is damaged: its header is larger than the file"),
])
def test_damaged_files_are_listed_with_a_clear_problem_and_refused_on_import(library, pipe, tmp_path, damage, message):
    path = write_lora(tmp_path / "bad.safetensors", lora_state(pipe, "peft"))
    damage(path)
    (library.root / "bad.safetensors").write_bytes(path.read_bytes())

    item = library.items()[0]

    assert not item.usable and message in item.problem
    with pytest.raises(LibraryFileError, match=message):
        library.import_file(path)
    with pytest.raises(LibraryFileError, match="cannot be used"):
        library.find("bad", LORA)


def test_truncated_pickle_file_is_refused(library, tmp_path):
    path = write_a1111_embedding(tmp_path / "cut.pt", embedding_vectors())
    path.write_bytes(path.read_bytes()[:200])

    with pytest.raises(LibraryFileError, match="cut.pt is damaged"):
        inspect_file(path)


def test_pickle_payload_never_runs(library, tmp_path):
    marker = tmp_path / "payload-ran"
    path = write_pickle_payload(tmp_path / "evil.pt", marker)

    with pytest.raises(LibraryFileError, match=r"holds code, not just weights \(it asks to run io.open\)"):
        library.import_file(path)
    (library.root / "evil.pt").write_bytes(path.read_bytes())
    item = library.items()[0]

    assert not marker.exists()
    assert not item.usable and "holds code" in item.problem
    assert [p.name for p in library.root.iterdir()] == ["evil.pt"]  # the import copied nothing


def test_lycoris_and_non_weight_files_are_refused(library, pipe, tmp_path):
    loha = {"lora_unet_mid_block_attentions_0_proj_in.hada_w1_a": torch.zeros(4, 4),
            "lora_unet_mid_block_attentions_0_proj_in.hada_w1_b": torch.zeros(4, 4),
            "lora_unet_mid_block_attentions_0_proj_in.lora_down.weight": torch.zeros(4, 64),
            "lora_unet_mid_block_attentions_0_proj_in.lora_up.weight": torch.zeros(64, 4)}
    with pytest.raises(LibraryFileError, match="LyCORIS"):
        inspect_file(write_lora(tmp_path / "loha.safetensors", loha))
    with pytest.raises(LibraryFileError, match="neither a LoRA nor an embedding"):
        inspect_file(write_lora(tmp_path / "random.safetensors", {"a": torch.zeros(2), "b": torch.zeros(3)}))
    (tmp_path / "picture.png").write_bytes(b"\x89PNG")
    with pytest.raises(LibraryFileError, match="not a LoRA or embedding file"):
        library.import_file(tmp_path / "picture.png")


def test_short_hash_is_automatic1111s(pipe, tmp_path):
    import hashlib
    import struct

    path = write_lora(tmp_path / "h.safetensors", lora_state(pipe, "peft"), {"ss_note": "metadata is not hashed"})
    data = path.read_bytes()
    header = 8 + struct.unpack("<Q", data[:8])[0]
    pt = write_a1111_embedding(tmp_path / "e.pt", embedding_vectors())

    assert short_hash(path) == hashlib.sha256(data[header:]).hexdigest()[:12]
    assert short_hash(pt) == hashlib.sha256(pt.read_bytes()).hexdigest()[:12]


def _write_header(path, header: dict, data: bytes = b""):
    import struct

    raw = json.dumps(header, separators=(",", ":")).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


def test_a_million_entry_header_is_refused_at_import_in_well_under_a_second(library, tmp_path):
    import time

    entries = {f"lora_unet_x{i}.alpha": {"dtype": "F32", "shape": [], "data_offsets": [0, 4]} for i in range(1_000_000)}
    path = _write_header(tmp_path / "huge.safetensors", entries, b"\0" * 4)
    started = time.perf_counter()
    with pytest.raises(LibraryFileError, match="huge.safetensors is damaged: implausible safetensors header"):
        library.import_file(path)
    assert time.perf_counter() - started < 5  # generous: it is refused before the header is parsed
    assert list(library.root.iterdir()) == []


@pytest.mark.parametrize("header, data, message", [
    ({"lora_unet_a.lora_down.weight": {"dtype": "F32", "shape": [2, 4], "data_offsets": [0, 32]},
      "lora_unet_a.lora_up.weight": {"dtype": "F32", "shape": [4, 2], "data_offsets": [16, 48]}}, 48, "overlap"),
    ({"lora_unet_a.lora_down.weight": {"dtype": "F32", "shape": [2, 4], "data_offsets": [0, 8]},
      "lora_unet_a.lora_up.weight": {"dtype": "F32", "shape": [4, 2], "data_offsets": [8, 40]}}, 40, "does not match its shape"),
    ({"lora_unet_a.lora_down.weight": {"dtype": "WHAT", "shape": [2, 4], "data_offsets": [0, 32]}}, 32, "bad entry"),
])
def test_lora_headers_get_the_same_checks_as_models(library, tmp_path, header, data, message):
    path = _write_header(tmp_path / "odd.safetensors", header, b"\0" * data)
    with pytest.raises(LibraryFileError, match=f"odd.safetensors is damaged: .*{message}"):
        library.import_file(path)


def test_names_that_cannot_be_written_in_a_lora_tag_are_sanitised_at_import(library, pipe, tmp_path):
    path = write_lora(tmp_path / "night: <city>\nstyle.safetensors", lora_state(pipe, "peft"))
    item = library.import_file(path)
    assert item.name == "night_ _city_style" and item.path.name == "night_ _city_style.safetensors"
    assert library.find("night_ _city_style", LORA).usable


def test_the_scan_cache_remembers_files_by_path_size_and_mtime_across_starts(library, pipe, isolated_data_dir):
    path = write_lora(library.root / "ink.safetensors", lora_state(pipe, "peft"))
    (library.root / "cut.safetensors").write_bytes(path.read_bytes()[:100])
    first = {item.name: item for item in Library().items()}
    assert first["ink"].usable and "is damaged" in first["cut"].problem
    assert (isolated_data_dir / "library-cache.json").is_file()

    # Same size and modification time: the next start takes what the file is from the cache, without reading it.
    stat = path.stat()
    path.write_bytes(b"\0" * stat.st_size)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    again = {item.name: item for item in Library().items()}
    assert again["ink"].usable and again["ink"].kind == LORA and again["cut"].problem == first["cut"].problem

    # A changed modification time means a changed file: it is read again.
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert not {item.name: item for item in Library().items()}["ink"].usable


def test_a_damaged_scan_cache_is_rebuilt(library, pipe, isolated_data_dir):
    write_lora(library.root / "ink.safetensors", lora_state(pipe, "peft"))
    (isolated_data_dir / "library-cache.json").write_text('{"' + str(library.root / "ink.safetensors") + '": {"stamp"')
    assert [item.usable for item in Library().items()] == [True]
    assert json.loads((isolated_data_dir / "library-cache.json").read_text())
