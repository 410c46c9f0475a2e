"""Depth estimators: loading one, and running it into the depth the pipeline expects (the choice of them
is core.depth.estimator_catalogue, whose names this module offers too).

SD2-depth was trained on DPT-hybrid (MiDaS) depth, so that stays the default; for an SD2-depth model the
pipeline's own copy is used, and gives exactly the engine's depth. The others come from transformers'
depth-estimation models and diffusers' MarigoldDepthPipeline.

Every estimate ends as StableDiffusionDepth2ImgPipeline.prepare_depth_map wants it: relative inverse depth,
high = near (MiDaS's convention), of which only the shape counts, as the pipeline min-max scales it.
Metric depth in metres (ZoeDepth, Depth Pro) becomes 1/distance; Marigold's affine-invariant depth
(0 = near, 1 = far) is turned around. Fine detail for large photos: see core.depth.fine_detail.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors import SafetensorError

from . import fine_detail as fine
from .estimator_catalogue import DEFAULT_ESTIMATOR, ESTIMATORS, OUTPUTS, DepthSettings, EstimatorSpec, estimator_spec
from ..errors import Cancelled, Fix, ModelError
from ..generation.guards import InvalidValues, out_of_memory_guard
from ..models.catalogue import SD2_DEPTH_SOURCES
from ..models.downloads import format_bytes
from ..models.hf_cache import cached_snapshot, read_json_object

log = logging.getLogger(__name__)

PIPELINE_SOURCE = "the model's own DPT-hybrid"
__all__ = [  # the catalogue's names too: this module is where the choice of estimators is used from
    "DEFAULT_ESTIMATOR", "ESTIMATORS", "OUTPUTS", "PIPELINE_SOURCE", "DepthEstimate", "DepthEstimator", "DepthSettings",
    "EstimatorSpec", "estimator_folder", "estimator_spec", "load_estimator", "pipeline_estimator", "to_inverse_depth",
]

# What each estimator's folder holds: config.json's model_type, or model_index.json's _class_name.
_ARCHITECTURES = {"dpt-hybrid": "dpt", "depth-anything-v2-small": "depth_anything", "depth-anything-v2-base": "depth_anything",
                  "depth-anything-v2-large": "depth_anything", "zoedepth": "zoedepth", "depth-pro": "depth_pro",
                  "marigold": "MarigoldDepthPipeline"}
_ARCHITECTURE_NAMES = {"dpt": "a DPT-Hybrid depth estimator", "depth_anything": "a Depth Anything model",
                       "zoedepth": "a ZoeDepth model", "depth_pro": "a Depth Pro model",
                       "MarigoldDepthPipeline": "a Marigold depth model",
                       "StableDiffusionDepth2ImgPipeline": "an SD2-depth model"}
_CONVERSION_NOTES = {"metric": "{label} gives metric depth (metres); turned into 1/distance",
                     "affine-depth": "{label} gives depth from 0 (near) to 1 (far); turned around so that near is bright"}
_MARIGOLD_PARTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
_MARIGOLD_WEIGHTED_PARTS = ("unet", "vae", "text_encoder")


@dataclass(frozen=True)
class DepthEstimate:
    depth: np.ndarray  # float32 (H, W) at the image's size, bright = near (relative inverse depth)
    notes: tuple[str, ...] = ()  # what was done to get there, e.g. a conversion from metric depth


def to_inverse_depth(raw: torch.Tensor, output: str) -> torch.Tensor:
    """A model's raw depth (`output`, one of OUTPUTS) as relative inverse depth, high = near."""
    if output == "metric":
        return 1.0 / raw.clamp(min=1e-4)  # metres to 1/metres; the clamp keeps a zero distance finite
    if output == "affine-depth":
        return 1.0 - raw  # Marigold: 0 = near .. 1 = far
    if output == "relative-inverse":
        return raw
    raise ValueError(f"unknown depth output {output!r}")


