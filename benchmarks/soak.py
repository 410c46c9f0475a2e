"""Soak test: many generations on the demo model in one process; resident memory must not grow run over run.

Varies seed, size, sampler and LoRA on/off, and cancels every tenth run at a random step.
Prints resident memory at the start, middle and end, and every failure.

    python benchmarks/soak.py [--runs 200] [--steps 4]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # real LoRA files, as the tests write them


def resident_mb() -> float:
    """This process's resident memory (Linux /proc, else the peak from getrusage)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / (2**20 if sys.platform == "darwin" else 2**10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.environ["D2I_DATA_DIR"] = data = tempfile.mkdtemp(prefix="d2i-soak-")

    from d2i_desktop.core.models.demo import make_demo_model
    from d2i_desktop.core.generation.engine import Engine
    from d2i_desktop.core.errors import Cancelled
    from d2i_desktop.core.generation.params import SCHEDULERS, GenerationParams
    from library_samples import lora_state, write_lora

    engine = Engine(device="cpu")
    engine.load(make_demo_model(Path(data) / "demo"))
    write_lora(Path(data) / "library" / "soak.safetensors", lora_state(engine.pipe, layout="kohya"))
    rng = random.Random(args.seed)
    pixels = np.random.default_rng(args.seed).integers(0, 255, (256, 256, 3), dtype=np.uint8)
    sizes = [(64, 64), (96, 64), (64, 128), (128, 96), (128, 128)]
    schedulers = list(SCHEDULERS)
    memory, failures, cancelled, took = {}, [], 0, []
    memory["start"] = resident_mb()
    print(f"{args.runs} runs, {args.steps} steps, demo model on {engine.device}; data in {data}", flush=True)
    for run in range(1, args.runs + 1):
        width, height = rng.choice(sizes)
        image = Image.fromarray(pixels).resize((width, height))
        lora = rng.random() < 0.5
        params = GenerationParams(prompt="a soak test" + (" <lora:soak:0.8>" if lora else ""), steps=args.steps,
                                  strength=1.0, seed=rng.randrange(2**32), scheduler=rng.choice(schedulers))
        cancel = threading.Event()
        stop_at = rng.randint(1, args.steps) if run % 10 == 0 else None

        def on_step(info, stop_at=stop_at, cancel=cancel):
            if info.step == stop_at:
                cancel.set()

        started = time.perf_counter()
        try:
            engine.generate(params, image, on_step=on_step, cancel=cancel)
            if stop_at is not None:
                failures.append(f"run {run}: not cancelled at step {stop_at}")
        except Cancelled:
            cancelled += 1
            if stop_at is None:
                failures.append(f"run {run}: cancelled without being asked")
        except Exception as exc:  # noqa: BLE001 - a soak reports every failure and goes on
            failures.append(f"run {run} ({params.scheduler}, {width}x{height}, LoRA {lora}): {type(exc).__name__}: {exc}")
        took.append(time.perf_counter() - started)
        if run == args.runs // 2:
            memory["middle"] = resident_mb()
        if run % 20 == 0:
            print(f"run {run}: {resident_mb():.0f} MB resident, {np.mean(took[-20:]):.2f} s per run", flush=True)
    memory["end"] = resident_mb()
    print("resident memory: " + ", ".join(f"{when} {mb:.0f} MB" for when, mb in memory.items()))
    print(f"growth middle -> end: {memory['end'] - memory['middle']:+.0f} MB; cancelled {cancelled}; "
          f"failures {len(failures)}; median run {np.median(took):.2f} s")
    for failure in failures:
        print("FAIL", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
