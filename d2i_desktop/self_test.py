"""`--self-test`: prove this installation works, offline, without touching the user's files.

Each check runs the real code on the demo model in a temporary data folder and prints one line;
the exit code is 0 only if every check passed. Tracebacks go to the log file.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

log = logging.getLogger(__name__)

WINDOW_TIMEOUT_S = 120


def run_self_test(out=sys.stdout, checks: list[tuple[str, Callable[["_Context"], str]]] | None = None) -> int:
    from .core.paths import log_file

    log_path = log_file()  # the user's log, resolved before the data folder is pointed at the temporary one
    handler = logging.FileHandler(log_path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
    log.propagate = False  # failures are one line on the terminal; their tracebacks go to the log only
    checks = CHECKS if checks is None else checks
    try:
        folder = tempfile.TemporaryDirectory(prefix="d2i-self-test-")
    except OSError as exc:
        print(f"FAIL  temporary folder: {_one_line(exc)} (set TMPDIR to a writable folder)", file=out, flush=True)
        return 1
    with folder as tmp:
        os.environ["D2I_DATA_DIR"] = str(Path(tmp) / "app-data")
        context = _Context(Path(tmp))
        failed = 0
        for name, check in checks:
            started = time.perf_counter()
            try:
                detail = check(context)
            except Exception as exc:  # noqa: BLE001 - every failure becomes one line; the traceback goes to the log
                log.exception("self-test check '%s' failed", name)
                failed += 1
                print(f"FAIL  {name}: {_one_line(exc)}", file=out, flush=True)
            else:
                print(f"ok    {name} ({time.perf_counter() - started:.1f} s): {detail}", file=out, flush=True)
        summary = "all checks passed" if not failed else f"{failed} of {len(checks)} checks failed; details in {log_path}"
        print(f"self-test: {summary}", file=out, flush=True)
        return 0 if not failed else 1


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


class _Context:
    def __init__(self, folder: Path):
        self.folder = folder
        self.model_dir: Path | None = None
        self.engine = None
        self.image = None
        self.depth = None
        self.result = None
        self.extras: tuple[str, str] = ("", "")


def _environment(context: _Context) -> str:
    import diffusers
    import PySide6
    import torch
    import transformers

    diffusers.utils.logging.disable_progress_bar()  # one line per check on the terminal, nothing else
    transformers.utils.logging.disable_progress_bar()

    from . import __version__
    from .core.paths import is_frozen

    build = "installed app" if is_frozen() else f"Python {sys.version.split()[0]}"
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA GPU"
    return (f"d2i-desktop {__version__} ({build}); torch {torch.__version__}, diffusers {diffusers.__version__}, "
            f"PySide6 {PySide6.__version__}; {gpu}")


def _demo_model(context: _Context) -> str:
    from .core.models.demo import make_demo_model

    context.model_dir = make_demo_model(context.folder / "demo-model")
    return str(context.model_dir)


def _model_load(context: _Context) -> str:
    from .core.generation.engine import Engine

    context.engine = Engine()
    info = context.engine.load(context.model_dir)
    return f"{info.label} on {info.device} ({info.dtype})"


def _depth(context: _Context) -> str:
    import numpy as np
    from PIL import Image

    gradient = np.linspace(0, 255, 64, dtype=np.uint8)
    context.image = Image.fromarray(np.stack([np.tile(gradient, (64, 1))] * 3, axis=-1))
    context.depth = context.engine.estimate_depth(context.image)
    if context.depth.shape != (64, 64) or not np.isfinite(context.depth).all():
        raise RuntimeError(f"depth map of shape {context.depth.shape} with invalid values")
    return f"{context.depth.shape[1]}x{context.depth.shape[0]} map"


def _estimators(context: _Context) -> str:
    """Every depth-estimator architecture the app offers, as a tiny model loaded and run through the real path."""
    import numpy as np

    from .core.depth.estimators import load_estimator
    from .core.depth.tiny_estimators import ARCHITECTURES, save_tiny_estimator

    for name in ARCHITECTURES:
        folder = save_tiny_estimator(name, context.folder / "estimators" / name)
        depth = load_estimator(name, "cpu", context.engine.pipe.dtype, folder).estimate(context.image).depth
        if depth.shape != (64, 64) or not np.isfinite(depth).all():
            raise RuntimeError(f"{name}: a depth map of shape {depth.shape} with invalid values")
    return f"{len(ARCHITECTURES)} architectures loaded and run ({', '.join(ARCHITECTURES)})"


def _extras(context: _Context) -> str:
    from .core.models.demo import write_demo_embedding, write_demo_lora
    from .core.extras.library import Library

    library = Library()
    lora = library.import_file(write_demo_lora(context.engine.pipe, context.folder / "self-test-lora.safetensors"))
    embedding = library.import_file(write_demo_embedding(context.engine.pipe, context.folder / "self-test-style.safetensors"))
    context.extras = (lora.name, embedding.name)
    return f"LoRA '{lora.name}' and embedding '{embedding.name}' imported"


def _generation(context: _Context) -> str:
    import numpy as np

    from .core.generation.params import GenerationParams

    lora, embedding = context.extras
    params = GenerationParams(prompt=f"a harbour in {embedding} <lora:{lora}:0.8>", steps=2, strength=1.0, seed=7)
    context.result = context.engine.generate(params, context.image, context.depth)
    picture = np.asarray(context.result.images[0])
    if picture.shape != (64, 64, 3):
        raise RuntimeError(f"picture of shape {picture.shape}, expected 64x64 RGB")
    fields = context.result.extra
    if f"{lora}:" not in fields.get("Lora hashes", "") or f"{embedding}:" not in fields.get("TI hashes", ""):
        raise RuntimeError("the LoRA or the embedding is missing from the picture's settings")
    return f"2 steps at 64x64 with LoRA and embedding in {context.result.seconds:.1f} s"


def _png_round_trip(context: _Context) -> str:
    from .core.files.outputs import parse_parameters, read_parameters, save_unique_png

    path = save_unique_png(context.result.images[0], context.folder / "self-test.png", context.result.parameters_text(0))
    fields = parse_parameters(read_parameters(path) or "")
    if fields.get("Seed") != str(context.result.seeds[0]) or fields.get("prompt") != context.result.params.prompt:
        raise RuntimeError(f"the settings read back from {path.name} differ from those written")
    return f"{path.name} written and its settings read back"


def _main_window(context: _Context) -> str:
    if not os.environ.get("QT_QPA_PLATFORM"):
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from PySide6.QtCore import QEventLoop, QSettings, QTimer, qInstallMessageHandler
    from PySide6.QtWidgets import QApplication

    from .app import apply_app_identity
    from .core.generation.engine import Engine
    from .core.paths import data_dir
    from .ui.main_window import MainWindow
    from .ui.worker import WorkerThread

    qInstallMessageHandler(lambda _kind, _context, message: log.info("Qt: %s", message))  # not the terminal
    app = QApplication.instance() or QApplication([sys.argv[0]])
    apply_app_identity(app)
    settings = QSettings(str(data_dir() / "settings.ini"), QSettings.Format.IniFormat)
    worker_thread = WorkerThread(Engine(device="cpu"))
    window = MainWindow(worker_thread, settings)
    window.show()
    loaded = []
    loop = QEventLoop()
    worker_thread.worker.sig_model_loaded.connect(lambda info: (loaded.append(info), loop.quit()))
    worker_thread.worker.sig_failed.connect(lambda message, hint: (loaded.append(RuntimeError(message)), loop.quit()))
    QTimer.singleShot(WINDOW_TIMEOUT_S * 1000, loop.quit)
    window.load_model(str(context.model_dir))
    loop.exec()
    window.close()
    app.processEvents()
    if not loaded:
        raise RuntimeError(f"the window's worker did not load the model within {WINDOW_TIMEOUT_S} s")
    if isinstance(loaded[0], Exception):
        raise loaded[0]
    if app.windowIcon().isNull():
        raise RuntimeError("the app icon was not found")
    if worker_thread.thread.isRunning():
        raise RuntimeError("the worker thread did not stop when the window closed")
    return f"opened on the {app.platformName()} platform, loaded the model in its worker, closed"


CHECKS = [("environment", _environment), ("demo model", _demo_model), ("model load", _model_load),
          ("depth estimation", _depth), ("depth estimators", _estimators), ("LoRA and embedding", _extras), ("generation", _generation),
          ("PNG with metadata", _png_round_trip), ("main window", _main_window)]
