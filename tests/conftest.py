"""Fixtures shared by all tests: an isolated data folder and the demo model."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True)
def isolated_data_dir(tmp_path, monkeypatch) -> Path:
    """Keep every test's settings, models and outputs out of the real app-data folder."""
    folder = tmp_path / "app-data"
    monkeypatch.setenv("D2I_DATA_DIR", str(folder))
    return folder


@pytest.fixture(scope="session")
def demo_model_dir(tmp_path_factory) -> Path:
    """The demo model saved with save_pretrained, shared read-only by all tests."""
    from d2i_desktop.core.models.demo import make_demo_model

    return make_demo_model(tmp_path_factory.mktemp("models") / "demo")


@pytest.fixture(scope="module")
def engine(demo_model_dir):
    """An engine for one test module alone: its tests may load LoRAs or change settings without touching others'."""
    import torch

    from d2i_desktop.core.generation.engine import Engine

    torch.set_num_threads(1)  # the same small figures whatever the machine, and no oversubscribed cores
    engine = Engine(device="cpu")
    engine.load(demo_model_dir)
    return engine


@pytest.fixture(scope="session")
def demo_engine(demo_model_dir):
    """One Engine with the demo model loaded through the normal loading path (CPU, fp32)."""
    from d2i_desktop.core.generation.engine import Engine

    engine = Engine(device="cpu")
    engine.load(demo_model_dir)
    return engine


_DEFAULT_SAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "samples"


@pytest.fixture(scope="session")
def third_party_samples() -> Path:
    """The folder of real sample files (override with D2I_SAMPLES); tests skip if it is missing."""
    folder = Path(os.environ.get("D2I_SAMPLES") or _DEFAULT_SAMPLES)
    if not (folder / "SOURCES.md").is_file():
        pytest.skip(f"Third-party sample files not found at {folder} (set D2I_SAMPLES to their folder).")
    return folder


@pytest.fixture
def hub(demo_model_dir):
    """A stand-in for the Hugging Face Hub on 127.0.0.1, serving the demo model as DEMO_REPO."""
    from local_hub import DEMO_REPO, LocalHub

    server = LocalHub(DEMO_REPO, demo_model_dir).start()
    yield server
    server.stop()


@pytest.fixture
def mirror_hub(demo_model_dir):
    """A Hub that has the demo model where SD2-depth lives now, and not under the withdrawn id."""
    from local_hub import LocalHub

    from d2i_desktop.core.models.catalogue import SD2_DEPTH_REPO

    server = LocalHub(SD2_DEPTH_REPO, demo_model_dir).start()
    yield server
    server.stop()


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """An empty Hugging Face cache folder for this test."""
    folder = tmp_path / "hf-cache"
    monkeypatch.setenv("HF_HUB_CACHE", str(folder))
    return folder


@pytest.fixture
def make_photo(tmp_path):
    """Writes a noise picture of the given size as a PNG file and returns its path."""
    import numpy as np
    from PIL import Image

    def make(width: int, height: int, name: str = "photo.png", seed: int = 0) -> Path:
        path = tmp_path / name
        pixels = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(path)
        return path

    return make


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a network connection fails the test (the internet stands outside tests)."""
    import socket

    def refuse(self, address):
        raise AssertionError(f"network access attempted: {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
