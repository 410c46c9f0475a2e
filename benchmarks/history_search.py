"""History index at scale: fill a database with 100,000 entries and print how fast searches answer (target: < 100 ms).

    python benchmarks/history_search.py [--entries 100000] [--db PATH] [--like]

The entries are made up (random prompts from a word list, a few models and LoRAs, a year of dates); no
picture files are written. --like measures the fallback used where SQLite has no FTS5.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from d2i_desktop.core.history.index import History  # noqa: E402

WORDS = ("harbour dusk watercolour cat dog boat sky city night rain forest castle portrait oil painting ink sketch "
         "golden hour fog mountain lake street market neon tram bridge snow desert ruins garden glass marble bronze "
         "child old man woman lantern candle storm ship lighthouse winter spring autumn summer cinematic detailed").split()
MODELS = ("sd2-depth", "sd2-depth-fp16", "my-finetune", "demo model (random weights)")
LORAS = ("ink-style", "watercolour-v2", "film-grain", "anime-lines")


def fill(history: History, entries: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    start = time.time() - 365 * 86400
    rows = []
    for number in range(entries):
        prompt = " ".join(rng.choices(WORDS, k=rng.randint(5, 25)))
        if number % 1000 == 0:
            prompt += " zanzibar"  # a rare word: 0.1 % of the entries
        rows.append((f"/pictures/{number:06d}.png", {
            "prompt": prompt, "negative": " ".join(rng.choices(WORDS, k=3)), "params": {"steps": 30, "strength": 0.8},
            "model": rng.choice(MODELS), "loras": [(rng.choice(LORAS), 0.8)] if rng.random() < 0.3 else [],
            "seed": rng.randrange(2**31), "width": 512, "height": 512, "created": start + number * 315,
            "record_id": f"{number:032x}"}))
    history.add_many(rows)
    for picture_id in rng.sample(range(1, entries + 1), entries // 50):
        history.set_favourite(picture_id)


def timed(what: str, run, repeats: int = 7) -> None:
    times, found = [], 0
    for _ in range(repeats):
        started = time.perf_counter()
        found = len(run())
        times.append((time.perf_counter() - started) * 1000)
    verdict = "ok" if statistics.median(times) < 100 else "OVER 100 ms"
    print(f"{what:<48} {statistics.median(times):8.1f} ms median {max(times):8.1f} ms max  {found:4d} shown  {verdict}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--db", type=Path, help="database file (default: a temporary one)")
    parser.add_argument("--like", action="store_true", help="measure the LIKE fallback instead of FTS5")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = args.db or Path(folder) / "history.sqlite3"
        history = History(path, use_fts=not args.like)
        if history.count() < args.entries:
            started = time.perf_counter()
            fill(history, args.entries - history.count())
            print(f"filled {history.count():,} entries in {time.perf_counter() - started:.1f} s "
                  f"({path.stat().st_size / 1e6:.0f} MB, {'FTS5' if history.fts else 'LIKE'} search)")
        month_ago = time.time() - 30 * 86400
        timed("newest 100 (the gallery's first page)", lambda: history.search())
        timed("page 500 of 100 (deep scroll)", lambda: history.search(offset=50_000))
        timed("search 'harbour' (common word)", lambda: history.search("harbour"))
        timed("search 'zanzibar' (rare word)", lambda: history.search("zanzibar"))
        timed("search 'harbour dusk cat' (three words)", lambda: history.search("harbour dusk cat"))
        timed("search 'lig' (word beginning)", lambda: history.search("lig"))
        timed("model 'my-finetune'", lambda: history.search(model="my-finetune"))
        timed("LoRA 'film-grain' + 'castle'", lambda: history.search("castle", lora="film-grain"))
        timed("favourites in the last 30 days", lambda: history.search(favourite=True, since=month_ago))
        timed("count", lambda: [None] * history.count())
        history.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
