"""What differs in the installed (frozen) app: no torch.compile, resources found in the bundle."""

import sys

import pytest

from d2i_desktop.core import paths
from d2i_desktop.core.speed.acceleration import PRESETS, apply_performance


@pytest.fixture
def pipe(demo_model_dir):
    from diffusers import StableDiffusionDepth2ImgPipeline

    return StableDiffusionDepth2ImgPipeline.from_pretrained(demo_model_dir)


def test_a_frozen_app_uses_cuda_graphs_where_it_would_compile(pipe, monkeypatch):
    # No GPU here: the decision is made from the device name, nothing runs on CUDA.
    assert apply_performance(pipe, PRESETS["fastest"], device="cuda").effective.compile == "torch-compile"
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    report = apply_performance(pipe, PRESETS["fastest"], device="cuda")
    assert report.effective.compile == "cuda-graphs"
    assert "CUDA graphs of the UNet step" in report.applied
    assert [note for note in report.fallbacks if note.startswith("compile:")] == [
        "compile: torch.compile needs a C compiler and Python headers, which the installed app does not ship; "
        "each UNet step is recorded in a CUDA graph instead"]


def test_a_frozen_app_finds_its_resources_in_the_bundle(tmp_path, monkeypatch):
    bundle = tmp_path / "_internal"
    (bundle / "resources" / "icons").mkdir(parents=True)
    (bundle / "resources" / "icons" / "d2i-desktop.svg").write_text("<svg/>")
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(bundle), raising=False)
    assert paths.app_resources_dir() == bundle / "resources"


def test_app_data_never_goes_into_the_bundle(tmp_path, monkeypatch):
    monkeypatch.delenv("D2I_DATA_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path / "bundle"), raising=False)
    assert paths.log_file().is_relative_to(tmp_path / "home")
    assert paths.demo_model_dir().is_relative_to(tmp_path / "home")


def test_the_performance_page_says_what_differs_in_the_installed_app(qtbot, monkeypatch, isolated_data_dir):
    from PySide6.QtWidgets import QLabel

    from d2i_desktop.ui.settings_dialog import PerformancePage

    from_python = PerformancePage()
    qtbot.addWidget(from_python)
    assert from_python.findChild(QLabel, "installedAppLabel") is None
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    page = PerformancePage()
    qtbot.addWidget(page)
    note = page.findChild(QLabel, "installedAppLabel").text()
    assert "torch.compile needs a C compiler" in note and "CUDA graphs" in note
    assert str(isolated_data_dir) in note
