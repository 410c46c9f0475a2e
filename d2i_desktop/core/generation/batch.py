"""Repaint every image of a folder, here or on a Ray cluster; resume where a run stopped; write a summary.

Inputs are the image files directly in the folder (PNG, JPEG, WebP, TIFF, BMP). `NAME.depth.png` or
`NAME.depth.npy` beside `NAME.ext` is used as its depth map and is not an input itself. Each picture goes to
the output folder as `NAME.png` (a free name when taken) with its record and 16-bit depth map, as
`d2i generate` writes it.

Done: an input is done when the output folder holds a picture whose record names the input's sha256 (its
content, so a renamed or moved input folder still resumes and an edited image is made again). Other
settings for the same images need another output folder.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from ..errors import D2IError
from ..history.hashes import HashCache
from ..paths import is_frozen
from ..history.record import DEPTH_SUFFIX, depth_levels, levels_to_depth, read_record, save_result
from ..files.images import LoadedImage, load_image
from .params import GenerationParams

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp")
DEPTH_SUFFIXES = (DEPTH_SUFFIX, ".depth.npy")
SUMMARY_NAME = "batch-summary.json"
Say = Callable[[str], None]


class BatchError(D2IError):
    """A batch cannot start."""


def open_engine(model: str, device: str | None, precision: str | None, preset: str | None, say: Say):
    """An Engine with `model` loaded and the performance `preset` applied; notes go to `say`."""
    from .engine import Engine

    engine = Engine(device=device, dtype=precision)
    if preset:
        engine.set_performance(engine.performance.with_preset(preset))
    say(f"loading model {model} on {engine.device}…")
    info = engine.load(model)
    for note in engine.performance_report.fallbacks if preset else ():
        say(f"note: {note}")
    if info.is_demo:
        say(f"note: using the {info.label}: the pictures will be noise")
    return engine


@dataclass(frozen=True)
class Repainted:
    saved: list[tuple[Path, dict]]  # (picture, record)
    seeds: list[int]
    notes: tuple[str, ...]


def repaint(engine, params: GenerationParams, image_path: Path, loaded: LoadedImage, depth_path: Path | None,
            bright_is_near: bool | None, target: Path, on_step=None, hashes: HashCache | None = None,
            mask_levels=None) -> Repainted:
    """Repaint one image file (depth from `depth_path`, else estimated as the params say; only where the 8-bit `mask_levels` say, when
    given) and save every picture with its record near `target` (`target`, then `STEM-1.png`, ...)."""
    from ..depth.maps import load_depth
    from .depth_origin import DepthOrigin
    from .masks import levels_to_mask

    notes = list(loaded.notes)
    if depth_path is None:
        estimate = engine.depth_estimate(loaded.image, settings=params.depth_settings)
        depth, origin = estimate.depth, DepthOrigin.estimated(params.depth_settings)
        notes += estimate.notes
    else:
        depth, depth_notes = load_depth(depth_path, loaded.image.size, bright_is_near)
        origin = DepthOrigin.loaded(depth_path)
        notes += depth_notes
    levels = depth_levels(depth)  # generation uses exactly the 16-bit map kept beside the picture
    result = engine.generate(params, loaded.image, levels_to_depth(levels), on_step=on_step,
                             mask=None if mask_levels is None else levels_to_mask(mask_levels), depth_origin=origin)
    targets = [target.with_name(f"{target.stem}-{index}{target.suffix}") if index else target
               for index in range(len(result.images))]
    saved = save_result(engine, result, image_path, loaded.image, levels, targets, hashes, mask_levels)
    return Repainted(saved, result.seeds, (*notes, *result.notes))


@dataclass(frozen=True)
class BatchItem:
    image: Path
    depth: Path | None


@dataclass(frozen=True)
class ItemResult:
    image: Path
    saved: list[tuple[Path, dict]] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    notes: tuple[str, ...] = ()
    seconds: float = 0.0
    error: str | None = None


def find_inputs(folder: Path) -> list[BatchItem]:
    """The images of `folder` (sorted by name), each with the depth map beside it if there is one."""
    if not folder.is_dir():
        raise BatchError(f"No folder at {folder}.", "Give --input-dir a folder of images.")
    paths = sorted(path for path in folder.iterdir() if path.is_file())
    by_name = {path.name.lower(): path for path in paths}  # depth maps are found whatever the case of their suffix
    items = []
    for path in paths:
        name = path.name.lower()
        if name.endswith(IMAGE_SUFFIXES) and not name.endswith(DEPTH_SUFFIXES):
            stem = name[: -len(path.suffix)]
            depth = next((by_name[stem + suffix] for suffix in DEPTH_SUFFIXES if stem + suffix in by_name), None)
            items.append(BatchItem(path, depth))
    if not items:
        raise BatchError(f"{folder} holds no images.", "Put PNG, JPEG, WebP, TIFF or BMP files directly in it.")
    return items


def done_inputs(out_dir: Path) -> set[str]:
    """The sha256 of every input that a picture in `out_dir` was made from, as its record says."""
    done = set()
    for path in out_dir.glob("*.png") if out_dir.is_dir() else ():
        if path.name.endswith(DEPTH_SUFFIX):
            continue
        try:
            record = read_record(path)
        except D2IError:  # damaged or not an image: not a finished picture
            continue
        if record and record.get("input", {}).get("sha256"):
            done.add(record["input"]["sha256"])
    return done


def plan(input_dir: Path, out_dir: Path, hashes: HashCache) -> tuple[list[BatchItem], list[BatchItem]]:
    """(to do, already done): the folder's inputs split by whether `out_dir` already holds their pictures."""
    if input_dir.resolve() == out_dir.resolve():
        raise BatchError("The output folder is the input folder.", "Give --out-dir another folder.")
    items = find_inputs(input_dir)
    done = done_inputs(out_dir)
    finished = [item for item in items if hashes.sha256(item.image) in done]
    return [item for item in items if item not in finished], finished


