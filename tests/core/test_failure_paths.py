"""Failure paths: the CLI speaks in one line, app data is never thrown away, interrupted saves leave nothing behind."""

import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from d2i_desktop import cli
from d2i_desktop.core.files import app_data
from d2i_desktop.core.models import registry as models
from d2i_desktop.core.files import outputs
from d2i_desktop.core.models.checkpoints import load_state_dict
from d2i_desktop.core.depth.maps import save_depth_npy, save_depth_png16
from d2i_desktop.core.errors import ImageError, ModelError
from d2i_desktop.core.extras.library import Library
from d2i_desktop.core.files.outputs import OutputError, read_parameters, save_png


@pytest.fixture(autouse=True)
def no_leftover_notices():
    app_data.take_notices()
    yield
    app_data.take_notices()


def d2i(*args, env=None):
    return subprocess.run([sys.executable, "-m", "d2i_desktop.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})})


# -- the CLI and the log -------------------------------------------------------------------
def test_a_truncated_weight_file_gives_one_line_and_the_traceback_goes_to_the_log(demo_model_dir, make_photo, tmp_path,
                                                                                   isolated_data_dir):
    broken = shutil.copytree(demo_model_dir, tmp_path / "broken-model")
    weights = next((broken / "unet").glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:-5000])
    run = d2i("generate", "--model", broken, "--image", make_photo(64, 64), "--prompt", "p", "--steps", "2",
              "--out", tmp_path / "out.png")
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "broken-model" in errors[0]
    assert "Traceback" in (isolated_data_dir / "d2i-desktop.log").read_text()


def test_an_unexpected_error_names_the_log_file_and_exits_1(monkeypatch, capsys, isolated_data_dir):
    def broken(args):
        raise RuntimeError("a bug inside the app")

    monkeypatch.setitem(cli.COMMANDS, "library", broken)
    assert cli.main(["library", "list"]) == 1
    err = capsys.readouterr().err
    log = isolated_data_dir / "d2i-desktop.log"
    assert err.count("\n") == 1 and err.startswith("error:") and str(log) in err and "Traceback" not in err
    assert "RuntimeError: a bug inside the app" in log.read_text()


def test_offline_without_the_model_the_cli_hint_names_d2i_download(tmp_path, monkeypatch, capsys, no_network):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    assert cli.main(["models", "add", "someone/some-depth-model"]) == 2
    err = capsys.readouterr().err
    assert "d2i download someone/some-depth-model" in err and "Models…" not in err


def test_an_oversized_png_text_chunk_is_named_as_such(tmp_path):
    info = PngInfo()
    info.add_text("parameters", "x" * 2_000_000, zip=True)  # a zTXt chunk beyond Pillow's safety limit
    path = tmp_path / "big-text.png"
    Image.new("RGB", (64, 64)).save(path, pnginfo=info)
    with pytest.raises(ImageError, match="text metadata") as raised:
        read_parameters(path)
    assert "pixels" not in raised.value.message


def test_a_checkpoint_with_numpy_numbers_is_data_and_loads(tmp_path):
    path = tmp_path / "with-step.ckpt"
    torch.save({"state_dict": {"w": torch.ones(2)}, "global_step": np.int64(1200), "epoch": np.float64(3.0)}, path)
    assert torch.equal(load_state_dict(path)["w"], torch.ones(2))


class _RunsCode:
    def __reduce__(self):
        return os.system, ("echo never",)


def test_a_checkpoint_that_runs_code_is_refused_naming_what_it_asks_for(tmp_path):
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"w": torch.ones(2)}, "payload": _RunsCode()}, path)
    with pytest.raises(ModelError, match="run code.*system"):
        load_state_dict(path)


# -- app data is never thrown away -----------------------------------------------------------
def test_a_corrupt_model_list_is_kept_aside_and_the_cli_says_so(isolated_data_dir, demo_model_dir, capsys):
    isolated_data_dir.mkdir(parents=True, exist_ok=True)
    (isolated_data_dir / "models.json").write_text('[{"name": "mine", "source": "/models/mi')  # cut short
    assert cli.main(["models", "add", str(demo_model_dir)]) == 0
    err = capsys.readouterr().err
    kept = list(isolated_data_dir.glob("models.json.corrupt-*"))
    assert len(kept) == 1 and kept[0].read_text() == '[{"name": "mine", "source": "/models/mi'
    assert err.count("note:") == 1 and kept[0].name in err
    assert [e.source for e in models.ModelRegistry().entries()] == [str(demo_model_dir)]


