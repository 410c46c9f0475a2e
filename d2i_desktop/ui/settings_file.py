"""The window's settings file (INI): a damaged one is kept aside and the app starts with defaults."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings

from ..core.files.app_data import keep_aside


def open_settings(path: Path) -> QSettings:
    """QSettings on `path`; a file Qt cannot parse, or one holding NUL bytes (a write cut short by a crash or power
    loss), is renamed `settings.ini.corrupt-<time>` with a notice (core.app_data) instead of being half-read."""
    settings = QSettings(str(path), QSettings.Format.IniFormat)
    try:
        cut_short = b"\0" in path.read_bytes()
    except OSError:
        cut_short = False
    if settings.status() != QSettings.Status.FormatError and not cut_short:
        return settings
    del settings
    keep_aside(path, "The settings file", "it cannot be parsed: a half-written or edited file")
    return QSettings(str(path), QSettings.Format.IniFormat)