class BatchRunner:
    """Owns one Engine (the model is loaded once) and repaints batch items with it; locally or as a Ray actor."""

    def __init__(self, model: str, device: str | None, precision: str | None, preset: str | None,
                 params: GenerationParams, out_dir: Path, bright_is_near: bool | None):
        self.notes: list[str] = []
        self.engine = open_engine(model, device, precision, preset, self.notes.append)
        self.params, self.out_dir, self.bright_is_near = params, out_dir, bright_is_near
        self.hashes = HashCache()

    def take_notes(self) -> list[str]:
        notes, self.notes = self.notes, []
        return notes

    def device(self) -> str:
        return self.engine.device

    def run(self, item: BatchItem) -> ItemResult:
        """Repaint one item; a bad image or depth map comes back as the result's error, never raised."""
        started = time.perf_counter()
        try:
            done = repaint(self.engine, self.params, item.image, load_image(item.image), item.depth, self.bright_is_near,
                           self.out_dir / f"{item.image.stem}.png", hashes=self.hashes)
        except D2IError as exc:
            return ItemResult(item.image, error=str(exc), seconds=time.perf_counter() - started)
        return ItemResult(item.image, done.saved, done.seeds, done.notes, time.perf_counter() - started)


def ray_results(address: str, actors: int | None, runner_args: tuple, todo: list[BatchItem], say: Say) -> Iterable[ItemResult]:
    """Results of `todo` from BatchRunner actors on the Ray cluster at `address` (one per GPU, else CPU actors), in the
    order they finish. The actors are ready when this returns. An already initialised Ray (e.g. a test's) is used as is."""
    try:
        import ray
        from ray.util import ActorPool
    except ImportError as exc:
        raise BatchError("Ray is not installed" + (" in the installed app." if is_frozen() else "."),
                         "Spread a batch over a cluster from a Python install: pip install 'd2i-desktop[ray]'.") from exc
    started_here = not ray.is_initialized()
    if started_here:
        try:
            ray.init(address=address, include_dashboard=False, logging_level="warning")
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise BatchError(f"Could not reach the Ray cluster at {address}: {str(exc).rstrip('.')}.",
                             "Start it with 'ray start --head' or check the address.") from exc
    try:
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        count = actors or gpus or len([node for node in ray.nodes() if node["Alive"]])
        if gpus and count > gpus:
            raise BatchError(f"The cluster has {gpus} GPUs, too few for {count} actors.", "Ask for fewer with --actors.")
        # A CPU actor gets its share of the cores (Ray gives torch that many threads).
        share = {"num_gpus": 1} if gpus else {"num_cpus": max(1, int(resources.get("CPU", 1)) // count)}
        remote = ray.remote(BatchRunner).options(**share)
        pool = [remote.remote(*runner_args) for _ in range(min(count, len(todo)))]
        for notes in ray.get([actor.take_notes.remote() for actor in pool]):  # waits for every model to load
            for note in notes:
                say(note)
        devices = ray.get([actor.device.remote() for actor in pool])
        say(f"{len(pool)} actors on {', '.join(sorted(set(devices)))}")
    except BaseException:
        if started_here:
            ray.shutdown()
        raise

    def results():
        try:
            yield from ActorPool(pool).map_unordered(lambda actor, item: actor.run.remote(item), todo)
        finally:
            if started_here:
                ray.shutdown()

    return results()


@dataclass
class BatchSummary:
    input_dir: str
    out_dir: str
    model: str
    settings: dict
    ray: str | None
    found: int
    made: list[dict] = field(default_factory=list)  # {"input", "outputs", "seeds", "seconds"}
    already_done: list[str] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)  # {"input", "error"}
    seconds: float = 0.0
    complete: bool = False  # False when the run was interrupted

    def line(self) -> str:
        pictures = sum(len(item["outputs"]) for item in self.made)
        return (f"{self.found} images: {len(self.made)} repainted ({pictures} pictures), {len(self.already_done)} already "
                f"done, {len(self.failed)} failed, in {self.seconds:.1f} s; summary: {Path(self.out_dir) / SUMMARY_NAME}")

    def write(self) -> Path:
        path = Path(self.out_dir) / SUMMARY_NAME
        temp = path.with_name(f".{SUMMARY_NAME}.tmp")
        temp.write_text(json.dumps(dataclasses.asdict(self), indent=1, ensure_ascii=False), encoding="utf-8")
        os.replace(temp, path)
        return path


def run_batch(summary: BatchSummary, todo: list[BatchItem], results: Iterable[ItemResult], say: Say,
              on_saved: Callable[[Path, dict], None]) -> BatchSummary:
    """Take `results` as they come: progress to `say`, each picture to `on_saved` (e.g. the history index), the
    summary written to the output folder at the end, also when interrupted."""
    started = time.perf_counter()
    try:
        for number, result in enumerate(results, 1):
            where = f"[{number}/{len(todo)}] {result.image.name}"
            if result.error:
                say(f"{where}: skipped: {result.error}")
                summary.failed.append({"input": str(result.image), "error": result.error})
                continue
            for note in result.notes:
                say(f"{where}: note: {note}")
            for path, record in result.saved:
                on_saved(path, record)
            outputs = [str(path) for path, _ in result.saved]
            say(f"{where} -> {', '.join(Path(path).name for path in outputs)} (seed {result.seeds[0]}, {result.seconds:.1f} s)")
            summary.made.append({"input": str(result.image), "outputs": outputs, "seeds": result.seeds,
                                 "seconds": round(result.seconds, 3)})
        summary.complete = True
    finally:
        summary.seconds = round(time.perf_counter() - started, 3)
        summary.write()
    return summary