def _check(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled()


class DepthEstimator:
    """One loaded depth model: an image in, relative inverse depth at the image's size out."""

    def __init__(self, spec: EstimatorSpec, source: str, device: str, dtype: torch.dtype, input_size: tuple[int, int],
                 output: str | None = None):
        self.spec = spec
        self.source = source  # the folder it was loaded from, or PIPELINE_SOURCE
        self.device = device
        self.dtype = dtype
        self.input_size = input_size  # (height, width) the model sees an image at
        self.output = output or spec.output

    def estimate(self, image: Image.Image, *, fine_detail: bool = False,
                 cancel: threading.Event | None = None) -> DepthEstimate:
        """Raises Cancelled when `cancel` is set before a model call, InvalidValues on NaN or infinite depth."""
        image = image.convert("RGB")
        notes = [_CONVERSION_NOTES[self.output].format(label=self.spec.label)] if self.output in _CONVERSION_NOTES else []

        def predict(picture: Image.Image) -> np.ndarray:
            _check(cancel)
            return self._predict(picture)

        with out_of_memory_guard("estimating depth"), torch.inference_mode():
            if fine_detail:
                depth, note = fine.estimate(predict, image, self.input_size)
                notes += [note] if note else []
            else:
                depth = predict(image)
        if not np.isfinite(depth).all():
            half = self.dtype != torch.float32
            raise InvalidValues(f"{self.spec.label} produced invalid depth values (NaN or infinity).",
                                "Load a depth map for this image, or use fp32 precision (Edit > Settings > Performance)."
                                if half else "Its files may be damaged: download it again, or choose another depth estimator.",
                                fix=Fix("Use fp32 precision", changes={"precision": "fp32"}) if half else None)
        return DepthEstimate(depth.astype(np.float32), tuple(notes))

    def _autocast(self):
        # As the pipeline does for DPT-hybrid, whose batch norms misbehave in plain fp16.
        return torch.autocast("cuda", dtype=self.dtype) if self.device.startswith("cuda") else contextlib.nullcontext()

    def _predict(self, picture: Image.Image) -> np.ndarray:
        """Relative inverse depth of `picture`, float32 (H, W) at its size."""
        raise NotImplementedError


class _TransformersEstimator(DepthEstimator):
    """A transformers depth-estimation model with its own image processor."""

    def __init__(self, spec, source, model, processor, device, dtype, input_size=None):
        super().__init__(spec, source, device, dtype, input_size or _input_size(processor.size))
        self.model, self.processor = model, processor

    def _predict(self, picture):
        pixels = self._pixels(picture).to(device=self.device, dtype=self.model.dtype)
        with self._autocast():
            outputs = self.model(pixel_values=pixels)
            raw = self._post_process(outputs, (picture.height, picture.width))
        return to_inverse_depth(raw, self.output).cpu().numpy().astype(np.float32)

    def _pixels(self, picture: Image.Image) -> torch.Tensor:
        return self.processor(images=picture, return_tensors="pt").pixel_values

    def _post_process(self, outputs, size: tuple[int, int]) -> torch.Tensor:
        """The raw depth, float32 (H, W) at `size`."""
        from transformers.modeling_outputs import DepthEstimatorOutput

        float_outputs = DepthEstimatorOutput(predicted_depth=outputs.predicted_depth.float())
        return self.processor.post_process_depth_estimation(float_outputs, target_sizes=[size])[0]["predicted_depth"]


class _ZoeDepthEstimator(_TransformersEstimator):
    """ZoeDepth pads its input (reflected) against border artefacts; the padding is cut off its output again.

    This is ZoeDepthImageProcessor.post_process_depth_estimation, step for step: without torchvision, which the
    app does not need, transformers' own version of it fails (its PIL backend calls torchvision).
    """

    def _post_process(self, outputs, size):
        height, width = size
        pad_h, pad_w = (int(np.sqrt(height / 2) * 3), int(np.sqrt(width / 2) * 3)) if self.processor.do_pad else (0, 0)
        depth = torch.nn.functional.interpolate(outputs.predicted_depth.float()[:, None], mode="bicubic",
                                                size=(height + 2 * pad_h, width + 2 * pad_w), align_corners=False)
        return depth[0, 0, pad_h:pad_h + height, pad_w:pad_w + width]


class _DepthProEstimator(_TransformersEstimator):
    """Depth Pro, with DepthProImageProcessor's steps written out: transformers offers that processor only with
    torchvision, which the app does not need. `processor` is its preprocessor_config.json."""

    _RESAMPLE = {0: "nearest", 2: "bilinear", 3: "bicubic"}  # PIL's numbers, as the config stores them

    def __init__(self, spec, source, model, processor: dict, device, dtype):
        size = _input_size(processor.get("size", {"height": 1536, "width": 1536}))
        super().__init__(spec, source, model, processor, device, dtype, size)
        self.mode = self._RESAMPLE.get(processor.get("resample", 2), "bilinear")

    def _pixels(self, picture):
        # Rescale and normalise first, then resize: the order DepthProImageProcessor uses.
        config = self.processor
        values = torch.from_numpy(np.asarray(picture, dtype=np.float32)).permute(2, 0, 1)[None]
        values = values * config.get("rescale_factor", 1 / 255) if config.get("do_rescale", True) else values
        if config.get("do_normalize", True):
            mean = torch.tensor(config.get("image_mean", [0.5] * 3))[None, :, None, None]
            std = torch.tensor(config.get("image_std", [0.5] * 3))[None, :, None, None]
            values = (values - mean) / std
        return torch.nn.functional.interpolate(values, size=self.input_size, mode=self.mode)

    def _post_process(self, outputs, size):
        # The head predicts inverse depth for a canonical camera; the predicted field of view scales it.
        inverse = outputs.predicted_depth.float()[:, None]
        fov = outputs.field_of_view
        if fov is not None:
            width = size[1]
            focal_length = 0.5 * width / torch.tan(0.5 * torch.deg2rad(fov.float()[0]))
            inverse = inverse * width / focal_length
        inverse = torch.nn.functional.interpolate(inverse, size=size, mode=self.mode)[0, 0]
        return 1.0 / inverse.clamp(min=1e-4, max=1e4)  # metres


class _MarigoldEstimator(DepthEstimator):
    """diffusers' MarigoldDepthPipeline at its own steps and processing resolution."""

    def __init__(self, spec, source, pipe, device, dtype):
        side = pipe.default_processing_resolution or 768
        output = "relative-inverse" if pipe.config.prediction_type == "disparity" else "affine-depth"
        super().__init__(spec, source, device, dtype, (side, side), output)
        self.pipe = pipe

    def _predict(self, picture):
        # Marigold starts from noise: a fixed seed gives the same depth for the same image.
        generator = torch.Generator().manual_seed(0)
        prediction = self.pipe(picture, generator=generator, output_type="pt").prediction  # (1, 1, H, W) in 0..1
        return to_inverse_depth(prediction[0, 0].float(), self.output).cpu().numpy().astype(np.float32)


def _input_size(size) -> tuple[int, int]:
    """(height, width) from an image processor's `size` (a dict, or transformers 5's SizeDict)."""
    read = size.get if isinstance(size, dict) else (lambda key: getattr(size, key, None))
    if read("height") and read("width"):
        return int(read("height")), int(read("width"))
    edge = int(read("shortest_edge") or read("longest_edge"))
    return edge, edge


def pipeline_estimator(pipe) -> DepthEstimator | None:
    """SD2-depth's own DPT-hybrid (depth_estimator + feature_extractor), run as the pipeline runs it; None without one."""
    model, processor = getattr(pipe, "depth_estimator", None), getattr(pipe, "feature_extractor", None)
    if model is None or processor is None:
        return None
    return _TransformersEstimator(ESTIMATORS[DEFAULT_ESTIMATOR], PIPELINE_SOURCE, model, processor,
                                  str(pipe._execution_device), model.dtype)


# -- finding and loading -----------------------------------------------------------------------
def estimator_folder(name: str, cache_dir: Path | None = None) -> Path | None:
    """Where the Hugging Face cache holds `name`; for DPT-hybrid also the depth estimator inside a cached SD2-depth model."""
    spec = estimator_spec(name)
    snapshot = cached_snapshot(spec.repo_id, cache_dir=cache_dir)
    if snapshot is not None:
        return snapshot
    if name == "dpt-hybrid":
        for source in SD2_DEPTH_SOURCES:
            model = cached_snapshot(source.repo_id, cache_dir=cache_dir)
            if model is not None and (model / "depth_estimator" / "config.json").is_file():
                return model / "depth_estimator"
    return None


def load_estimator(name: str, device: str, dtype: torch.dtype, folder: Path | None = None) -> DepthEstimator:
    """`name` from `folder`, else from the Hugging Face cache; never from the network. fp32 off CUDA."""
    spec = estimator_spec(name)
    folder = Path(folder) if folder is not None else estimator_folder(name)
    if folder is None:
        raise ModelError(f"{spec.label} is not downloaded yet.",
                         f"Download it in Model > Models… ({format_bytes(spec.size_bytes)}, licence {spec.licence}).")
    if name == "dpt-hybrid" and (folder / "depth_estimator" / "config.json").is_file():
        folder = folder / "depth_estimator"  # an SD2-depth model folder: its own DPT-hybrid
    _check_folder(spec, folder)
    dtype = dtype if device.startswith("cuda") else torch.float32
    try:
        with out_of_memory_guard("loading the model"):
            estimator = _load_marigold(spec, folder, device, dtype) if spec.library == "diffusers" else \
                _load_transformers(spec, folder, device, dtype)
    except (OSError, ValueError, RuntimeError, SafetensorError) as exc:
        log.exception("loading %s from %s failed", name, folder)
        raise ModelError(f"Could not load {spec.label} from {folder}: {str(exc).splitlines()[0][:200]}",
                         "Its files may be damaged: download it again in Model > Models….") from exc
    log.info("loaded depth estimator %s from %s on %s (%s)", name, folder, device, dtype)
    return estimator


def _check_folder(spec: EstimatorSpec, folder: Path) -> None:
    """ModelError unless `folder` holds `spec`'s architecture with its weights."""
    if not folder.is_dir():
        raise ModelError(f"{folder} is not a folder.", f"Choose the folder of {spec.label} ({spec.repo_id}).")
    config, index = read_json_object(folder / "config.json"), read_json_object(folder / "model_index.json")
    found = config.get("model_type") or index.get("_class_name")
    plain_dpt = found == "dpt" and not config.get("is_hybrid")
    if found != _ARCHITECTURES[spec.name] or plain_dpt:
        what = ("a DPT depth estimator without the hybrid backbone (e.g. DPT-Large)" if plain_dpt else
                _ARCHITECTURE_NAMES.get(found, f"a '{found}' model") if found else
                "no model configuration (config.json or model_index.json)")
        what += " with no depth estimator" if found == "StableDiffusionDepth2ImgPipeline" and spec.name == "dpt-hybrid" else ""
        raise ModelError(f"{folder} is not {spec.label}: it holds {what}.",
                         f"Choose the folder of {spec.label} ({spec.repo_id}), or download it in Model > Models….")
    incomplete = "The download or copy is incomplete: download it again in Model > Models…."
    if spec.library == "diffusers":
        missing = [part for part in _MARIGOLD_PARTS if not (folder / part).is_dir()]
        if missing:
            raise ModelError(f"{spec.label} in {folder} is missing {', '.join(missing)}.", incomplete)
    for part in [folder / part for part in _MARIGOLD_WEIGHTED_PARTS] if spec.library == "diffusers" else [folder]:
        if not _weight_files(part):
            where = "" if part == folder else f" for its {part.name.replace('_', ' ')}"
            raise ModelError(f"{spec.label} in {folder} has no weights{where}.", incomplete)


def _weight_files(folder: Path) -> list[str]:
    return [f.name for f in folder.iterdir() if f.name.endswith((".safetensors", ".bin"))]


def _load_transformers(spec: EstimatorSpec, folder: Path, device: str, dtype: torch.dtype) -> DepthEstimator:
    from transformers import AutoImageProcessor, AutoModelForDepthEstimation

    model = AutoModelForDepthEstimation.from_pretrained(folder, local_files_only=True).to(device=device, dtype=dtype).eval()
    if spec.name == "depth-pro":
        return _DepthProEstimator(spec, str(folder), model, read_json_object(folder / "preprocessor_config.json"), device, dtype)
    # SD2-depth keeps its DPT's processor beside it, in feature_extractor/
    processor_folder = next((f for f in (folder, folder.parent / "feature_extractor")
                             if (f / "preprocessor_config.json").is_file()), folder)
    processor = AutoImageProcessor.from_pretrained(processor_folder, local_files_only=True)
    runner = _ZoeDepthEstimator if spec.name == "zoedepth" else _TransformersEstimator
    return runner(spec, str(folder), model, processor, device, dtype)


def _load_marigold(spec: EstimatorSpec, folder: Path, device: str, dtype: torch.dtype) -> DepthEstimator:
    from diffusers import MarigoldDepthPipeline

    from ..models.registry import weights_variant

    variants = {weights_variant(folder / part) for part in _MARIGOLD_WEIGHTED_PARTS}
    variant = next((v for v in variants if v), None)  # diffusers falls back to plain files for parts without it
    pipe = MarigoldDepthPipeline.from_pretrained(folder, dtype=dtype, variant=variant, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    return _MarigoldEstimator(spec, str(folder), pipe.to(device), device, dtype)
