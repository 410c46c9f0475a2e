"""Where the app keeps its files: the platform's app-data folder, or D2I_DATA_DIR."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "d2i-desktop"


def data_dir() -> Path:
    """Models, library and settings live here (created on first use)."""
    folder = Path(os.environ.get("D2I_DATA_DIR") or platformdirs.user_data_dir(APP_NAME, appauthor=False))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def demo_model_dir() -> Path:
    return data_dir() / "models" / "demo"


def default_output_dir() -> Path:
    override = os.environ.get("D2I_DATA_DIR")
    if override:
        return Path(override) / "outputs"
    return Path(platformdirs.user_pictures_dir()) / APP_NAME


def log_file() -> Path:
    return data_dir() / "d2i-desktop.log"
