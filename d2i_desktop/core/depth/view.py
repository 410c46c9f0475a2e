"""Ways to look at a depth map: what the model receives, and a parallax view of the image."""

from __future__ import annotations

import numpy as np
import torch

LATENT_SCALE = 8  # SD2's VAE shrinks each side by 8


def model_view(depth: np.ndarray, image_size: tuple[int, int] | None = None,
               latent_scale: int = LATENT_SCALE) -> np.ndarray:
    """The depth exactly as StableDiffusionDepth2ImgPipeline.prepare_depth_map feeds it to the UNet.

    Bicubic resize to the latent grid (image size // latent_scale), then min-max scaled to [-1, 1]:
    only the relative shape of the map survives, not its absolute values. `image_size` is
    (width, height), by default the map's own. A constant map gives zeros (the pipeline would divide by zero).
    """
    height, width = depth.shape if image_size is None else image_size[::-1]
    values = torch.from_numpy(np.ascontiguousarray(depth, dtype=np.float32))[None, None]
    with torch.inference_mode():
        resized = torch.nn.functional.interpolate(values, size=(height // latent_scale, width // latent_scale),
                                                  mode="bicubic", align_corners=False)
        low, high = resized.amin(), resized.amax()
        if high == low:
            return np.zeros(resized.shape[-2:], dtype=np.float32)
        return (2.0 * (resized - low) / (high - low) - 1.0)[0, 0].numpy()


def parallax(image: np.ndarray, depth01: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """The image seen from a shifted eye: near pixels move by (dx, dy) pixels, mid depths stay, far ones move back.

    A backward warp: each output pixel looks up its source through the depth there, refined once
    with the depth at that source, so edges stay clean enough for a live preview. `depth01` is the
    depth normalised to [0, 1] (1 = near) at the image's size.
    """
    height, width = depth01.shape
    rows, cols = np.indices((height, width), dtype=np.float32)
    y, x = rows.astype(np.intp), cols.astype(np.intp)
    for _ in range(2):
        shift = depth01[y, x] - 0.5
        x = np.clip(np.rint(cols - shift * dx), 0, width - 1).astype(np.intp)
        y = np.clip(np.rint(rows - shift * dy), 0, height - 1).astype(np.intp)
    return image[y, x]
