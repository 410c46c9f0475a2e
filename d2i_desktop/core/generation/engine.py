"""The engine: owns one loaded depth-to-image pipeline; estimates depth and generates."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from . import prompts
from ..depth.estimators import DepthEstimate, DepthSettings
from ..speed.acceleration import PerformanceReport, PerformanceSettings, adapter_signature, apply_performance
from ..models.demo import DEMO_LABEL
from ..errors import Cancelled, D2IError, Fix, ModelError
from .depth_origin import DepthOrigin
from .depth_source import DepthSource
from .guards import InvalidValues, all_finite, free_memory, out_of_memory_guard
from .masks import LatentBlend, check_mask, composite
from .params import SCHEDULERS, GenerationParams, parameters_text
from ..paths import data_dir
from .preview import latents_to_rgb
from .tiling import seamless
from ..speed.unet_accel import UNetAccelerator

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


def generator_device(device: str) -> str:
    """Where the seeded noise is drawn: the device itself, except on MPS (CPU there, as diffusers advises)."""
    return "cpu" if device == "mps" else device


@dataclass(frozen=True)
class ModelInfo:
    name: str
    source: str
    device: str
    dtype: str
    is_demo: bool
    notes: tuple[str, ...] = ()  # e.g. that depth maps must be supplied because the model has no depth estimator
    own_depth_estimator: bool = True  # the pipeline holds its DPT-hybrid (else DPT-hybrid comes from the cache)

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
    extra: dict[str, str] = field(default_factory=dict)  # more metadata fields, e.g. "Lora hashes"
    notes: tuple[str, ...] = ()  # what the engine did to get a valid picture, e.g. a decode retried in fp32
    depth_origin: DepthOrigin | None = None  # what made the depth map; None when the caller did not say

    def parameters_text(self, index: int) -> str:
        return parameters_text(self.params, self.seeds[index], self.images[index].size, self.model.label, self.extra)


StepCallback = Callable[[StepInfo], None]


class Engine:
    """Keeps one pipeline loaded. Not thread-safe: one worker thread owns it."""

    def __init__(self, device: str | None = None, dtype: str | None = None):
        self.device = pick_device(device)
        self.dtype = pick_dtype(self.device, dtype)
        self.pipe = None
        self.info: ModelInfo | None = None
        self._base_scheduler_config = None
        self._scheduler_name: str | None = None
        self.depth_source = DepthSource()
        self.performance = PerformanceSettings(device=device or "auto", precision=dtype or "auto")
        self.performance_report: PerformanceReport | None = None
        self.accelerator: UNetAccelerator | None = None
        self._prompt_cache: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}
        self.prompt_cache_stats = {"hits": 0, "misses": 0}
        self._adapters = None  # LoRAs and embeddings applied to self.pipe (core.adapters.Adapters)

    # -- loading -------------------------------------------------------------------------
    def load(self, source: str | Path, local_files_only: bool = True) -> ModelInfo:
        """Load a diffusers folder, hub id (from the cache) or single checkpoint file; the previous model is released first."""
        from diffusers.utils import logging as diffusers_logging

        from ..models import registry as models

        diffusers_logging.disable_progress_bar()
        source = str(source)
        models.check_source(source, local_files_only)  # reject a bad source before releasing the current model
        self.unload()
        with out_of_memory_guard("loading the model"):
            loaded = models.load_pipeline(source, self.dtype, local_files_only=local_files_only)
            pipe = loaded.pipe
            pipe.set_progress_bar_config(disable=True)
            offload = self.performance.offload != "none" and self.device.startswith("cuda")
            pipe = pipe if offload else pipe.to(self.device)  # offload places each part itself
        self.pipe = pipe
        self._base_scheduler_config = dict(pipe.scheduler.config)
        self._scheduler_name = None
        self.info = ModelInfo(name=loaded.name, source=source, device=self.device, dtype=str(self.dtype).removeprefix("torch."),
                              is_demo=loaded.is_demo, notes=loaded.notes,
                              own_depth_estimator=pipe.depth_estimator is not None)
        log.info("loaded %s on %s (%s)", source, self.device, self.dtype)
        self._apply_performance(fresh=True)
        return self.info

    def unload(self) -> None:
        self._drop_accelerator()
        self.invalidate_prompt_cache()
        self._adapters = None
        self.pipe = None
        self.info = None
        self.depth_source.clear()
        # No gc.collect() here: this runs on the worker thread, and a collection there may
        # destroy Qt objects owned by the GUI thread. Dropping the references frees the model.
        free_memory()

    # -- performance -------------------------------------------------------------------
    def set_performance(self, settings: PerformanceSettings) -> PerformanceReport | None:
        """Use `settings` from now on; reloads the model only when device, precision or offload change."""
        settings = settings.validated()
        device = pick_device(None if settings.device == "auto" else settings.device)
        dtype = pick_dtype(device, None if settings.precision == "auto" else settings.precision)
        current_offload = self.performance_report.effective.offload if self.performance_report else "none"
        wanted_offload = settings.offload if device.startswith("cuda") else "none"
        reload = self.pipe is not None and ((device, dtype) != (self.device, self.dtype) or current_offload != wanted_offload)
        if (device, dtype) != (self.device, self.dtype):
            self.depth_source.clear()
        self.device, self.dtype, self.performance = device, dtype, settings
        if reload:
            self.load(self.info.source)
        elif self.pipe is not None:
            self._apply_performance(fresh=False)
        return self.performance_report

    def _apply_performance(self, fresh: bool) -> None:
        self._drop_accelerator()
        current_offload = None if fresh or self.performance_report is None else self.performance_report.effective.offload
        report = apply_performance(self.pipe, self.performance, self.device, current_offload)
        effective = report.effective
        if effective.compile != "off":
            self.accelerator = UNetAccelerator(self.pipe.unet, effective.compile, effective.compile_mode,
                                               cache_dir=data_dir() / "compile-cache")
        self.performance_report = report

    def _drop_accelerator(self) -> None:
        if self.accelerator is not None:
            self.accelerator.remove()
            self.accelerator = None

    def adapters_changed(self) -> None:
        """Call after loading, removing or re-weighting LoRAs: drops cached embeddings and re-checks fused projections."""
        self.invalidate_prompt_cache()
        if self.pipe is not None:
            self._apply_performance(fresh=False)

    def invalidate_prompt_cache(self) -> None:
        self._prompt_cache.clear()

    def _prompt_embeddings(self, prompt: str, negative: str):
        """(positive, negative) text embeddings for one image and notes on the prompts (core.prompts),
        reused while prompt and text-encoder state stay."""
        pipe = self.pipe
        key = (prompt, negative, len(pipe.tokenizer), adapter_signature(pipe.text_encoder))
        cached = self._prompt_cache.get(key)
        if cached is not None:
            self.prompt_cache_stats["hits"] += 1
            return cached
        self.prompt_cache_stats["misses"] += 1
        cached = prompts.encode(pipe, prompt, negative, pipe._execution_device)
        if len(self._prompt_cache) >= 8:
            self._prompt_cache.pop(next(iter(self._prompt_cache)))
        self._prompt_cache[key] = cached
        return cached

    def _require_pipe(self):
        if self.pipe is None:
            raise ModelError("No model is loaded yet.", "Choose a model (or the demo model) first.")
        return self.pipe

    # -- depth -------------------------------------------------------------------------
    def depth_estimate(self, image: Image.Image, cancel: threading.Event | None = None,
                       settings: DepthSettings = DepthSettings()) -> DepthEstimate:
        """The depth of `image` as `settings` ask (float32 (H, W) at the image's size; bright = near), with notes:
        DPT-hybrid is the pipeline's own when the model has one, any other estimator is loaded on first use."""
        pipe = self._require_pipe()
        _check(cancel)
        try:
            return self.depth_source.estimate(image, settings, pipe, self.device, self.dtype, cancel)
        except InvalidValues as exc:
            fix = self._precision_fix() if exc.fix is not None else None
            if fix is None:
                raise
            name = fix.changes["precision"]  # bf16 where the GPU has it, rather than fp32
            raise InvalidValues(exc.message, f"Load a depth map for this image, or use {name} precision "
                                             "(Edit > Settings > Performance).", fix=fix) from exc

    def estimate_depth(self, image: Image.Image, cancel: threading.Event | None = None,
                       settings: DepthSettings = DepthSettings()) -> np.ndarray:
        """The map of depth_estimate() alone."""
        return self.depth_estimate(image, cancel, settings).depth

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
                 preview_interval: float = 0.0, mask: np.ndarray | None = None,
                 depth_origin: DepthOrigin | None = None) -> GenerationResult:
        """Repaint `image` guided by `depth` (estimated as the params' depth settings say when None; `depth_origin`
        says what made a given one, for the record). Raises Cancelled or D2IError.

        With a `mask` (core.masks: float32 (H, W) in 0..1, 1 = repaint) only that region is repainted, still
        guided by the whole depth map; where the mask is 0 the pictures are the input, pixel for pixel.

        Previews come with the first and last steps and then at most once per `preview_interval`
        seconds, so fast GPUs don't spend step time on pictures nobody can see.
        """
        pipe = self._require_pipe()
        params = params.validated()
        image = image.convert("RGB")
        if image.width % 8 or image.height % 8:
            raise D2IError(f"Image size {image.width}x{image.height} is not a multiple of 8.",
                           "Load it through load_image(), which fixes the size.")
        if depth is None:
            depth = self.estimate_depth(image, cancel, params.depth_settings)
            depth_origin = DepthOrigin.estimated(params.depth_settings)
        if not np.isfinite(depth).all() or float(depth.max() - depth.min()) == 0.0:
            raise D2IError("The depth map is constant or holds invalid values.", "Estimate the depth again or load another map.")
        notes: list[str] = list(check_mask(mask, image.size)) if mask is not None else []
        blend = LatentBlend(mask) if mask is not None else None
        _check(cancel)
        self._use_scheduler(params.scheduler)
        extras = self._apply_extras(params)

        first_seed = params.resolved_seed()
        seeds = [(first_seed + i) % (2**32) for i in range(params.num_images)]
        generators = [torch.Generator(device=generator_device(self.device)).manual_seed(s) for s in seeds]
        depth_tensor = torch.from_numpy(np.ascontiguousarray(depth, dtype=np.float32))[None]
        started = time.perf_counter()
        last_preview = -float("inf")

        def step_end(pipeline, i, _t, tensors):
            nonlocal last_preview
            _check(cancel)
            latents = tensors["latents"] if blend is None else blend.apply(pipeline, i, tensors["latents"])
            if on_step is not None:
                total, now = pipeline.num_timesteps, time.perf_counter()
                show = i == 0 or i + 1 == total or now - last_preview >= preview_interval
                if show:
                    last_preview = now
                on_step(StepInfo(i + 1, total, now - started, latents_to_rgb(latents) if show else None))
            return {} if blend is None else {"latents": latents}

        if self.accelerator is not None:
            self.accelerator.begin_run((self._scheduler_name, adapter_signature(pipe.unet), params.tile))
        try:
            with torch.inference_mode(), seamless(pipe, params.tile), blend.watch(pipe) if blend else contextlib.nullcontext():
                with out_of_memory_guard("generating"):
                    prompt_embeds, negative_embeds, prompt_notes = self._prompt_embeddings(extras.prompt,
                                                                                           extras.negative_prompt)
                    notes.extend(prompt_notes)
                    latents = pipe(
                        prompt_embeds=prompt_embeds, negative_prompt_embeds=negative_embeds, image=image,
                        depth_map=depth_tensor, strength=params.strength, num_inference_steps=params.steps,
                        guidance_scale=params.guidance_scale, num_images_per_prompt=params.num_images,
                        generator=generators, output_type="latent", callback_on_step_end=step_end,
                    ).images
                if not all_finite(latents):  # once per run, after the last step: no sync inside the loop
                    raise self._invalid_denoising()
                _check(cancel)
                images = self._decode(latents, notes)
                if mask is not None:
                    images = [composite(image, picture, mask) for picture in images]
        except InvalidValues:
            log.warning("invalid values with %s on %s (%s), settings %s", self.info.source, self.device, self.dtype,
                        self.performance_report.summary().replace("\n", "; ") if self.performance_report else "none")
            raise
        finally:
            if self.accelerator is not None:
                self.accelerator.end_run()
        recorded = replace(params, prompt=extras.recorded_prompt, loras=())  # the LoRAs appear as <lora:…> tags
        fields = (extras.metadata_fields() | (depth_origin.parameters_fields() if depth_origin else {})
                  | ({"Mask": "True"} if mask is not None else {}))
        return GenerationResult(images, seeds, recorded, self.info, time.perf_counter() - started, fields, tuple(notes),
                                depth_origin)

    def _precision_fix(self) -> Fix | None:
        """The precision to try when this one gives invalid values: bf16 keeps fp16's speed where the GPU has it."""
        if self.dtype == torch.float16 and self.device.startswith("cuda") and torch.cuda.is_bf16_supported():
            return Fix("Use bf16 precision", changes={"precision": "bf16"})
        if self.dtype != torch.float32:
            return Fix("Use fp32 precision", changes={"precision": "fp32"})
        return None

    def _invalid_denoising(self) -> InvalidValues:
        message = "The model produced invalid values (NaN or infinity) while generating, so there is no picture."
        fix = self._precision_fix()
        if fix is not None:
            name = fix.changes["precision"]
            return InvalidValues(message, f"{self.info.dtype} precision often causes this with SD2 models: use {name} "
                                          f"(Edit > Settings > Performance, or --precision {name}). If it persists, "
                                          "the model file may be damaged: download it again.", fix=fix)
        effective = self.performance_report.effective if self.performance_report else None
        if effective and (effective.compile != "off" or effective.fuse_qkv or effective.channels_last):
            return InvalidValues(message, "Try the speed options off (Edit > Settings > Performance, or --preset \"low VRAM\"). "
                                          "If it persists, the model file may be damaged: download it again.",
                                 fix=Fix("Turn the speed options off", changes={"compile": "off", "fuse_qkv": False,
                                                                                "channels_last": False}))
        return InvalidValues(message, "The model file may be damaged or not a depth model: download it again or choose another.")

    def adapters(self):
        """The LoRAs and embeddings applied to the loaded pipeline (core.adapters.Adapters)."""
        from ..extras.adapters import Adapters

        if self._adapters is None:
            self._adapters = Adapters(self._require_pipe(), self.info.label)
        return self._adapters

    def _apply_extras(self, params: GenerationParams):
        """Activate the LoRAs and embeddings `params` asks for (all or nothing); returns core.adapters.Extras."""
        from ..extras.adapters import resolve_extras
        from ..extras.library import Library

        self.adapters()
        extras = resolve_extras(params.prompt, params.negative_prompt, params.loras, Library())
        before = self._adapters.state_key
        self._adapters.apply(extras.loras, extras.embeddings)
        if self._adapters.state_key != before:
            self.adapters_changed()
        return extras

    def _decode(self, latents: torch.Tensor, notes: list[str] | None = None) -> list[Image.Image]:
        """Latents to pictures. Half-precision VAEs overflow on some latents: such a decode is retried once in fp32."""
        vae = self.pipe.vae
        with out_of_memory_guard("decoding the picture"):
            decoded = vae.decode(latents.to(vae.dtype) / vae.config.scaling_factor, return_dict=False)[0]
            if not all_finite(decoded) and vae.dtype != torch.float32:
                dtype = vae.dtype
                vae.to(torch.float32)
                try:
                    decoded = vae.decode(latents.float() / vae.config.scaling_factor, return_dict=False)[0]
                finally:
                    vae.to(dtype)
                if notes is not None:
                    notes.append(f"The VAE gave invalid values in {str(dtype).removeprefix('torch.')}; "
                                 "the picture was decoded again in fp32.")
        if not all_finite(decoded):
            raise InvalidValues("The VAE produced invalid values (NaN or infinity) while decoding, so there is no picture.",
                                "The model file may be damaged: download it again or choose another.")
        return self.pipe.image_processor.postprocess(decoded, output_type="pil")


def _check(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled()
