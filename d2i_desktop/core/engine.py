"""The engine: owns one loaded depth-to-image pipeline; estimates depth and generates."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from .demo import DEMO_LABEL, is_demo_model
from .errors import Cancelled, D2IError, ModelError
from .params import SCHEDULERS, GenerationParams, parameters_text
from .preview import latents_to_rgb

log = logging.getLogger(__name__)


def pick_device(preferred: str | None = None) -> str:
    """CUDA, then Apple MPS, then CPU, unless `preferred` names one."""
    if preferred:
        if preferred.startswith("cuda") and not torch.cuda.is_available():
            raise ModelError("CUDA was asked for but no CUDA GPU is available.", "Choose the CPU or 'auto'.")
        return preferred
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def pick_dtype(device: str, preferred: str | None = None) -> torch.dtype:
    """fp16 on CUDA, fp32 elsewhere, unless `preferred` ("fp16", "bf16", "fp32") says otherwise."""
    named = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
    if preferred:
        if preferred not in named:
            raise ModelError(f"Unknown precision '{preferred}'.", "Use fp16, bf16 or fp32.")
        return named[preferred]
    return torch.float16 if device.startswith("cuda") else torch.float32


@dataclass(frozen=True)
class ModelInfo:
    name: str
    source: str
    device: str
    dtype: str
    is_demo: bool

    @property
    def label(self) -> str:
        return DEMO_LABEL if self.is_demo else self.name


@dataclass(frozen=True)
class StepInfo:
    step: int  # 1-based
    total: int
    elapsed: float  # seconds since denoising began
    preview: np.ndarray | None  # uint8 (h, w, 3) at the latent grid's size


@dataclass(frozen=True)
class GenerationResult:
    images: list[Image.Image]
    seeds: list[int]
    params: GenerationParams
    model: ModelInfo
    seconds: float

    def parameters_text(self, index: int) -> str:
        return parameters_text(self.params, self.seeds[index], self.images[index].size, self.model.label)


StepCallback = Callable[[StepInfo], None]


def image_key(image: Image.Image) -> str:
    return hashlib.blake2b(image.tobytes(), digest_size=16, person=f"{image.size}".encode()[:16]).hexdigest()


class Engine:
    """Keeps one pipeline loaded. Not thread-safe: one worker thread owns it."""

    def __init__(self, device: str | None = None, dtype: str | None = None):
        self.device = pick_device(device)
        self.dtype = pick_dtype(self.device, dtype)
        self.pipe = None
        self.info: ModelInfo | None = None
        self._base_scheduler_config = None
        self._scheduler_name: str | None = None
        self._depth_cache: tuple[str, np.ndarray] | None = None

    # -- loading -------------------------------------------------------------------------
    def load(self, source: str | Path, local_files_only: bool = True) -> ModelInfo:
        """Load a diffusers folder or hub id; the previous model is released first."""
        from diffusers import StableDiffusionDepth2ImgPipeline
        from diffusers.utils import logging as diffusers_logging

        diffusers_logging.disable_progress_bar()
        source = str(source)
        local = Path(source).expanduser()
        if local.exists() and not (local / "model_index.json").is_file():
            raise ModelError(
                f"{local} is not a diffusers model folder (it has no model_index.json).",
                "Pick the folder that holds model_index.json, unet/, vae/ and the other parts.",
            )
        if not local.exists() and (source.startswith((".", "/", "~")) or "\\" in source or source.count("/") != 1):
            raise ModelError(f"No model found at '{source}'.", "Check the path, or use a Hugging Face id like org/name.")
        self.unload()
        try:
            pipe = StableDiffusionDepth2ImgPipeline.from_pretrained(
                str(local) if local.exists() else source, dtype=self.dtype, local_files_only=local_files_only,
            )
        except (OSError, ValueError, EnvironmentError) as exc:
            log.exception("model load failed")
            raise ModelError(
                f"Could not load the model '{source}': {str(exc).splitlines()[0][:200]}",
                "Check that the folder is complete, or download the model again.",
            ) from exc
        in_channels = pipe.unet.config.in_channels
        if in_channels != 5:
            raise ModelError(
                f"'{source}' is not a depth model: its UNet takes {in_channels} input channels, a depth model takes 5.",
                "Use stabilityai/stable-diffusion-2-depth or another SD2-depth model.",
            )
        pipe.set_progress_bar_config(disable=True)
        self.pipe = pipe.to(self.device)
        self._base_scheduler_config = dict(pipe.scheduler.config)
        self._scheduler_name = None
        name = local.name if local.exists() else source
        self.info = ModelInfo(name=name, source=source, device=self.device, dtype=str(self.dtype).removeprefix("torch."),
                              is_demo=local.exists() and is_demo_model(local))
        log.info("loaded %s on %s (%s)", source, self.device, self.dtype)
        return self.info

    def unload(self) -> None:
        self.pipe = None
        self.info = None
        self._depth_cache = None
        import gc
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def _require_pipe(self):
        if self.pipe is None:
            raise ModelError("No model is loaded yet.", "Choose a model (or the demo model) first.")
        return self.pipe

    # -- depth -------------------------------------------------------------------------
    def estimate_depth(self, image: Image.Image, cancel: threading.Event | None = None) -> np.ndarray:
        """The pipeline's own DPT estimate as float32 (H, W) at the image's size; bright = near."""
        pipe = self._require_pipe()
        _check(cancel)
        key = image_key(image)
        if self._depth_cache and self._depth_cache[0] == key:
            return self._depth_cache[1].copy()
        estimator = pipe.depth_estimator
        pixels = pipe.feature_extractor(images=image.convert("RGB"), return_tensors="pt").pixel_values
        pixels = pixels.to(device=self.device, dtype=estimator.dtype)
        # DPT-Hybrid's batch norms misbehave in plain fp16; the pipeline runs it under autocast too.
        autocast = torch.autocast(self.device, dtype=self.dtype) if self.device.startswith("cuda") else contextlib.nullcontext()
        with torch.inference_mode(), autocast:
            predicted = estimator(pixels).predicted_depth
        depth = torch.nn.functional.interpolate(
            predicted.unsqueeze(1).float(), size=(image.height, image.width), mode="bicubic", align_corners=False,
        )[0, 0].cpu().numpy().astype(np.float32)
        self._depth_cache = (key, depth)
        return depth.copy()

    # -- generation --------------------------------------------------------------------
    def _use_scheduler(self, name: str) -> None:
        if name == self._scheduler_name:
            return
        import diffusers

        class_name, overrides = SCHEDULERS[name]
        scheduler_class = getattr(diffusers, class_name)
        self.pipe.scheduler = scheduler_class.from_config(self._base_scheduler_config, **overrides)
        self._scheduler_name = name

    def generate(self, params: GenerationParams, image: Image.Image, depth: np.ndarray | None = None,
                 on_step: StepCallback | None = None, cancel: threading.Event | None = None,
                 preview_every: int = 1) -> GenerationResult:
        """Repaint `image` guided by `depth` (estimated when None). Raises Cancelled or D2IError."""
        pipe = self._require_pipe()
        params = params.validated()
        image = image.convert("RGB")
        if image.width % 8 or image.height % 8:
            raise D2IError(f"Image size {image.width}x{image.height} is not a multiple of 8.",
                           "Load it through load_image(), which fixes the size.")
        if depth is None:
            depth = self.estimate_depth(image, cancel)
        if not np.isfinite(depth).all() or float(depth.max() - depth.min()) == 0.0:
            raise D2IError("The depth map is constant or holds invalid values.", "Estimate the depth again or load another map.")
        _check(cancel)
        self._use_scheduler(params.scheduler)

        first_seed = params.resolved_seed()
        seeds = [(first_seed + i) % (2**32) for i in range(params.num_images)]
        generators = [torch.Generator(device="cpu" if self.device == "mps" else self.device).manual_seed(s) for s in seeds]
        depth_tensor = torch.from_numpy(np.ascontiguousarray(depth, dtype=np.float32))[None]
        started = time.perf_counter()

        def step_end(pipeline, i, _t, tensors):
            _check(cancel)
            if on_step is not None:
                total = pipeline.num_timesteps
                show = (i + 1) % preview_every == 0 or i + 1 == total
                on_step(StepInfo(i + 1, total, time.perf_counter() - started,
                                 latents_to_rgb(tensors["latents"]) if show else None))
            return {}

        try:
            with torch.inference_mode():
                latents = pipe(
                    prompt=params.prompt, negative_prompt=params.negative_prompt or None, image=image,
                    depth_map=depth_tensor, strength=params.strength, num_inference_steps=params.steps,
                    guidance_scale=params.guidance_scale, num_images_per_prompt=params.num_images,
                    generator=generators, output_type="latent", callback_on_step_end=step_end,
                ).images
                _check(cancel)
                images = self._decode(latents)
        except torch.cuda.OutOfMemoryError as exc:
            raise D2IError("The GPU ran out of memory.", "Use a smaller image, fewer images per prompt, or a low-memory mode.") from exc
        return GenerationResult(images, seeds, params, self.info, time.perf_counter() - started)

    def _decode(self, latents: torch.Tensor) -> list[Image.Image]:
        vae = self.pipe.vae
        decoded = vae.decode(latents.to(vae.dtype) / vae.config.scaling_factor, return_dict=False)[0]
        return self.pipe.image_processor.postprocess(decoded, output_type="pil")


def _check(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled()
