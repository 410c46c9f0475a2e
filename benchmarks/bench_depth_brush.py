"""Per-dab time of each depth brush on a 2048x2048 map (median and p95), plus a stroke's start and finish.

    python benchmarks/bench_depth_brush.py [--side 2048] [--sizes 64 256] [--dabs 400]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from d2i_desktop.core.depth.edit import BRUSHES, Brush, Stroke


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=2048)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--dabs", type=int, default=400)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    depth = rng.random((args.side, args.side), dtype=np.float32)
    print(f"{args.side}x{args.side} float32 map, {args.dabs} dabs per brush, hardness 0.5, strength 0.5")
    print(f"{'brush':8} {'size':>5} {'median ms':>10} {'p95 ms':>8} {'start ms':>9} {'finish ms':>10}")
    for size in args.sizes:
        for kind in BRUSHES:
            brush = Brush(kind, size=size, strength=0.5, hardness=0.5, target=0.5)
            started = time.perf_counter()
            stroke = Stroke(depth, brush)
            start_ms = (time.perf_counter() - started) * 1000
            points = rng.uniform(size, args.side - size, (args.dabs, 2))
            times = []
            for x, y in points:
                began = time.perf_counter()
                stroke.dab(x, y)
                times.append((time.perf_counter() - began) * 1000)
            began = time.perf_counter()
            stroke.finish()
            finish_ms = (time.perf_counter() - began) * 1000
            print(f"{kind:8} {size:5d} {np.median(times):10.3f} {np.percentile(times, 95):8.3f} "
                  f"{start_ms:9.2f} {finish_ms:10.2f}")


if __name__ == "__main__":
    main()
