"""Fixtures for core tests: the shared third-party sample files."""

import os
from pathlib import Path

import pytest

_DEFAULT_SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "samples"


@pytest.fixture(scope="session")
def third_party_samples() -> Path:
    """The folder of real sample files (override with D2I_SAMPLES); tests skip if it is missing."""
    folder = Path(os.environ.get("D2I_SAMPLES") or _DEFAULT_SAMPLES)
    if not (folder / "SOURCES.md").is_file():
        pytest.skip(f"Third-party sample files not found at {folder} (set D2I_SAMPLES to their folder).")
    return folder
