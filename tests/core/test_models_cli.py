"""`d2i models …` and `d2i download` run in-process, against real folders and a local stand-in for the Hub."""

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
