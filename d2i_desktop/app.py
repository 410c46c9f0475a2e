"""Composition root for the GUI: QApplication, settings, engine, worker, window."""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import sys

from .core.paths import data_dir, log_file


def setup_logging() -> None:
    handler = logging.handlers.RotatingFileHandler(log_file(), maxBytes=2_000_000, backupCount=2, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    logging.captureWarnings(True)
    for noisy in ("diffusers", "transformers"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="d2i-desktop", description="Depth-guided image generation.")
    parser.add_argument("image", nargs="?", help="a photo to open")
    parser.add_argument("--model", help="a diffusers model folder or Hugging Face id to load")
    parser.add_argument("--demo", action="store_true", help="start with the demo model (random weights)")
    parser.add_argument("--device", help="cuda, mps or cpu (default: the fastest available)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging()
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from .core.engine import Engine
    from .ui.main_window import MainWindow
    from .ui.worker import WorkerThread

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("d2i-desktop")
    app.setOrganizationName("d2i-desktop")
    settings = QSettings(str(data_dir() / "settings.ini"), QSettings.Format.IniFormat)
    engine = Engine(device=args.device or settings.value("engine/device") or None)
    window = MainWindow(WorkerThread(engine), settings)
    window.show()
    source = args.model or ("" if args.demo else settings.value("model/source", ""))
    if source and not (not args.model and settings.value("model/demo", False, bool)):
        window.load_model(source)
    else:
        window.use_demo_model()
    if args.image:
        window.open_image(args.image)
    return app.exec()
