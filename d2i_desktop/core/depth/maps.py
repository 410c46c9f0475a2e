"""Depth arrays (float32, height x width): normalise, colour-map, 16-bit file I/O.

Convention: high value = near (MiDaS inverse depth), shown bright.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import ImageError
from ..files.images import open_image, upright
from ..files.outputs import OutputError, OutputExistsError, save_new_file, save_png

COLORMAPS = ("grey", "viridis", "magma", "turbo")
_LUMA = np.array([0.2126, 0.7152, 0.0722])  # Rec. 709, the sRGB primaries
_SINGLE_CHANNEL_MODES = {"L", "I;16", "I;16L", "I;16B", "I;16N", "I", "F"}

# Published degree-6 polynomial fits of matplotlib's viridis and magma (Matt Zucker,
# https://www.shadertoy.com/view/WlfXRN): rows are c0..c6, columns R, G, B.
_VIRIDIS = np.array([
    [0.2777273272234177, 0.005407344544966578, 0.3340998053353061],
    [0.1050930431085774, 1.404613529898575, 1.384590162594685],
    [-0.3308618287255563, 0.214847559468213, 0.09509516302823659],
    [-4.634230498983486, -5.799100973351585, -19.33244095627987],
    [6.228269936347081, 14.17993336680509, 56.69055260068105],
    [4.776384997670288, -13.74514537774601, -65.35303263337234],
    [-5.435455855934631, 4.645852612178535, 26.3124352495832],
])
_MAGMA = np.array([
    [-0.002136485053939582, -0.000749655052795221, -0.005386127855323933],
    [0.2516605407371642, 0.6775232436837668, 2.494026599312351],
    [8.353717279216625, -3.577719514958484, 0.3144679030132573],
    [-27.66873308576866, 14.26473078096533, -13.64921318813922],
    [52.17613981234068, -27.94360607168351, 12.94416944238394],
    [-50.76852536473588, 29.04658282127291, 4.23415299384598],
    [18.65570506591883, -11.48977351997711, -5.601961508734096],
])
# Turbo (Google, Anton Mikhailov; Apache-2.0): every 8th entry of the published 256-entry sRGB table,
# plus the last. Google's polynomial fit is off by up to 30 levels at the ends; linear
# interpolation between these entries stays within about 1 level of the full table.
_TURBO_EVERY_8TH = np.array([
    [0.18995, 0.07176, 0.23217], [0.22500, 0.16354, 0.45096], [0.25107, 0.25237, 0.63374],
    [0.26816, 0.33825, 0.78050], [0.27628, 0.42118, 0.89123], [0.27543, 0.50115, 0.96594],
    [0.25862, 0.57958, 0.99876], [0.21382, 0.65886, 0.97959], [0.15844, 0.73551, 0.92305],
    [0.11167, 0.80569, 0.84525], [0.09267, 0.86554, 0.76230], [0.12014, 0.91193, 0.68660],
    [0.19659, 0.94901, 0.59466], [0.30513, 0.97697, 0.48987], [0.42778, 0.99419, 0.38575],
    [0.54658, 0.99907, 0.29581], [0.64362, 0.98999, 0.23356], [0.72596, 0.96470, 0.20640],
    [0.80473, 0.92452, 0.20459], [0.87530, 0.87267, 0.21555], [0.93301, 0.81236, 0.22667],
    [0.97323, 0.74682, 0.22536], [0.99314, 0.67408, 0.20348], [0.99593, 0.58703, 0.16899],
    [0.98360, 0.49291, 0.12849], [0.95801, 0.39958, 0.08831], [0.92105, 0.31489, 0.05475],
    [0.87422, 0.24526, 0.03297], [0.81608, 0.18462, 0.01809], [0.74617, 0.13098, 0.00851],
    [0.66449, 0.08436, 0.00424], [0.57103, 0.04474, 0.00529], [0.47960, 0.01583, 0.01055],
])


def _from_polynomial(coefficients: np.ndarray) -> np.ndarray:
    """A 256 x 3 uint8 table from polynomial coefficients (lowest power first)."""
    x = np.linspace(0.0, 1.0, 256)[:, None]
    rgb = sum(row * x**power for power, row in enumerate(coefficients))
    return np.round(np.clip(rgb, 0.0, 1.0) * 255).astype(np.uint8)


def _from_entries(entries: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """A 256 x 3 uint8 table interpolated linearly between known table entries."""
    rgb = np.stack([np.interp(np.arange(256), positions, entries[:, channel]) for channel in range(3)], axis=1)
    return np.round(rgb * 255).astype(np.uint8)


_TABLES = {
    "grey": np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1),
    "viridis": _from_polynomial(_VIRIDIS),
    "magma": _from_polynomial(_MAGMA),
    "turbo": _from_entries(_TURBO_EVERY_8TH, np.r_[np.arange(0, 256, 8), 255]),
}


def normalize(depth: np.ndarray) -> np.ndarray:
    """Min-max scale to float32 [0, 1]; a constant map gives zeros."""
    values = _check_depth_array(depth)
    low, high = values.min(), values.max()
    if high == low:
        return np.zeros(values.shape, dtype=np.float32)
    return ((values - low) / (high - low)).astype(np.float32)


def colorize(depth: np.ndarray, cmap: str = "grey") -> np.ndarray:
    """An H x W x 3 uint8 picture of a [0, 1] depth map (values outside are clipped; near is bright)."""
    if cmap not in _TABLES:
        raise ImageError(f"Unknown colour map '{cmap}'.", "Choose one of: " + ", ".join(COLORMAPS) + ".")
    values = _check_depth_array(depth)
    indices = np.round(np.clip(values, 0.0, 1.0) * 255).astype(np.uint8)
    return _TABLES[cmap][indices]


def colorize_range(depth: np.ndarray, low: float, high: float, cmap: str = "grey") -> np.ndarray:
    """colorize() of the map scaled from [low, high] to [0, 1], in float32 and without checks: fast enough
    to recolour a map while it is painted. Values outside the range are clipped."""
    if cmap not in _TABLES:
        raise ImageError(f"Unknown colour map '{cmap}'.", "Choose one of: " + ", ".join(COLORMAPS) + ".")
    scale = np.float32(255.0 / (high - low) if high > low else 0.0)
    indices = np.clip((depth - np.float32(low)) * scale + np.float32(0.5), 0, 255).astype(np.uint8)
    return _TABLES[cmap][indices]


def _check_depth_array(depth: np.ndarray, label: str = "The depth map") -> np.ndarray:
    """The map as float64 height x width, or ImageError."""
    values = np.asarray(depth)
    if values.ndim == 3 and values.shape[2] == 1:
        values = values[:, :, 0]
    if values.ndim != 2 or values.size == 0:
        raise ImageError(f"{label} is not a height x width map (its shape is {values.shape}).",
                         "Use a single-channel depth map.")
    if not (np.issubdtype(values.dtype, np.number) or values.dtype == bool) or np.iscomplexobj(values):
        raise ImageError(f"{label} holds {values.dtype} values, not real numbers.", "Use a numeric depth map.")
    values = values.astype(np.float64)
    if not np.isfinite(values).all():
        raise ImageError(f"{label} contains NaN or infinite values.",
                         "Re-create or re-export it so every pixel has a finite value.")
    return values


def save_depth_png16(depth: np.ndarray, path: str | Path) -> Path:
    """Write the normalised map as a 16-bit greyscale PNG (atomic; raises OutputExistsError if taken)."""
    levels = np.round(normalize(depth).astype(np.float64) * 65535).astype(np.uint16)
    return save_png(Image.fromarray(levels), path)


def load_depth(path: str | Path, size: tuple[int, int],
               bright_is_near: bool | None = True) -> tuple[np.ndarray, tuple[str, ...]]:
    """Read a depth map file, normalised to float32 [0, 1] (1 = near) at `size` (width, height), with notes.

    Reads 8/16-bit PNG, 16-bit and float TIFF, anything else Pillow opens (colour as luminance)
    and `.npy` arrays, keeping their full precision. `bright_is_near`: True for inverse depth
    (MiDaS, DPT), False for distances (a renderer's Z pass), None to guess from the values and
    say in the notes which was assumed.
    """
    path = Path(path)
    width, height = size
    if width <= 0 or height <= 0:
        raise ImageError(f"Cannot fit a depth map to {width}x{height} px.", "Give a size with both sides above 0.")
    if path.suffix.lower() == ".npy":
        values, notes = _read_npy(path), []
    else:
        values, notes = _read_depth_image(path)
    if values.ndim == 3 and values.shape[2] in (3, 4):
        values, colour_notes = _luminance(values)
        notes += colour_notes
    stored_as_float = np.issubdtype(values.dtype, np.floating)
    values = _check_depth_array(values, label=path.name)
    if bright_is_near is None:
        bright_is_near = not (stored_as_float and values.min() >= 0 and values.max() > 1)
        notes.append("Assumed bright = near (inverse depth, as MiDaS and DPT give)." if bright_is_near else
                     f"Assumed bright = far: float values from {values.min():.3g} to {values.max():.3g} look like "
                     "distances (a renderer's Z pass).")
    if not bright_is_near:
        values, inverse_note = _near_is_bright(values)
        notes.append(inverse_note)
    if values.max() == values.min():
        raise ImageError(f"{path.name} carries no depth shape: every pixel has the same value.",
                         "Use a depth map with near and far areas, or estimate one from the image.")
    depth = normalize(values)
    source_height, source_width = depth.shape
    if (source_width, source_height) != (width, height):
        resized = Image.fromarray(depth).resize((width, height), Image.Resampling.BILINEAR)
        depth = np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)
        notes.append(f"Resized the depth map from {source_width}x{source_height} to {width}x{height} "
                     "to match the image.")
        source_aspect, target_aspect = source_width / source_height, width / height
        if abs(source_aspect / target_aspect - 1) > 0.01:
            notes.append(f"The depth map's aspect ratio ({source_aspect:.2f}) differs from the image's "
                         f"({target_aspect:.2f}), so it is stretched.")
    return depth, tuple(notes)


def _near_is_bright(distances: np.ndarray) -> tuple[np.ndarray, str]:
    """Distances turned into inverse depth, the model's convention; 1/z where every distance is positive."""
    if distances.min() > 0:
        return 1.0 / distances, "Converted distances to inverse depth (1/distance), so near is bright."
    return distances.max() + distances.min() - distances, "Inverted the map, so near is bright."


def save_depth_npy(depth: np.ndarray, path: str | Path) -> Path:
    """Write the normalised map as a float32 `.npy` (no precision lost; atomic; raises OutputExistsError if taken)."""
    path = Path(path)
    values = normalize(depth)
    if os.path.lexists(path):
        raise OutputExistsError(path)
    if not path.parent.is_dir():
        raise OutputError(f"Could not save {path.name}: the folder {path.parent} does not exist.",
                          "Create the folder first, or choose one that exists.")
    return save_new_file(lambda file: np.save(file, values, allow_pickle=False), [path])


def _read_npy(path: Path) -> np.ndarray:
    if not path.is_file():
        raise ImageError(f"No file at {path}.", "Check the path; the file may have been moved or deleted.")
    if path.stat().st_size == 0:
        raise ImageError(f"{path.name} is empty (0 bytes).", "Save the depth map again with numpy.save.")
    try:
        # A memory map reads only the header, so a huge array is refused before it is allocated.
        mapped = np.load(path, mmap_mode="r", allow_pickle=False)
        if not isinstance(mapped, np.ndarray):
            raise ValueError("not a single array")
        pixels = mapped.shape[0] * mapped.shape[1] if mapped.ndim >= 2 else 0
        if Image.MAX_IMAGE_PIXELS and pixels > Image.MAX_IMAGE_PIXELS:
            raise ImageError(f"{path.name} holds {pixels:,} pixels, too many to open safely.",
                             "Save a smaller depth map.")
        values = np.array(mapped)
        del mapped
    except ImageError:
        raise
    except (OSError, ValueError, EOFError) as error:
        raise ImageError(f"{path.name} is not a readable NumPy array file (it may be damaged or truncated).",
                         "Save the depth map again with numpy.save.") from error
    return values


def _read_depth_image(path: Path) -> tuple[np.ndarray, list[str]]:
    """Pixels at their stored precision: 2-D for single-channel images, H x W x 3 for colour."""
    with open_image(path) as image:
        image.load()
        image, notes = upright(image)
        if image.mode in _SINGLE_CHANNEL_MODES:
            return np.array(image), notes
        if image.mode in ("1", "LA", "La"):
            return np.array(image.convert("L")), notes
        return np.array(image.convert("RGB")), notes


def _luminance(values: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Rec. 709 luminance of RGB(A) pixels, computed in float so no precision is lost."""
    rgb = values[:, :, :3].astype(np.float64)
    if (rgb[:, :, 0] == rgb[:, :, 1]).all() and (rgb[:, :, 1] == rgb[:, :, 2]).all():
        return rgb[:, :, 0], []  # grey stored as RGB: nothing to convert
    return rgb @ _LUMA, ["Converted a colour depth map to greyscale (luminance)."]
