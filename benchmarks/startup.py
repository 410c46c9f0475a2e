"""Start-up time of the app to a usable window, cold and warm, read from the app's own log.

    python benchmarks/startup.py [PROGRAM] [--runs 3]

PROGRAM defaults to dist/d2i-desktop/d2i-desktop (the installed app; `d2i-desktop` from pip works too).
Each run starts it with Qt's offscreen platform and the demo model, in one scratch home folder, and
reports the seconds until the window is shown and until the model is loaded (the window is usable
from the first moment; Generate waits for the model). The first run is cold: the page cache is
dropped first when this runs as root (else it is only the first run). The others are warm.
"""

from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import tempfile
import time
from pathlib import Path

MARKS = {"window": " window shown", "model": "d2i_desktop.core.generation.engine: loaded "}


def drop_page_cache() -> bool:
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def log_times(log: Path, offset: int) -> dict[str, datetime.datetime]:
    """When each mark was logged, in the log written after `offset` bytes."""
    found = {}
    if not log.exists():
        return found
    with log.open("rb") as stream:
        stream.seek(offset)
        lines = stream.read().decode("utf-8", errors="replace").splitlines()
    for line in lines:
        for mark, text in MARKS.items():
            if text in line and mark not in found:
                found[mark] = datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
    return found


def one_run(program: str, home: Path, timeout: float = 300) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("D2I_", "XDG_"))}
    env |= {"HOME": str(home), "QT_QPA_PLATFORM": "offscreen"}
    log = home / ".local" / "share" / "d2i-desktop" / "d2i-desktop.log"
    offset = log.stat().st_size if log.exists() else 0
    started = datetime.datetime.now()
    process = subprocess.Popen([program, "--demo"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout
        while len(times := log_times(log, offset)) < len(MARKS):
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"{program} did not reach a usable window (log: {log})")
            time.sleep(0.05)
    finally:
        process.terminate()
        process.wait(timeout=30)
    return {mark: (moment - started).total_seconds() for mark, moment in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("program", nargs="?", default="dist/d2i-desktop/d2i-desktop")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    program = str(Path(args.program).resolve()) if Path(args.program).exists() else args.program
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)  # the same home for every run: the first builds the demo model, as a user's first start does
        cold = drop_page_cache()
        print(f"{'run':<16}{'window shown':>14}{'model loaded':>14}")
        for run in range(args.runs):
            times = one_run(program, home)
            name = ("cold" if cold else "first") + " (first start)" if run == 0 else f"warm {run}"
            print(f"{name:<16}{times['window']:>13.1f}s{times['model']:>13.1f}s", flush=True)


if __name__ == "__main__":
    main()
