"""The log file in the app-data folder: tracebacks and details go there, never to the terminal or a dialog."""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

from .core.paths import log_file


def log_to_file(level: int = logging.INFO) -> Path | None:
    """Send this process's log records to the app's log file (replacing an earlier call's handler); None if it cannot be opened."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "d2i_log_file", False)]:
        root.removeHandler(handler)
        handler.close()
    try:
        path = log_file()
        handler = logging.handlers.RotatingFileHandler(path, maxBytes=2_000_000, backupCount=2, encoding="utf-8")
    except OSError:
        return None
    handler.d2i_log_file = True
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)
    for noisy in ("diffusers", "transformers"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    return path
