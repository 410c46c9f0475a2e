"""The machine-readable record inside each output: everything needed to make the picture again.

The record is JSON in the PNG text chunk `d2i-record`, beside AUTOMATIC1111's `parameters` text.
The depth map used is kept beside the picture as `NAME.depth.png` (16-bit); generation runs on
exactly those 16-bit levels, so reading the file back gives the very map that was used. What made the map
is `depth.origin`: the estimator and its settings, a file, or a hand edit (absent in older records). A repaint
mask, when one was used, is kept beside it the same way as `NAME.mask.png` (8-bit, white = repaint).
"""

from __future__ import annotations

import dataclasses
import json
import platform
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ... import __version__
from ..depth.maps import normalize
from ..errors import D2IError
from ..files.images import open_image
from ..files.outputs import save_png, save_unique_png
from .hashes import HashCache, sha256_bytes

RECORD_KEY = "d2i-record"
RECORD_FORMAT = 1
DEPTH_SUFFIX = ".depth.png"
MASK_SUFFIX = ".mask.png"
_PRECISIONS = {"float16": "fp16", "bfloat16": "bf16", "float32": "fp32"}  # as --precision names them


class RecordError(D2IError):
    """A picture has no usable record."""


def depth_levels(depth: np.ndarray) -> np.ndarray:
    """The map as the 16-bit levels kept beside the picture (0 = far, 65535 = near)."""
    return np.round(normalize(depth).astype(np.float64) * 65535).astype(np.uint16)


def levels_to_depth(levels: np.ndarray) -> np.ndarray:
    """The float32 map generation uses for `levels` (the same for the original run and a reproduction)."""
    return levels.astype(np.float32) / np.float32(65535)


def depth_sha256(levels: np.ndarray) -> str:
    return sha256_bytes(f"{levels.shape[1]}x{levels.shape[0]}\n".encode() + levels.astype("<u2").tobytes())


def pixels_sha256(image: Image.Image) -> str:
    rgb = image.convert("RGB")
    return sha256_bytes(f"{rgb.width}x{rgb.height}\n".encode() + rgb.tobytes())


def depth_path_for(picture: str | Path) -> Path:
    picture = Path(picture)
    return picture.with_name(picture.stem + DEPTH_SUFFIX)


def mask_path_for(picture: str | Path) -> Path:
    picture = Path(picture)
    return picture.with_name(picture.stem + MASK_SUFFIX)


def mask_sha256(levels: np.ndarray) -> str:
    return sha256_bytes(f"{levels.shape[1]}x{levels.shape[0]}\n".encode() + levels.astype(np.uint8).tobytes())


def read_mask_levels(path: str | Path) -> np.ndarray:
    with open_image(path) as image:
        levels = np.asarray(image, dtype=np.uint8) if image.mode == "L" else None
    if levels is None:
        raise RecordError(f"{Path(path).name} is not a mask written by this app.", "")
    return levels


def read_depth_levels(path: str | Path) -> np.ndarray:
    with open_image(path) as image:
        levels = np.asarray(image, dtype=np.uint16) if image.mode.startswith("I") else None
    if levels is None or levels.ndim != 2:
        raise RecordError(f"{Path(path).name} is not a 16-bit depth map written by this app.", "")
    return levels


@dataclass(frozen=True)
class RunFacts:
    """What one generation ran on, besides its parameters: read from the engine after the run."""

    model: dict
    scheduler: dict
    generator_device: str
    device: dict
    precision: str
    performance: dict
    versions: dict

    @classmethod
    def of(cls, engine, hashes: HashCache) -> RunFacts:
        from ..generation.engine import generator_device

        report = engine.performance_report
        return cls(model=model_facts(engine.info, hashes),
                   scheduler={"class": type(engine.pipe.scheduler).__name__,
                              "config": _plain(dict(engine.pipe.scheduler.config))},
                   generator_device=generator_device(engine.device),
                   device={"type": engine.device, "name": device_name(engine.device)},
                   precision=_PRECISIONS.get(engine.info.dtype, engine.info.dtype),
                   performance={"preset": engine.performance.preset, "requested": _plain(dataclasses.asdict(engine.performance)),
                                "effective": _plain(dataclasses.asdict(report.effective)) if report else None},
                   versions=software_versions())


def model_facts(info, hashes: HashCache) -> dict:
    """Name, source and the full sha256 of a loaded model's files (a folder: one digest over all its files)."""
    from ..models.registry import resolve_folder, source_kind

    facts = {"name": info.label, "source": info.source, "demo": info.is_demo}
    if source_kind(info.source) == "single-file":
        return facts | {"sha256": hashes.sha256(info.source)}
    combined, files = hashes.folder_sha256(resolve_folder(info.source))
    return facts | {"sha256": combined, "files": files}


