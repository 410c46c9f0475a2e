"""Fine detail for large photos: the whole image for the structure, overlapping tiles for the detail.

A depth model sees a photo at its input size (384 to 1536 pixels a side), so the depth of a large photo comes
out soft. As the "boost" of BoostingMonocularDepth (Miangoleh et al., 2021) does, the photo is estimated twice
and the two are merged:

1. The whole image at the model's input size: its global structure is right, its edges are soft.
2. A grid of overlapping tiles (at most 3 x 3), each about the model's input size, so that each part of the
   photo is seen at up to 3x the resolution: sharp edges, but each tile only knows its own part of the scene.
3. Relative depth is only known up to scale and shift, so each tile is fitted to the whole-image estimate on
   the same pixels by least squares on those two; the fitted tiles are blended with weights that fall off
   toward their edges (feathered), so no seams show.
4. A frequency split joins the two: the result is the whole-image estimate plus the blended tiles' detail,
   the tiles minus their own Gaussian blur at the size of one pixel of the whole-image estimate. Coarser
   differences, where a tile alone misjudges the scene, are dropped: the structure stays the whole image's.

Unlike BoostingMonocularDepth no learned merge network is needed, so it works the same for every estimator.
An image no larger than the model's input gets the plain estimate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from PIL import Image
from scipy import ndimage

MAX_TILES_PER_SIDE = 3
OVERLAP = 0.25  # of a tile's side, shared with its neighbour

Box = tuple[int, int, int, int]  # top, left, bottom, right (exclusive), in pixels


@dataclass(frozen=True)
class TileGrid:
    rows: int
    columns: int
    boxes: tuple[Box, ...]

    @property
    def scale(self) -> int:
        """How many times finer than the whole-image estimate the tiles see the photo, at most."""
        return max(self.rows, self.columns)


def _spans(length: int, count: int) -> list[tuple[int, int]]:
    """`count` equal spans covering 0..length, neighbours overlapping by OVERLAP of a span."""
    if count == 1:
        return [(0, length)]
    span = min(length, math.ceil(length / (count - (count - 1) * OVERLAP)))
    starts = np.round(np.linspace(0, length - span, count)).astype(int)
    return [(int(start), int(start) + span) for start in starts]


def tile_grid(height: int, width: int, input_size: tuple[int, int]) -> TileGrid | None:
    """Tiles about the model's input size (height, width); None when the image is no larger than that input."""
    input_height, input_width = input_size
    if height <= input_height and width <= input_width:
        return None
    rows = min(MAX_TILES_PER_SIDE, math.ceil(height / input_height))
    columns = min(MAX_TILES_PER_SIDE, math.ceil(width / input_width))
    boxes = tuple((top, left, bottom, right) for top, bottom in _spans(height, rows) for left, right in _spans(width, columns))
    return TileGrid(rows, columns, boxes)


def align(tile: np.ndarray, target: np.ndarray) -> np.ndarray:
    """`tile` brought to `target` by the least-squares scale (never negative: that would turn depth around) and shift."""
    tile64, target64 = tile.astype(np.float64), target.astype(np.float64)
    variance = tile64.var()
    covariance = ((tile64 - tile64.mean()) * (target64 - target64.mean())).mean()
    scale = max(covariance / variance, 0.0) if variance > 1e-12 else 0.0
    return scale * tile64 + (target64.mean() - scale * tile64.mean())


def feather(height: int, width: int) -> np.ndarray:
    """Blending weights for a tile: 1 inside, falling linearly (never to 0) across the overlap at its edges."""

    def ramp(length: int) -> np.ndarray:
        overlap = max(1, round(OVERLAP * length))
        index = np.arange(length)
        return np.minimum(np.minimum(index + 1, length - index), overlap) / overlap

    return np.outer(ramp(height), ramp(width))


def merge(whole: np.ndarray, tiles: Sequence[tuple[Box, np.ndarray]], detail_sigma: float) -> np.ndarray:
    """The whole-image estimate plus the detail (finer than `detail_sigma` pixels) of the tiles fitted to it.

    The tiles must cover the whole image.
    """
    weighted = np.zeros(whole.shape, dtype=np.float32)  # float32: a large photo's maps are big enough as they are
    total = np.zeros(whole.shape, dtype=np.float32)
    for (top, left, bottom, right), tile in tiles:
        weight = feather(bottom - top, right - left)
        weighted[top:bottom, left:right] += weight * align(tile, whole[top:bottom, left:right])
        total[top:bottom, left:right] += weight
    blended = weighted / total
    detail = blended - ndimage.gaussian_filter(blended, detail_sigma, mode="reflect")
    return (whole + detail).astype(np.float32)


def estimate(predict: Callable[[Image.Image], np.ndarray], image: Image.Image,
             input_size: tuple[int, int]) -> tuple[np.ndarray, str | None]:
    """`predict` (an image in, its depth at its size out) on the whole image and, when it is larger than the
    model's input, on tiles merged in; returns the depth and a note saying what was done (None: nothing more)."""
    whole = predict(image)
    grid = tile_grid(image.height, image.width, input_size)
    if grid is None:
        return whole, None
    tiles = [((top, left, bottom, right), predict(image.crop((left, top, right, bottom))))
             for top, left, bottom, right in grid.boxes]
    one_pixel = max(image.height / input_size[0], image.width / input_size[1])  # of the whole-image estimate
    return merge(whole, tiles, one_pixel), f"fine detail: {len(grid.boxes)} tiles at {grid.scale}x"
