"""Make a recorded picture again and say whether it came out identical, and if not, what changed since."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from ..speed.acceleration import PerformanceSettings
from ..depth.estimators import DEFAULT_ESTIMATOR, ESTIMATORS
from ..errors import D2IError, ModelError
from ..files.images import load_image, open_image
from ..generation.depth_origin import ESTIMATED, DepthOrigin
from ..generation.params import GenerationParams
from .hashes import HashCache
from ..generation.masks import levels_to_mask
from .record import (RecordError, RunFacts, build_record, depth_levels, depth_path_for, levels_to_depth, mask_path_for,
                     read_depth_levels, read_mask_levels, save_with_record)

# What a record holds that can make a picture come out differently, as (label, path into the record).
_COMPARED = (
    ("model weights (sha256)", ("model", "sha256")),
    ("LoRAs", ("loras",)),
    ("embeddings", ("embeddings",)),
    ("input image pixels", ("input", "pixels_sha256")),
    ("depth map", ("depth", "sha256")),
    ("mask", ("mask", "sha256")),
    ("scheduler", ("scheduler", "class")),
    ("scheduler config", ("scheduler", "config")),
    ("generator device", ("generator_device",)),
    ("device", ("device", "name")),
    ("precision", ("precision",)),
    ("speed options in effect", ("performance", "effective")),
    ("d2i-desktop version", ("versions", "d2i-desktop")),
    ("torch version", ("versions", "torch")),
    ("diffusers version", ("versions", "diffusers")),
    ("transformers version", ("versions", "transformers")),
)

_SAME_ELSEWHERE = {"device", "precision"}  # speed options' device and precision: compared as the device and precision used


@dataclass(frozen=True)
class Reproduction:
    saved: Path
    identical: bool
    max_difference: int  # largest difference of one 8-bit channel value
    mean_difference: float
    psnr: float  # dB; infinite when identical
    changed: tuple[str, ...]  # "torch version: 2.4.0 then, 2.5.1 now", one per recorded item that differs

    def summary(self) -> str:
        if self.identical:
            verdict = "identical to the recorded picture"
        else:
            verdict = (f"differs from the recorded picture: largest channel difference {self.max_difference}/255, "
                       f"mean {self.mean_difference:.3f}, PSNR {self.psnr:.1f} dB")
        lines = [f"{self.saved}: {verdict}"]
        lines += [f"  changed since: {item}" for item in self.changed]
        if not self.identical and not self.changed:
            lines.append("  nothing recorded differs from now (a nondeterministic kernel on this device can cause this)")
        return "\n".join(lines)

    def line(self) -> str:
        """The outcome in one line, as the gallery shows it."""
        if self.identical:
            return f"Identical to the recorded picture (made again as {self.saved.parent.name}/{self.saved.name})."
        changed = "; ".join(self.changed) or "nothing recorded differs from now"
        return (f"Differs from the recorded picture: largest channel difference {self.max_difference}/255, "
                f"PSNR {self.psnr:.1f} dB. Changed since: {changed}.")


def reproduce(picture: str | Path, record: dict, out: str | Path, say: Callable[[str], None] = lambda text: None,
              engine=None) -> Reproduction:
    """Run `record` (read from `picture`) again, save the new picture as `out` (a free name) and compare.

    The depth map beside the picture is used whenever it is there: generation ran on exactly its levels. When it is
    missing and the record says it was an estimate, the depth is estimated again with the recorded estimator, or,
    where that one cannot be had, with the default one (and the difference is named).
    """
    from ..generation.engine import Engine

    picture = Path(picture)
    recorded = record["input"]
    if not recorded.get("path"):
        raise RecordError("The picture was made from a pasted image, which was not kept.", "It cannot be made again.")
    if not Path(recorded["path"]).is_file():
        raise RecordError(f"The input image {recorded['path']} is no longer there.", "Put it back to make the picture again.")
    depth_file = depth_path_for(picture)
    origin = DepthOrigin.from_record(record["depth"].get("origin"))
    levels = read_depth_levels(depth_file) if depth_file.is_file() else None
    estimate_again = levels is None and origin is not None and origin.kind == ESTIMATED
    if levels is None and not estimate_again:
        raise RecordError(f"The depth map {depth_file.name} beside the picture is missing.", "Put it back to make the picture again.")
    mask_file = mask_path_for(picture)
    if record.get("mask") and not mask_file.is_file():
        raise RecordError(f"The mask {mask_file.name} beside the picture is missing.", "Put it back to make the picture again.")
    image = load_image(recorded["path"]).image
    mask_levels = read_mask_levels(mask_file) if record.get("mask") else None
    params = dataclasses.replace(GenerationParams.from_json(json.dumps(record["params"])),
                                 seed=record["batch"]["first_seed"], num_images=record["batch"]["size"])
    if params.depth_estimator not in ESTIMATORS:  # a newer version's: the map comes from the file or the origin
        params = dataclasses.replace(params, depth_estimator=DEFAULT_ESTIMATOR)
    if engine is None:
        engine = Engine(device=record["device"]["type"], dtype=record["precision"])
        requested = PerformanceSettings(**record["performance"]["requested"])
        engine.set_performance(dataclasses.replace(requested, device=record["device"]["type"], precision=record["precision"]))
        say(f"loading model {record['model']['source']} on {engine.device}…")
        engine.load(record["model"]["source"])
    stand_in_note = ()
    if estimate_again:
        say(f"the depth map {depth_file.name} beside the picture is missing: estimating it again ({origin.describe()})…")
        levels, origin, stand_in_note = _estimate_again(engine, image, origin)
    say(f"generating seed {record['seed']} ({record['params']['steps']} steps)…")
    result = engine.generate(params, image, levels_to_depth(levels), depth_origin=origin,
                             mask=levels_to_mask(mask_levels) if mask_levels is not None else None)
    index = record["batch"]["index"]
    hashes = HashCache()
    new_record = build_record(result, index, RunFacts.of(engine, hashes), recorded["path"], image, levels, hashes, mask_levels)
    saved = save_with_record(result.images[index], out, result.parameters_text(index), new_record, levels, mask_levels)
    return _compare(picture, result.images[index], record, new_record, saved, stand_in_note)


def _estimate_again(engine, image: Image.Image, origin: DepthOrigin) -> tuple[np.ndarray, DepthOrigin, tuple[str, ...]]:
    """The 16-bit levels of the depth estimated as `origin` says, the origin of the map made, and a line naming the
    recorded estimator when it cannot be had and the default one stood in."""
    try:
        return depth_levels(engine.estimate_depth(image, settings=origin.settings)), origin, ()
    except ModelError as exc:
        if origin.settings.estimator == DEFAULT_ESTIMATOR:
            raise
        stand_in = DepthOrigin.estimated(dataclasses.replace(origin.settings, estimator=DEFAULT_ESTIMATOR))
        levels = depth_levels(engine.estimate_depth(image, settings=stand_in.settings))
        return levels, stand_in, (f"depth estimator: {origin.describe()} then, {stand_in.describe()} now "
                                  f"({exc.message.rstrip('.')})",)


def _compare(picture: Path, new: Image.Image, record: dict, new_record: dict, saved: Path,
             stand_in_note: tuple[str, ...]) -> Reproduction:
    with open_image(picture) as old_image:
        old = np.asarray(old_image.convert("RGB"), dtype=np.int16)
    fresh = np.asarray(new.convert("RGB"), dtype=np.int16)
    if old.shape != fresh.shape:
        raise D2IError(f"The new picture is {new.width}x{new.height}, the recorded one {old.shape[1]}x{old.shape[0]}.",
                       "The input image has changed.")
    difference = np.abs(old - fresh)
    mse = float(np.mean(difference.astype(np.float64) ** 2))
    changed = stand_in_note + tuple(change for label, keys in _COMPARED
                                  for change in _changes(label, _get(record, keys), _get(new_record, keys)))
    return Reproduction(saved, not difference.any(), int(difference.max()), float(difference.mean()),
                        math.inf if mse == 0 else 10 * math.log10(255 ** 2 / mse), changed)


def _get(record: dict, keys: tuple[str, ...]):
    for key in keys:
        record = record.get(key) if isinstance(record, dict) else None
    return record


def _changes(label: str, then, now) -> list[str]:
    """One line per differing item; dictionaries (scheduler config, speed options) are compared key by key."""
    if isinstance(then, dict) and isinstance(now, dict):
        return [f"{label} {key}: {_show(then.get(key))} then, {_show(now.get(key))} now"
                for key in sorted(then.keys() | now.keys()) if key not in _SAME_ELSEWHERE and then.get(key) != now.get(key)]
    return [f"{label}: {_show(then)} then, {_show(now)} now"] if then != now else []


def _show(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "…"
