"""Composition root for the GUI: QApplication, settings, engine, worker, window."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys

from .core.paths import data_dir
from .logs import log_to_file


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="d2i-desktop", description="Depth-guided image generation.")
    parser.add_argument("image", nargs="?", help="a photo to open")
    parser.add_argument("--model", help="a diffusers model folder or Hugging Face id to load")
    parser.add_argument("--demo", action="store_true", help="start with the demo model (random weights)")
    parser.add_argument("--device", help="cuda, mps or cpu (default: the fastest available)")
    parser.add_argument("--self-test", action="store_true",
                        help="check this installation offline (demo model in a temporary folder) and exit")
    return parser.parse_args(argv)


def apply_app_identity(app) -> None:
    """Name and icon, so desktops match the window to its menu entry and show the app's icon."""
    from PySide6.QtGui import QIcon

    from . import __version__
    from .core.paths import APP_ID, APP_NAME, app_resources_dir

    app.setApplicationName(APP_NAME)
    app.setOrganizationName(APP_NAME)
    app.setApplicationVersion(__version__)
    app.setDesktopFileName(APP_ID)
    resources = app_resources_dir()
    if resources is not None:
        icon = QIcon(str(resources / "icons" / f"{APP_NAME}.svg"))
        for png in sorted((resources / "icons").glob(f"{APP_NAME}-*.png")):
            icon.addFile(str(png))
        app.setWindowIcon(icon)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    log_to_file()
    if args.self_test:
        from .self_test import run_self_test
        return run_self_test()
    from .system_libraries import check_window_libraries, tell_user

    problem = check_window_libraries()
    if problem:
        logging.getLogger(__name__).error(problem)
        tell_user(problem)
        return 1
    from PySide6.QtWidgets import QApplication

    from .core.files.app_data import take_notices
    from .core.generation.engine import Engine
    from .core.errors import D2IError
    from .core.models.registry import ModelRegistry
    from .ui.main_window import MainWindow
    from .ui.settings_dialog import load_performance
    from .ui.settings_file import open_settings
    from .ui.worker import WorkerThread

    app = QApplication.instance() or QApplication(sys.argv[:1])
    apply_app_identity(app)
    settings = open_settings(data_dir() / "settings.ini")
    requested = args.device or settings.value("engine/device") or None
    try:
        engine = Engine(device=None if requested == "auto" else requested)
    except D2IError as exc:  # e.g. CUDA chosen in the settings, then the GPU went away
        device_problem, engine = exc, Engine()
    else:
        device_problem = None
    # Only remembered here (nothing is loaded yet): they take effect when the model loads.
    engine.set_performance(dataclasses.replace(load_performance(settings), device=engine.device))
    window = MainWindow(WorkerThread(engine), settings)
    window.show()
    logging.getLogger(__name__).info("window shown")  # start-up time is measured up to here (benchmarks/startup.py)
    ModelRegistry().entries()  # a damaged model list is kept aside now, not at the first model switch

    def show_app_data_notices() -> None:  # after each job, so the model's own notice does not hide them
        if notices := take_notices():
            window.notice.show_message(" ".join(notices), "Nothing was deleted.", level="warning")

    window.worker_thread.worker.sig_idle.connect(show_app_data_notices)
    if device_problem is not None:
        window.notice.show_message(device_problem.message, f"Using {engine.device} instead; change it in Edit ▸ Settings.")
    first_run = not args.model and not args.demo and not settings.value("model/source", "")
    source = args.model or ("" if args.demo else settings.value("model/source", ""))
    if source and not (not args.model and settings.value("model/demo", False, bool)):
        window.load_model(source)
    else:
        window.use_demo_model()  # the offline default: the app is usable at once, with no download
    if first_run:
        window.show_models_dialog(first_run=True)
    if args.image:
        window.open_image(args.image)
    exit_code = app.exec()
    if not window.worker_thread.stop():  # also when the app quits without the window closing (e.g. logout)
        # A model load cannot be interrupted; everything is saved, so leave without waiting for it.
        settings.sync()
        logging.shutdown()
        os._exit(exit_code)
    return exit_code
