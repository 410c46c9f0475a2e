"""Editing a full-resolution float32 depth map: brushes and whole-map tools, each edit undoable.

Edits work in place on the caller's array and return a `Patch` (the changed box with its pixels
before and after), so undo and redo only copy what changed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage

from ..errors import ParamError

BRUSHES = ("raise", "lower", "flatten", "smooth")
RAISE_PER_DAB = 0.08  # of the map's depth range, at full strength and full weight
SPACING = 0.2  # distance between dabs, as a fraction of the brush size

Box = tuple[int, int, int, int]  # top, left, bottom, right (exclusive), in pixels


@dataclass(frozen=True)
class Brush:
    kind: str = "raise"
    size: float = 64.0  # diameter in pixels of the depth map
    strength: float = 0.5  # 0..1
    hardness: float = 0.5  # 0..1: the share of the radius painted at full weight
    target: float = 0.0  # the depth `flatten` pulls towards, in the map's own units

    def validated(self) -> "Brush":
        if self.kind not in BRUSHES:
            raise ParamError(f"Unknown brush '{self.kind}'.", "Choose one of: " + ", ".join(BRUSHES) + ".")
        if not 1 <= self.size <= 4096:
            raise ParamError(f"Brush size {self.size:g} px is out of range.", "Use a size from 1 to 4096 px.")
        for name in ("strength", "hardness"):
            if not 0 <= getattr(self, name) <= 1:
                raise ParamError(f"Brush {name} {getattr(self, name):g} is out of range.", f"Use a {name} from 0 to 1.")
        if not math.isfinite(self.target):
            raise ParamError("The flatten depth is not a finite number.", "Pick a depth on the map first.")
        return self


@dataclass
class Patch:
    """One undoable edit: the box it changed and that box's pixels before and after."""
    box: Box
    before: np.ndarray
    after: np.ndarray

    def undo(self, depth: np.ndarray) -> None:
        depth[_slices(self.box)] = self.before

    def redo(self, depth: np.ndarray) -> None:
        depth[_slices(self.box)] = self.after


def _slices(box: Box) -> tuple[slice, slice]:
    top, left, bottom, right = box
    return slice(top, bottom), slice(left, right)


def _union(a: Box | None, b: Box | None) -> Box | None:
    if a is None or b is None:
        return a or b
    return min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])


@lru_cache(maxsize=32)
def falloff(radius: int, hardness: float) -> np.ndarray:
    """A (2r+1)^2 float32 weight kernel: 1 inside hardness*r, a smoothstep down to 0 at r."""
    offsets = np.arange(-radius, radius + 1, dtype=np.float32)
    distance = np.hypot(offsets[:, None], offsets[None, :]) / max(radius, 0.5)
    edge = min(hardness, 0.999)
    t = np.clip((1.0 - distance) / (1.0 - edge), 0.0, 1.0)
    weights = t * t * (3.0 - 2.0 * t)
    weights.flags.writeable = False  # shared by every dab of this shape
    return weights


def _check_map(depth: np.ndarray) -> None:
    if not isinstance(depth, np.ndarray) or depth.dtype != np.float32 or depth.ndim != 2:
        raise ParamError("Depth edits need a float32 height x width map.", "Convert the map with np.float32 first.")


def value_range(depth: np.ndarray) -> float:
    """The map's depth range (max - min), or 1 for a constant map so brushes still move it."""
    span = float(depth.max() - depth.min())
    return span if span > 0 else 1.0


