"""`d2i models …` and `d2i download` run in-process, against real folders and a local stand-in for the Hub."""

import json

from d2i_desktop.cli import main
from local_hub import LocalHub


def test_models_add_list_remove(demo_model_dir, capsys):
    assert main(["models", "add", str(demo_model_dir)]) == 0
    assert main(["models", "list"]) == 0
    listed = capsys.readouterr().out
    assert "demo\tdemo\t" in listed and "never" in listed and str(demo_model_dir) in listed
    assert main(["models", "remove", str(demo_model_dir)]) == 0
    capsys.readouterr()
    assert main(["models", "list"]) == 0
    assert capsys.readouterr().out == ""


def test_models_add_refuses_a_bad_source_in_one_line(tmp_path, capsys):
    assert main(["models", "add", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "model_index.json" in err and "\n" not in err


def test_download_then_cache_listing(demo_model_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    hub = LocalHub("example/depth-demo", demo_model_dir).start()
    try:
        assert main(["download", "example/depth-demo", "--endpoint", hub.endpoint]) == 0
    finally:
        hub.stop()
    out, err = capsys.readouterr()
    assert "example/depth-demo" in out and " of " in err
    assert main(["models", "cache"]) == 0
    assert "example/depth-demo\tdepth-model" in capsys.readouterr().out


def _hub(repo_id, folder):
    return LocalHub(repo_id, folder).start()


def test_models_sources_lists_the_known_sources_in_order(capsys):
    from d2i_desktop.core.models.catalogue import SD2_DEPTH_SOURCES

    assert main(["models", "sources"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[1] for line in lines] == [s.repo_id for s in SD2_DEPTH_SOURCES]
    mirror, withdrawn = (line.split("\t") for line in lines)
    assert mirror[2:5] == ["openrail++", "2.8 GB", "available"] and "512-depth-ema.safetensors" in mirror[5]
    assert withdrawn[4] == "withdrawn"


def test_download_without_a_repo_tries_the_known_sources_and_remembers_the_mirror(demo_model_dir, tmp_path, monkeypatch,
                                                                                   capsys, isolated_data_dir):
    from d2i_desktop.core.models import registry as models
    from d2i_desktop.core.models.catalogue import SD2_DEPTH_REPO, SD2_DEPTH_SOURCES

    withdrawn = SD2_DEPTH_SOURCES[-1].repo_id
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    hub = _hub(withdrawn, demo_model_dir)  # a mirror that still keeps the withdrawn repository, and only that
    try:
        assert main(["download", "--endpoint", hub.endpoint]) == 0
    finally:
        hub.stop()
    out, err = capsys.readouterr()
    assert f"note: {SD2_DEPTH_REPO} was not found on {hub.endpoint}; trying {withdrawn}." in err
    assert f"{hub.endpoint} is remembered for the next downloads." in err
    assert out.strip().endswith(f"\t{withdrawn}")
    assert models.ModelRegistry().get(withdrawn).kind == "hub"
    assert json.loads((isolated_data_dir / "hub.json").read_text()) == {"endpoint": hub.endpoint}


def test_test_endpoint_prints_one_line_and_exits_0_or_2(demo_model_dir, capsys):
    from d2i_desktop.core.models.catalogue import SD2_DEPTH_REPO
    from local_hub import HtmlSite

    hub, site = _hub(SD2_DEPTH_REPO, demo_model_dir), HtmlSite().start()
    try:
        assert main(["download", "--test-endpoint", "--endpoint", hub.endpoint]) == 0
        out = capsys.readouterr().out
        assert out.startswith(f"{hub.endpoint} is reachable (") and out.count("\n") == 1
        assert main(["download", "--test-endpoint", "--endpoint", site.endpoint]) == 2
        err = capsys.readouterr().err.strip()
        assert err == f"error: {site.endpoint} answers, but it is not a Hugging Face Hub (no Hub API there)."
        assert main(["download", "--test-endpoint"]) == 0  # the endpoint that answered is remembered, the other not
        assert capsys.readouterr().out.startswith(f"{hub.endpoint} is reachable (")
    finally:
        hub.stop()
        site.stop()


def test_download_errors_are_one_line_and_leave_nothing_behind(demo_model_dir, tmp_path, monkeypatch, capsys,
                                                               isolated_data_dir):
    import shutil

    from d2i_desktop.core.models import registry as models
    from d2i_desktop.core.models.catalogue import SD2_DEPTH_REPO

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    assert main(["download", "--endpoint", "hf-mirror.com"]) == 2
    assert capsys.readouterr().err.strip() == ("error: 'hf-mirror.com' is not a web address of a Hugging Face Hub. Give an "
                                               "http(s) address such as https://huggingface.co or https://hf-mirror.com.")

    text_to_image = shutil.copytree(demo_model_dir, tmp_path / "txt2img")
    config = json.loads((text_to_image / "unet" / "config.json").read_text())
    (text_to_image / "unet" / "config.json").write_text(json.dumps({**config, "in_channels": 4}))
    hub = _hub(SD2_DEPTH_REPO, demo_model_dir)
    hub.add_repo("someone/sd2-base", text_to_image)
    hub.first.wrong_checksums.add("vae/diffusion_pytorch_model.safetensors")
    try:
        assert main(["download", "someone/sd2-base", "--endpoint", hub.endpoint]) == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert err == ("error: 'someone/sd2-base' is not a depth model: its UNet takes 4 input channels, a depth model "
                       f"takes 5. Use {SD2_DEPTH_REPO} or another SD2-depth model.")
        assert main(["download", "--endpoint", hub.endpoint]) == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert err.startswith(f"error: The file vae/diffusion_pytorch_model.safetensors from {SD2_DEPTH_REPO} is damaged")
        assert main(["download", "no/such/model", "--endpoint", hub.endpoint]) == 2
        assert capsys.readouterr().err.strip().splitlines()[-1].startswith(
            "error: 'no/such/model' is not a Hugging Face model id. Give it as organisation/name")
    finally:
        hub.stop()
    assert models.ModelRegistry().entries() == []
    assert not (isolated_data_dir / "hub.json").exists()  # an endpoint is remembered once a download worked
    cache = tmp_path / "hf-cache"
    assert not [p for p in cache.rglob("snapshots/*/*")] and not [p for p in cache.rglob("refs/*")]


def test_download_an_estimator_then_estimate_depth_with_it(tmp_path, monkeypatch, capsys):
    from d2i_desktop.core.depth.estimators import ESTIMATORS, estimator_folder
    from d2i_desktop.core.depth.tiny_estimators import save_tiny_estimator
    from d2i_desktop.core.models import registry as models

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    spec = ESTIMATORS["depth-anything-v2-small"]
    hub = _hub(spec.repo_id, save_tiny_estimator(spec.name, tmp_path / "tiny"))
    try:
        assert main(["download", "--estimator", spec.name, "--endpoint", hub.endpoint]) == 0
    finally:
        hub.stop()
    out = capsys.readouterr().out.strip()
    snapshot = estimator_folder(spec.name)
    assert snapshot is not None and out == f"{snapshot}\t{spec.name}"
    assert models.ModelRegistry().entries() == []  # an estimator is not a model of the list
    from PIL import Image

    Image.new("RGB", (96, 64), "gray").save(tmp_path / "photo.png")
    assert main(["depth", "--estimator", spec.name, "--image", str(tmp_path / "photo.png"),
                 "--out", str(tmp_path / "depth.png")]) == 0
    assert (tmp_path / "depth.png").is_file()


def test_download_refuses_a_repo_and_an_estimator_together_and_an_unknown_estimator(capsys):
    assert main(["download", "some/repo", "--estimator", "zoedepth"]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["download", "--estimator", "midas-v9", "--endpoint", "http://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err.strip()
    assert "Unknown depth estimator 'midas-v9'" in err and "\n" not in err
