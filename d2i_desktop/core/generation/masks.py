"""Repaint masks: float32 (H, W) in 0..1, 1 = repaint. File I/O, feathering, and the blends that keep the rest.

Outside the mask the picture stays the input: during denoising the latents outside it are replaced,
step by step, by the input's latents noised to the level of the next step, and at the end the decoded
picture is composited over the input with the mask as alpha, so where the mask is 0 every pixel is
the input's. Masks are kept as 8-bit greyscale PNG (white = repaint).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import ImageError
from ..files.images import open_image, upright
from ..files.outputs import save_png

LATENT_SCALE = 8  # pixels per latent cell


def check_mask(mask: np.ndarray, size: tuple[int, int]) -> tuple[str, ...]:
    """Notes on a mask for an image of `size` (width, height); ImageError when it cannot be used."""
    mask = np.asarray(mask)
    if mask.shape != (size[1], size[0]):
        raise ImageError(f"The mask's shape {mask.shape} does not match the {size[0]}x{size[1]} image.",
                         "Use a height x width mask of the image's size (load_mask resizes one).")
    if not np.isfinite(mask).all() or mask.min() < 0 or mask.max() > 1:
        raise ImageError("The mask holds values outside 0..1.", "Use values from 0 (keep) to 1 (repaint).")
    if not mask.any():
        raise ImageError("The mask is empty, so nothing would be repainted.", "Paint the region to repaint in white.")
    if mask.min() == 1:
        return ("The mask covers the whole picture, so all of it is repainted, as without a mask.",)
    return ()


def feather(mask: np.ndarray, radius: int) -> np.ndarray:
    """The mask with a soft edge `radius` px wide on each side (a raised-cosine blur); 0 stays 0 beyond it."""
    mask = np.asarray(mask, dtype=np.float32)
    if radius <= 0:
        return mask.copy()
    kernel = np.hanning(2 * radius + 3)[1:-1]
    kernel /= kernel.sum()
    values = mask.astype(np.float64)
    for axis in (0, 1):
        padded = np.pad(values, [(radius, radius) if a == axis else (0, 0) for a in (0, 1)], mode="edge")
        length = values.shape[axis]
        values = sum(weight * padded.take(range(k, k + length), axis=axis) for k, weight in enumerate(kernel))
    return np.clip(values, 0.0, 1.0).astype(np.float32)


def mask_levels(mask: np.ndarray) -> np.ndarray:
    """The mask as the 8-bit levels kept in files (0 = keep, 255 = repaint)."""
    return np.round(np.clip(mask, 0.0, 1.0) * 255).astype(np.uint8)


def levels_to_mask(levels: np.ndarray) -> np.ndarray:
    return levels.astype(np.float32) / np.float32(255)


def save_mask(mask: np.ndarray, path: str | Path) -> Path:
    """Write the mask as an 8-bit greyscale PNG (white = repaint; atomic; OutputExistsError if taken)."""
    return save_png(Image.fromarray(mask_levels(mask), mode="L"), path)


def load_mask(path: str | Path, size: tuple[int, int]) -> tuple[np.ndarray, tuple[str, ...]]:
    """A mask file (white = repaint; colour is read as grey, transparency as black) at `size` (width, height), with notes."""
    path = Path(path)
    with open_image(path) as image:
        image.load()
        image, notes = upright(image)
        if "A" in image.getbands() or "transparency" in image.info:
            image = Image.alpha_composite(Image.new("RGBA", image.size, "black"), image.convert("RGBA"))
        grey = image.convert("L")
    notes = list(notes)
    if grey.size != tuple(size):
        notes.append(f"Resized the mask from {grey.width}x{grey.height} to {size[0]}x{size[1]} to match the image.")
        grey = grey.resize(tuple(size), Image.Resampling.BILINEAR)
    mask = levels_to_mask(np.asarray(grey))
    if not mask.any():
        raise ImageError(f"{path.name} is an empty mask (all black), so nothing would be repainted.",
                         "Paint the region to repaint in white.")
    return mask, tuple(notes)


def composite(original: Image.Image, generated: Image.Image, mask: np.ndarray) -> Image.Image:
    """`generated` over `original` with `mask` as alpha: where the mask is 0 every pixel is the original's."""
    alpha = mask[:, :, None].astype(np.float32)
    keep = np.asarray(original.convert("RGB"), dtype=np.float32)
    new = np.asarray(generated.convert("RGB"), dtype=np.float32)
    return Image.fromarray(np.round(keep * (1 - alpha) + new * alpha).clip(0, 255).astype(np.uint8))


class LatentBlend:
    """Keeps the latents outside a mask on the input's during denoising (as diffusers' inpaint pipelines do).

    `watch(pipe)` records the clean input latents and the seeded noise the pipeline itself mixes when it
    starts (its scheduler's first add_noise), so the blend uses exactly the generator's noise; `apply`
    runs after each scheduler step and puts back the input noised to the level of the next step.
    """

    def __init__(self, mask: np.ndarray):
        cells = torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))[None, None]
        # Every latent cell the mask touches is repainted whole; the pixel composite makes the soft edge.
        self.mask = (torch.nn.functional.max_pool2d(cells, LATENT_SCALE) > 0).float()
        self._start: tuple[torch.Tensor, torch.Tensor] | None = None
        self._add_noise = None

    @contextlib.contextmanager
    def watch(self, pipe):
        scheduler = pipe.scheduler
        add_noise = self._add_noise = scheduler.add_noise

        def recording(samples, noise, timesteps):
            if self._start is None:
                self._start = (samples, noise)
            return add_noise(samples, noise, timesteps)

        scheduler.add_noise = recording
        try:
            yield self
        finally:
            del scheduler.add_noise

    def apply(self, pipeline, step: int, latents: torch.Tensor) -> torch.Tensor:
        """The latents after step `step` (0-based) with the area outside the mask taken from the input."""
        samples, noise = self._start
        remaining = pipeline.num_timesteps - step - 1
        if remaining > 0:  # the next step denoises from the next timestep's noise level
            timesteps = pipeline.scheduler.timesteps
            upcoming = timesteps[len(timesteps) - remaining].repeat(samples.shape[0])
            samples = self._add_noise(samples, noise, upcoming)
        mask = self.mask.to(device=latents.device, dtype=latents.dtype)
        return samples.to(latents.dtype) * (1 - mask) + latents * mask
