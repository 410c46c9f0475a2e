"""Guards around the heavy steps: out-of-memory errors become clear messages, invalid values never become pictures."""

from __future__ import annotations

import logging
import traceback

import torch

from ..errors import D2IError, Fix

log = logging.getLogger(__name__)

OUT_OF_MEMORY_HINTS = {
    "loading the model": "Close other programs that use the memory, or choose the low VRAM preset or fp16 precision "
                         "(Edit > Settings > Performance), then load the model again.",
    "estimating depth": "Use a smaller image, or load a depth map for it instead.",
    "generating": "Use a smaller image or fewer images per prompt, or choose the low VRAM preset "
                  "(Edit > Settings > Performance).",
    "decoding the picture": "Turn on VAE tiling (the low VRAM preset does), or use a smaller image.",
}
LOW_VRAM_FIX = Fix("Switch to the low VRAM preset", preset="low VRAM")


class OutOfMemory(D2IError):
    """The GPU or the computer ran out of memory during a step; what could be freed was freed."""


class InvalidValues(D2IError):
    """A step produced NaN or infinite values, so there is no picture to show or save."""


class out_of_memory_guard:
    """Turn CUDA out-of-memory errors and MemoryError inside the block into OutOfMemory, after freeing memory.

    The failed step's frames (and the tensors they hold) are released by dropping the original
    traceback; gc.collect() is left out because it may run on the worker thread, where a collection
    can destroy Qt objects the GUI thread owns.
    """

    def __init__(self, stage: str):
        self.stage = stage

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if not isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
            return False
        del tb  # this frame ends up in the new error's traceback: it must not hold the old one
        # Logged as text: a log record holding the traceback would keep the failed step's tensors alive.
        log.warning("out of memory while %s:\n%s", self.stage, "".join(traceback.format_exception(exc)))
        exc.__traceback__ = None
        gpu = isinstance(exc, torch.OutOfMemoryError)
        free_memory()
        raise OutOfMemory(f"The {'GPU' if gpu else 'computer'} ran out of memory while {self.stage}.",
                          OUT_OF_MEMORY_HINTS[self.stage],
                          fix=LOW_VRAM_FIX if gpu and self.stage != "estimating depth" else None) from None


def free_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def all_finite(tensor: torch.Tensor) -> bool:
    """One device-to-host sync for the whole tensor."""
    return bool(torch.isfinite(tensor).all())
