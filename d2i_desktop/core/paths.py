"""Where the app keeps its files: the platform's app-data folder, or D2I_DATA_DIR."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import platformdirs

APP_NAME = "d2i-desktop"
APP_ID = "org.d2idesktop.D2IDesktop"  # the desktop entry's and metainfo's name (resources/)


def is_frozen() -> bool:
    """True in the installed app (a PyInstaller bundle), False when run from Python."""
    return bool(getattr(sys, "frozen", False))


def app_resources_dir() -> Path | None:
    """The folder holding the app icon, desktop entry and metainfo (the top-level resources/ of the source)."""
    candidates = [
        Path(getattr(sys, "_MEIPASS", "")) / "resources" if is_frozen() else None,  # the bundle
        Path(__file__).resolve().parents[2] / "resources",  # a source checkout or an editable install
        Path(sys.prefix) / "share" / APP_NAME,  # a wheel install (data files)
    ]
    return next((folder for folder in candidates if folder and (folder / "icons" / f"{APP_NAME}.svg").is_file()), None)


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
