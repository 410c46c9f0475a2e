"""`d2i estimators`, and `--estimator` / `--fine-detail` on `d2i depth`, `generate` and `batch`: the command line's
own main(), tiny random-weight estimators in a Hugging Face cache folder of the test."""

import numpy as np
import pytest
import torch

from d2i_desktop.cli import build_parser, main
from d2i_desktop.core.depth.estimators import ESTIMATORS, load_estimator
from d2i_desktop.core.depth.maps import normalize
from d2i_desktop.core.files.images import load_image
from d2i_desktop.core.files.outputs import parse_parameters, read_parameters
from d2i_desktop.core.history.record import read_record
from d2i_desktop.core.depth.tiny_estimators import put_in_hf_cache, save_tiny_estimator

SMALL = "depth-anything-v2-small"


@pytest.fixture
def small_downloaded(tmp_path, cache_dir):
    put_in_hf_cache(ESTIMATORS[SMALL].repo_id, save_tiny_estimator(SMALL, tmp_path / "tiny"), cache_dir)


def error_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]


def test_estimators_lists_name_label_licence_size_and_whether_downloaded(small_downloaded, capsys):
    assert main(["estimators"]) == 0
    rows = {line.split("\t")[0]: line.split("\t") for line in capsys.readouterr().out.splitlines()}
    assert list(rows) == list(ESTIMATORS)
    assert rows[SMALL] == [SMALL, "Depth Anything V2 Small", "Apache-2.0", "99.2 MB", "downloaded"]
    assert rows["depth-anything-v2-base"][2:] == ["CC-BY-NC-4.0 (non-commercial)", "390.0 MB", "not downloaded"]
    assert rows["dpt-hybrid"][4].startswith("not downloaded (default")


def test_the_estimator_option_lists_the_names_in_its_help():
    commands = build_parser()._subparsers._group_actions[0].choices
    for command in ("depth", "generate", "batch"):
        options = {action.option_strings[0]: action for action in commands[command]._actions if action.option_strings}
        assert all(name in options["--estimator"].help for name in ESTIMATORS)
        assert "--fine-detail" in options


def test_depth_with_an_estimator_needs_no_sd_model(small_downloaded, make_photo, tmp_path, capsys):
    photo = make_photo(96, 64)
    out = tmp_path / "depth.npy"
    assert main(["depth", "--estimator", SMALL, "--fine-detail", "--image", str(photo), "--device", "cpu",
                 "--out", str(out)]) == 0
    expected = load_estimator(SMALL, "cpu", torch.float32).estimate(load_image(photo).image, fine_detail=True)
    np.testing.assert_allclose(np.load(out), normalize(expected.depth), atol=1e-6)
    err = capsys.readouterr().err
    assert "estimating depth with Depth Anything V2 Small, fine detail on cpu" in err and "note: fine detail:" in err


def test_unknown_or_missing_estimators_are_one_line_and_exit_2(demo_model_dir, make_photo, tmp_path, capsys, cache_dir):
    photo = str(make_photo(64, 64))
    code = main(["generate", "--model", str(demo_model_dir), "--image", photo, "--prompt", "p", "--estimator",
                 "midas-v9", "--out", str(tmp_path / "out.png")])
    errors = error_lines(capsys)
    assert code == 2 and len(errors) == 1
    assert "unknown depth estimator 'midas-v9' (choose one of: dpt-hybrid, depth-anything-v2-small" in errors[0]
    assert main(["depth", "--image", photo, "--out", str(tmp_path / "d.png")]) == 2
    assert "needs --model" in error_lines(capsys)[0]
    assert main(["depth", "--estimator", "zoedepth", "--image", photo, "--out", str(tmp_path / "d.png")]) == 2
    assert error_lines(capsys) == ["error: ZoeDepth is not downloaded yet. Download it in Model > Models… "
                                   "(1.4 GB, licence MIT)."]
    assert not (tmp_path / "out.png").exists() and not (tmp_path / "d.png").exists()


def test_generate_and_batch_estimate_with_the_chosen_estimator_and_record_it(demo_model_dir, small_downloaded,
                                                                             make_photo, tmp_path, capsys):
    photo = make_photo(96, 64)
    common = ["--model", str(demo_model_dir), "--prompt", "a harbour", "--steps", "2", "--seed", "3",
              "--estimator", SMALL, "--device", "cpu"]
    assert main(["generate", "--image", str(photo), "--out", str(tmp_path / "one.png"), *common, "--fine-detail"]) == 0
    assert "estimating depth with Depth Anything V2 Small, fine detail" in capsys.readouterr().err
    record = read_record(tmp_path / "one.png")
    assert record["depth"]["origin"] == {"kind": "estimated", "estimator": SMALL, "fine_detail": True}
    assert parse_parameters(read_parameters(tmp_path / "one.png"))["Depth estimator"] == "Depth Anything V2 Small"

    folder = tmp_path / "inputs"
    folder.mkdir()
    photo.rename(folder / "photo.png")
    assert main(["batch", "--input-dir", str(folder), "--out-dir", str(tmp_path / "batch"), *common]) == 0
    record = read_record(tmp_path / "batch" / "photo.png")
    assert record["depth"]["origin"] == {"kind": "estimated", "estimator": SMALL, "fine_detail": False}

    assert main(["generate", "--image", str(folder / "photo.png"), "--depth", str(tmp_path / "one.depth.png"),
                 "--out", str(tmp_path / "given.png"), *common]) == 0
    assert "--estimator and --fine-detail are not used" in capsys.readouterr().err
    assert read_record(tmp_path / "given.png")["depth"]["origin"] == {"kind": "file", "file": "one.depth.png"}
