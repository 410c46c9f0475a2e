"""GUI soak: drive the real window through generate/cancel cycles on the demo model.

Each cycle presses Generate and then lets the run finish, cancels it at a random step, or cancels it at once
(before the worker has started it). The window must leave its busy state after every job, and its memory must
not grow cycle over cycle. Prints resident memory at the start, middle and end, and every stuck or failed cycle.

    QT_QPA_PLATFORM=offscreen python benchmarks/gui_soak.py [--cycles 50] [--steps 4]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from soak import resident_mb  # noqa: E402

MODES = ("finish", "cancel at a step", "cancel at once")


def wait(app, condition, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        app.processEvents()
        time.sleep(0.002)
    return True


def cycle(app, window, mode: str, cancel_step: int, timeout_s: float = 120) -> str:
    """One generate/cancel cycle; returns "" when the window ended it cleanly, else what went wrong."""
    worker = window.worker_thread.worker
    outcomes: list[str] = []

    def on_step(info):
        if mode == "cancel at a step" and info.step >= cancel_step:
            window.cancel()

    handlers = {worker.sig_result: lambda _result: outcomes.append("result"),
                worker.sig_cancelled: lambda: outcomes.append("cancelled"),
                worker.sig_failed: lambda message, _hint: outcomes.append(f"failed: {message}"),
                worker.sig_step: on_step}
    for signal, handler in handlers.items():
        signal.connect(handler)
    try:
        window.generate()
        if not window.busy:
            return "Generate did not start a job"
        if mode == "cancel at once":
            window.cancel()
        if not wait(app, lambda: bool(outcomes), timeout_s):
            return f"no outcome within {timeout_s:.0f} s"
        if not wait(app, lambda: not window.busy, 5):
            return f"still busy 5 s after the job ended ({outcomes[0]})"
        expected = "result" if mode == "finish" else ("cancelled", "result")  # a cancel may come after the last step
        if outcomes[0] not in expected:
            return f"{mode}: {outcomes[0]}"
        return ""
    finally:
        for signal, handler in handlers.items():
            signal.disconnect(handler)


def run_cycles(app, window, cycles: int, steps: int, seed: int = 0, say=print) -> tuple[list[str], dict[str, float]]:
    """Run `cycles` cycles (the modes in turn, random cancel steps); returns the problems and resident memory."""
    rng = random.Random(seed)
    window.params_panel.steps.setValue(steps)
    window.params_panel.strength.setValue(1.0)
    problems, memory = [], {"start": resident_mb()}
    for number in range(1, cycles + 1):
        mode = MODES[(number - 1) % len(MODES)]
        problem = cycle(app, window, mode, rng.randint(1, steps))
        if problem:
            problems.append(f"cycle {number}: {problem}")
        if number == cycles // 2:
            memory["middle"] = resident_mb()
        if number % 10 == 0:
            say(f"cycle {number}: {resident_mb():.0f} MB resident, {len(problems)} problems")
    memory["end"] = resident_mb()
    return problems, memory


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=50)
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ["D2I_DATA_DIR"] = data = tempfile.mkdtemp(prefix="d2i-gui-soak-")

    import numpy as np
    from PIL import Image
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from d2i_desktop.core.generation.engine import Engine
    from d2i_desktop.ui.main_window import MainWindow
    from d2i_desktop.ui.worker import WorkerThread

    app = QApplication(sys.argv[:1])
    window = MainWindow(WorkerThread(Engine(device="cpu")), QSettings(str(Path(data) / "settings.ini"),
                                                                     QSettings.Format.IniFormat))
    window.show()
    window.use_demo_model()
    photo = Path(data) / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(photo)
    if not wait(app, lambda: window.model is not None and not window.busy, 300) or not window.open_image(photo) \
            or not wait(app, lambda: window.depth is not None and not window.busy, 120):
        print("the window did not get ready (model, photo, depth)")
        return 1
    started = time.perf_counter()
    problems, memory = run_cycles(app, window, args.cycles, args.steps)
    print(f"{args.cycles} cycles in {time.perf_counter() - started:.0f} s; resident memory: "
          + ", ".join(f"{when} {mb:.0f} MB" for when, mb in memory.items()))
    print(f"growth middle -> end: {memory['end'] - memory['middle']:+.0f} MB; problems {len(problems)}")
    for problem in problems:
        print("FAIL", problem)
    window.close()
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
