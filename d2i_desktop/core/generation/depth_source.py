"""The engine's depth estimates: the chosen estimator (the pipeline's own DPT-hybrid, or one other kept loaded)
run on an image, and the last few estimates kept."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import replace

from PIL import Image

from ..depth.estimators import (DEFAULT_ESTIMATOR, DepthEstimate, DepthEstimator, DepthSettings, estimator_folder,
                                estimator_spec, load_estimator, pipeline_estimator)
from ..errors import ModelError
from .guards import free_memory

CACHED_ESTIMATES = 4  # a few, so switching between estimators for one image costs nothing


def image_key(image: Image.Image) -> str:
    return hashlib.blake2b(image.tobytes(), digest_size=16, person=f"{image.size}".encode()[:16]).hexdigest()


class DepthSource:
    """The depth estimates of one engine: the pipeline's own DPT-hybrid or one other estimator, loaded on first use
    and dropped when another is used; the last few estimates are kept by image and settings. One thread uses it."""

    def __init__(self):
        self._other: tuple[tuple, DepthEstimator] | None = None  # ((name, device, dtype), estimator)
        self._cache: OrderedDict[tuple[str, DepthSettings], DepthEstimate] = OrderedDict()

    @property
    def resident(self) -> DepthEstimator | None:
        """The estimator loaded besides the pipeline's own, if any."""
        return self._other[1] if self._other else None

    def clear(self) -> None:
        self._other = None
        self._cache.clear()

    def estimate(self, image: Image.Image, settings: DepthSettings, pipe, device: str, dtype,
                 cancel: threading.Event | None = None) -> DepthEstimate:
        """The estimate of `image` (float32 at its size, bright = near), made with the pipeline's own estimator when
        `settings` name DPT-hybrid and `pipe` (None without a model) has one. Raises ModelError when the estimator
        is not downloaded, InvalidValues for NaN or infinite depth, Cancelled."""
        settings = settings.validated()
        key = (image_key(image), settings)
        estimate = self._cache.get(key)
        if estimate is None:
            estimator = self._estimator(settings.estimator, pipe, device, dtype)
            estimate = estimator.estimate(image, fine_detail=settings.fine_detail, cancel=cancel)
            self._cache[key] = estimate
            while len(self._cache) > CACHED_ESTIMATES:
                self._cache.popitem(last=False)
        self._cache.move_to_end(key)
        return replace(estimate, depth=estimate.depth.copy())  # the caller's copy must not alter the cache

    def _estimator(self, name: str, pipe, device: str, dtype) -> DepthEstimator:
        own = pipeline_estimator(pipe) if name == DEFAULT_ESTIMATOR and pipe is not None else None
        wanted = (name, device, dtype)
        if self._other is not None and (own is not None or self._other[0] != wanted):
            self._other = None  # one other estimator at a time: the previous one goes before another loads
            free_memory()
        if own is not None:
            return own
        if self._other is None:
            if pipe is not None and name == DEFAULT_ESTIMATOR and estimator_folder(name) is None:
                spec = estimator_spec(name)
                raise ModelError(f"This model has no depth estimator of its own, and {spec.label}, which stands in "
                                 "for it, is not downloaded.",
                                 f"Download {spec.label} ({spec.repo_id}) or another depth estimator in Model > Models… "
                                 "and choose it in the Depth panel, or load a depth map for the image.")
            self._other = (wanted, load_estimator(name, device, dtype))
        return self._other[1]