def test_a_model_list_of_the_wrong_shape_is_kept_aside_too(isolated_data_dir):
    isolated_data_dir.mkdir(parents=True, exist_ok=True)
    (isolated_data_dir / "models.json").write_text('{"name": "not a list"}')
    assert models.ModelRegistry().entries() == []
    assert len(list(isolated_data_dir.glob("models.json.corrupt-*"))) == 1
    assert "model list" in app_data.take_notices()[0]


def test_a_corrupt_library_settings_file_is_kept_aside(isolated_data_dir, tmp_path):
    library = Library()
    library.settings_path.write_bytes(b'{"folders": ["/my/loras"], "items": {"style": {"trigger_w\x00\x00')
    assert library.folders() == [library.root]
    library.edit("style", default_weight=0.7)  # the next save must not overwrite the damaged file
    kept = list(isolated_data_dir.glob("library.json.corrupt-*"))
    assert len(kept) == 1 and b"/my/loras" in kept[0].read_bytes()
    assert json.loads(library.settings_path.read_text())["items"]["style"]["default_weight"] == 0.7
    assert len(app_data.take_notices()) == 1


def test_models_add_refuses_a_pickle_that_would_run_code(tmp_path, capsys, isolated_data_dir):
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": {"w": torch.ones(2)}, "payload": _RunsCode()}, path)
    assert cli.main(["models", "add", str(path)]) == 2
    assert "run code" in capsys.readouterr().err
    assert models.ModelRegistry().entries() == []


def test_models_add_stores_absolute_paths(demo_model_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(demo_model_dir.parent)
    entry = models.add_model(demo_model_dir.name)
    assert entry.source == str(demo_model_dir.resolve())
    monkeypatch.chdir(tmp_path)
    assert models.ModelRegistry().get(str(demo_model_dir)) == entry


# -- interrupted saves ---------------------------------------------------------------------------
def test_stale_temporaries_are_swept_and_fresh_ones_kept(tmp_path):
    folder = tmp_path / "outputs"
    folder.mkdir()
    stale, fresh = folder / ".d2i-0123456789ab.png.tmp", folder / ".d2i-ba9876543210.png.tmp"
    foreign = folder / ".other-app.tmp"
    for path in (stale, fresh, foreign):
        path.write_bytes(b"\0" * 1000)
    two_days_ago = time.time() - 2 * 24 * 3600
    for path in (stale, foreign):
        os.utime(path, (two_days_ago, two_days_ago))
    outputs.save_unique_png(Image.new("RGB", (8, 8)), folder / "picture.png")
    assert not stale.exists() and fresh.exists() and foreign.exists()


def test_stale_model_list_temporaries_are_swept_at_start(isolated_data_dir):
    isolated_data_dir.mkdir(parents=True, exist_ok=True)
    stale = isolated_data_dir / ".models-abc123.json"
    stale.write_text("[]")
    os.utime(stale, (time.time() - 3 * 24 * 3600,) * 2)
    models.ModelRegistry()
    assert not stale.exists()


def test_without_hard_links_no_empty_placeholder_is_left_under_the_final_name(tmp_path, monkeypatch):
    def no_links(source, target):
        raise PermissionError(1, "Operation not permitted")  # as on FAT and many network shares

    monkeypatch.setattr(os, "link", no_links)
    saved = save_png(Image.new("RGB", (8, 8), "red"), tmp_path / "ok.png")
    assert Image.open(saved).getpixel((0, 0)) == (255, 0, 0)

    def interrupted(source, target):
        raise OSError(5, "Input/output error")  # the rename never happens (a kill, a pulled drive)

    monkeypatch.setattr(os, "rename", interrupted)
    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(OutputError):
        save_png(Image.new("RGB", (8, 8)), tmp_path / "final.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.png"]


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder nothing can be written to, even by root (a read-only mount); skipped where that cannot be made."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro", "tmpfs", str(folder)], capture_output=True).returncode:
        pytest.skip("cannot mount a read-only folder here")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


@pytest.mark.parametrize("save", [save_depth_npy, save_depth_png16], ids=["npy", "png"])
def test_a_read_only_output_folder_is_a_clean_error(read_only_folder, save):
    depth = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    with pytest.raises(OutputError, match="Could not save"):
        save(depth, read_only_folder / f"depth{'.npy' if save is save_depth_npy else '.png'}")