def device_name(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    if device == "mps":
        return f"Apple MPS ({platform.machine()})"
    return platform.processor() or platform.machine() or "CPU"


def software_versions() -> dict[str, str]:
    import diffusers
    import torch
    import transformers

    return {"d2i-desktop": __version__, "torch": torch.__version__, "diffusers": diffusers.__version__,
            "transformers": transformers.__version__, "python": platform.python_version()}


def build_record(result, index: int, facts: RunFacts, input_path: str | Path | None, input_image: Image.Image,
                 levels: np.ndarray, hashes: HashCache, mask_levels: np.ndarray | None = None) -> dict:
    """The record of picture `index` of a GenerationResult made from `input_image` (read from `input_path`,
    None for a pasted picture), depth `levels` and, when one was used, the repaint mask's `mask_levels`."""
    from ..extras.adapters import resolve_extras
    from ..extras.library import Library

    params = result.params
    extras = resolve_extras(params.prompt, params.negative_prompt, (), Library())
    image = result.images[index]
    input_path = Path(input_path).resolve() if input_path else None
    return {
        "format": RECORD_FORMAT,
        "id": uuid.uuid4().hex,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "app": {"name": "d2i-desktop", "version": __version__},
        "model": facts.model,
        "loras": [{"name": item.name, "weight": weight, "sha256": hashes.sha256(item.path)} for item, weight in extras.loras],
        "embeddings": [{"name": item.name, "sha256": hashes.sha256(item.path)} for item in extras.embeddings],
        "input": {"path": str(input_path) if input_path else None, "sha256": hashes.sha256(input_path) if input_path else None,
                  "pixels_sha256": pixels_sha256(input_image),
                  "width": input_image.width, "height": input_image.height},
        "depth": {"sha256": depth_sha256(levels), "width": int(levels.shape[1]), "height": int(levels.shape[0])}
                 | ({"origin": result.depth_origin.to_record()} if result.depth_origin else {}),
        **({"mask": {"sha256": mask_sha256(mask_levels), "width": int(mask_levels.shape[1]),
                     "height": int(mask_levels.shape[0])}} if mask_levels is not None else {}),
        "scheduler": {"name": params.scheduler} | facts.scheduler,
        "params": _plain(dataclasses.asdict(params)),
        "seed": result.seeds[index],
        "batch": {"size": len(result.seeds), "index": index, "first_seed": result.seeds[0]},
        "generator_device": facts.generator_device,
        "device": facts.device,
        "precision": facts.precision,
        "performance": facts.performance,
        "versions": facts.versions,
        "image": {"width": image.width, "height": image.height, "pixels_sha256": pixels_sha256(image)},
    }


def save_with_record(image: Image.Image, target: str | Path, parameters: str, record: dict, levels: np.ndarray,
                     mask_levels: np.ndarray | None = None) -> Path:
    """Write the picture (never overwriting: a free name is chosen), its 16-bit depth map and any mask beside it."""
    saved = save_unique_png(image, Path(target).with_suffix(".png"), parameters,
                            {RECORD_KEY: json.dumps(record, ensure_ascii=False, separators=(",", ":"))})
    save_png(Image.fromarray(levels), depth_path_for(saved))
    if mask_levels is not None:
        save_png(Image.fromarray(mask_levels, mode="L"), mask_path_for(saved))
    return saved


def save_result(engine, result, input_path: str | Path | None, input_image: Image.Image, levels: np.ndarray,
                targets, hashes: HashCache | None = None, mask_levels: np.ndarray | None = None) -> list[tuple[Path, dict]]:
    """Save every picture of `result` (picture i to the first free name near `targets[i]`) with its record, depth map
    and the repaint mask's `mask_levels` when one was used."""
    hashes = hashes or HashCache()
    facts = RunFacts.of(engine, hashes)
    saved = []
    for index, target in enumerate(targets):
        record = build_record(result, index, facts, input_path, input_image, levels, hashes, mask_levels)
        saved.append((save_with_record(result.images[index], target, result.parameters_text(index), record, levels,
                                       mask_levels), record))
    return saved


def read_record(path: str | Path) -> dict | None:
    """The record a picture carries, None when it has none; RecordError when it is damaged."""
    with open_image(path) as image:
        text = image.info.get(RECORD_KEY)
        if text is None and image.format == "PNG":
            image.load()  # chunks after the pixel data
            text = image.info.get(RECORD_KEY)
    if text is None:
        return None
    try:
        record = json.loads(text)
    except ValueError:
        record = None
    if not isinstance(record, dict) or not isinstance(record.get("params"), dict) or not isinstance(record.get("format"), int):
        raise RecordError(f"The record in {Path(path).name} is damaged.", "Its settings cannot be read back.")
    if record["format"] > RECORD_FORMAT:
        raise RecordError(f"{Path(path).name} was made by a newer version of d2i-desktop.", "Update the app to read its record.")
    return record


def _plain(value):
    """JSON-ready: tuples to lists, numpy numbers and arrays to Python ones."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value