class Stroke:
    """A brush stroke: dabs along the pointer's path, spaced evenly; `finish()` gives its Patch."""

    def __init__(self, depth: np.ndarray, brush: Brush, spacing: float = SPACING):
        _check_map(depth)
        self.depth = depth
        self.brush = brush.validated()
        self.radius = max(int(round(brush.size / 2)), 1)
        self.kernel = falloff(self.radius, round(brush.hardness, 3))
        self.step = max(brush.size * spacing, 1.0)
        self.amount = brush.strength * RAISE_PER_DAB * value_range(depth)
        self.blur_size = 2 * max(self.radius // 4, 1) + 1
        self._before = depth.copy()
        self._box: Box | None = None
        self._last: tuple[float, float] | None = None
        self._travelled = 0.0  # distance since the last dab

    def move_to(self, x: float, y: float) -> Box | None:
        """Dab at the first point, then every `step` pixels along the path; the box changed, if any."""
        if self._last is None:
            self._last = (x, y)
            return self.dab(x, y)
        last_x, last_y = self._last
        length = math.hypot(x - last_x, y - last_y)
        changed = None
        distance = self.step - self._travelled
        while distance <= length:
            t = distance / length
            changed = _union(changed, self.dab(last_x + (x - last_x) * t, last_y + (y - last_y) * t))
            distance += self.step
        self._travelled = length - (distance - self.step)
        self._last = (x, y)
        return changed

    def dab(self, x: float, y: float) -> Box | None:
        """One dab of the brush centred at (x, y); the box it changed, or None if off the map."""
        height, width = self.depth.shape
        cx, cy, r = int(round(x)), int(round(y)), self.radius
        top, left, bottom, right = max(cy - r, 0), max(cx - r, 0), min(cy + r + 1, height), min(cx + r + 1, width)
        if top >= bottom or left >= right:
            return None
        weights = self.kernel[top - (cy - r):bottom - (cy - r), left - (cx - r):right - (cx - r)]
        region = self.depth[top:bottom, left:right]
        kind = self.brush.kind
        if kind == "raise":
            region += weights * self.amount
        elif kind == "lower":
            region -= weights * self.amount
        elif kind == "flatten":
            region += (self.brush.target - region) * (weights * self.brush.strength)
        else:
            region += (self._blurred((top, left, bottom, right)) - region) * (weights * self.brush.strength)
        box = (top, left, bottom, right)
        self._box = _union(self._box, box)
        return box

    def _blurred(self, box: Box) -> np.ndarray:
        """A box blur of the dab's area, reading a margin around it so its edges blur too."""
        height, width = self.depth.shape
        pad = self.blur_size // 2
        top, left, bottom, right = box
        outer = (max(top - pad, 0), max(left - pad, 0), min(bottom + pad, height), min(right + pad, width))
        blurred = ndimage.uniform_filter(self.depth[_slices(outer)], self.blur_size, mode="nearest")
        return blurred[top - outer[0]:bottom - outer[0], left - outer[1]:right - outer[1]]

    def finish(self) -> Patch | None:
        """The stroke's Patch (None if it never touched the map)."""
        if self._box is None:
            return None
        where = _slices(self._box)
        patch = Patch(self._box, self._before[where].copy(), self.depth[where].copy())
        self._before = None
        return patch


def paint_stroke(depth: np.ndarray, brush: Brush, points) -> Patch | None:
    """Paint a whole stroke through `points` [(x, y), ...]; its Patch."""
    stroke = Stroke(depth, brush)
    for x, y in points:
        stroke.move_to(x, y)
    return stroke.finish()


# -- whole-map tools: each returns a new array; `replace` applies it undoably ---------------

def invert(depth: np.ndarray) -> np.ndarray:
    """Near becomes far within the same range."""
    return (depth.max() + depth.min() - depth).astype(np.float32)


def levels(depth: np.ndarray, near: float = 1.0, far: float = 0.0, gamma: float = 1.0) -> np.ndarray:
    """Remap like an image editor's levels, within the map's own range.

    `near` and `far` are positions in the current range (0 = farthest, 1 = nearest): depths at or
    beyond `near` become the nearest, at or beyond `far` the farthest; `gamma` > 1 brings mid depths nearer.
    """
    if not (0 <= far <= 1 and 0 <= near <= 1) or near == far:
        raise ParamError(f"Levels need two different points in 0..1 (near {near:g}, far {far:g}).",
                         "Move the near and far levels apart.")
    if not 0.05 <= gamma <= 20:
        raise ParamError(f"Gamma {gamma:g} is out of range.", "Use a gamma from 0.05 to 20.")
    low, high = float(depth.min()), float(depth.max())
    span = (high - low) or 1.0
    position = np.clip(((depth - low) / span - far) / (near - far), 0.0, 1.0)
    return (low + span * position ** (1.0 / gamma)).astype(np.float32)


def blur(depth: np.ndarray, radius: float) -> np.ndarray:
    """A Gaussian blur with sigma = radius / 2 pixels."""
    if not 0 < radius <= 512:
        raise ParamError(f"Blur radius {radius:g} px is out of range.", "Use a radius from 0 to 512 px.")
    return ndimage.gaussian_filter(depth.astype(np.float32), radius / 2, mode="nearest")


def replace(depth: np.ndarray, new: np.ndarray) -> Patch:
    """Write `new` over the whole of `depth` in place; the Patch that undoes it."""
    _check_map(depth)
    if new.shape != depth.shape:
        raise ParamError(f"A {new.shape[1]}x{new.shape[0]} map cannot replace a {depth.shape[1]}x{depth.shape[0]} one.",
                         "Estimate or load the depth for this image again.")
    patch = Patch((0, 0, *depth.shape), depth.copy(), np.asarray(new, dtype=np.float32).copy())
    patch.redo(depth)
    return patch


def pick(depth: np.ndarray, x: float, y: float) -> float:
    """The depth under (x, y), clamped to the map."""
    height, width = depth.shape
    return float(depth[min(max(int(y), 0), height - 1), min(max(int(x), 0), width - 1)])

