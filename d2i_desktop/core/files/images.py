"""Safe image loading: EXIF orientation, colour modes, size policy, damaged files and bombs."""

from __future__ import annotations

import re
import struct
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

from ..errors import ImageError

MIN_SIDE = 64
DEFAULT_MAX_SIDE = 1024
SIZE_STEP = 8  # SD latents are 1/8 of the image size

_ORIENTATION_TAG = 0x0112
_ROTATIONS = {3, 6, 8}  # the other non-identity orientations (2, 4, 5, 7) mirror
_SIDEWAYS = {5, 6, 7, 8}  # orientations that swap width and height
_HIGH_DEPTH_MODES = {"I;16": "16-bit", "I;16L": "16-bit", "I;16B": "16-bit", "I;16N": "16-bit",
                     "I": "32-bit", "F": "32-bit float"}
_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}
_LOSSLESS_TO_RGB = {"1", "L", "P"}
# Pillow's refusals of oversized PNG text chunks (MAX_TEXT_CHUNK, MAX_TEXT_MEMORY), which are not damage.
_TEXT_LIMITS = re.compile(r"MAX_TEXT_CHUNK|text chunks")
# Everything Pillow raises for files it cannot decode.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error)


@dataclass(frozen=True)
class LoadedImage:
    image: Image.Image  # RGB, working size
    original_size: tuple[int, int]  # upright (after EXIF orientation), before any resize
    notes: tuple[str, ...]  # user-facing sentences about corrections made


@contextmanager
def open_image(path: str | Path) -> Iterator[Image.Image]:
    """Open an image file lazily; Pillow errors inside the block become ImageError.

    Decompression bombs are refused before any pixels are decoded. Keep only Pillow calls
    inside the block: any OSError/ValueError raised there is reported as a damaged file.
    """
    path = Path(path)
    name = path.name
    if not path.exists():
        raise ImageError(f"No file at {path}.", "Check the path; the file may have been moved or deleted.")
    if path.is_dir():
        raise ImageError(f"{path} is a folder, not an image file.", "Choose an image file inside it.")
    if path.stat().st_size == 0:
        raise ImageError(f"{name} is empty (0 bytes).", "Re-save or re-download the file.")
    try:
        with Image.open(path) as image:
            _refuse_bomb(image.size, name)
            yield image
    except ImageError:
        raise
    except UnidentifiedImageError as error:
        raise ImageError(f"{name} is not an image this app can read.",
                         "Use a PNG, JPEG, WebP, TIFF or BMP file; this one is of another kind or damaged.") from error
    except PermissionError as error:
        raise ImageError(f"Cannot read {name}: permission denied.",
                         "Check the file's permissions or copy it somewhere readable.") from error
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise _bomb_error(name) from error
    except MemoryError as error:
        raise ImageError(f"{name} is too large to fit in memory.", "Shrink it in an image editor first.") from error
    except ValueError as error:
        if not _TEXT_LIMITS.search(str(error)):
            raise ImageError(f"{name} is damaged or incomplete: its pixels could not be decoded.",
                             "Re-save or re-download the file.") from error
        raise ImageError(f"{name} carries more text metadata than can be read safely "
                         f"(over {PngImagePlugin.MAX_TEXT_CHUNK // 2**20} MB in one text chunk).",
                         "Re-save the picture without its metadata, or use another copy of it.") from error
    except _DECODE_ERRORS as error:
        raise ImageError(f"{name} is damaged or incomplete: its pixels could not be decoded.",
                         "Re-save or re-download the file.") from error


def _refuse_bomb(size: tuple[int, int], name: str) -> None:
    # Pillow only warns between MAX_IMAGE_PIXELS and twice that; a warning is easy to miss,
    # and catching it with warnings.catch_warnings is not thread-safe, so check the size here.
    limit = Image.MAX_IMAGE_PIXELS
    if limit and size[0] * size[1] > limit:
        raise _bomb_error(name)


def _bomb_error(name: str) -> ImageError:
    limit = Image.MAX_IMAGE_PIXELS or 0
    return ImageError(f"{name} declares more than {limit:,} pixels, too many to open safely.",
                      "If you trust the file, shrink it in an image editor first.")


def load_image(path: str | Path, max_side: int = DEFAULT_MAX_SIDE) -> LoadedImage:
    """Load an image file as upright RGB at a working size the pipeline accepts."""
    _check_max_side(max_side)
    with open_image(path) as image:
        notes = ["Used the first frame of a multi-frame file."] if getattr(image, "is_animated", False) else []
        stored_size = image.size
        _draft_jpeg(image, max_side)
        image.load()  # full decode now, so truncated files fail here and not later
        turned, orientation_notes = upright(image)
        sideways = bool(orientation_notes) and image.getexif().get(_ORIENTATION_TAG) in _SIDEWAYS
    full_size = stored_size[::-1] if sideways else stored_size
    return _finish(turned, max_side, [*notes, *orientation_notes], label=Path(path).name, full_size=full_size)


def _draft_jpeg(image: Image.Image, max_side: int) -> None:
    """Have a JPEG larger than its working size decode at the smallest 1/2, 1/4 or 1/8 scale still at least that size:
    far less time and memory than the full picture, and the final resize keeps the quality."""
    if image.format != "JPEG" or max(image.size) <= max_side:
        return
    try:
        target = snap_size(*image.size, max_side)
    except ImageError:
        return  # _finish reports it, with the upright size
    image.draft(None, target)


def prepare_image(pil_image: Image.Image, max_side: int = DEFAULT_MAX_SIDE,
                  source_notes: tuple[str, ...] | list[str] = ()) -> LoadedImage:
    """Apply the same policy as load_image to an in-memory image (a pasted one)."""
    _check_max_side(max_side)
    if not isinstance(pil_image, Image.Image):
        raise ImageError("The pasted data is not an image.", "Copy an image, or open an image file instead.")
    try:
        pil_image.load()
    except _DECODE_ERRORS as error:
        raise ImageError("The pasted image is damaged: its pixels could not be decoded.",
                         "Copy it again, or save it to a file and open that.") from error
    turned, orientation_notes = upright(pil_image)
    return _finish(turned, max_side, [*source_notes, *orientation_notes], label="The image")


def snap_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """The working size: long side at most max_side, each side the nearest multiple of 8 (>= MIN_SIDE)."""
    _check_max_side(max_side)
    if width <= 0 or height <= 0:
        raise ImageError(f"Image size {width}x{height} is empty.", "Use an image with pixels in it.")
    long_side = max(width, height)
    fitted = (width, height)
    if long_side > max_side:
        scale = max_side / long_side
        fitted = max(1, round(width * scale)), max(1, round(height * scale))
    if min(fitted) < MIN_SIDE:  # stretching it back up would distort the picture
        raise ImageError(f"The image is {width}x{height} px: fitting it into {max_side} px would leave its short side "
                         f"at {min(fitted)} px, under the {MIN_SIDE} px minimum.",
                         "Crop it to a less extreme shape first.")
    largest = max_side - max_side % SIZE_STEP
    return tuple(min(largest, (side + SIZE_STEP // 2) // SIZE_STEP * SIZE_STEP) for side in fitted)


def _check_max_side(max_side: int) -> None:
    if max_side < MIN_SIDE:
        raise ImageError(f"The working size limit {max_side} px is below the minimum of {MIN_SIDE} px.",
                         f"Set a working size of at least {MIN_SIDE} px (1024 is usual).")


def upright(image: Image.Image) -> tuple[Image.Image, list[str]]:
    """A new image turned by its EXIF orientation; damaged EXIF is ignored, not fatal."""
    try:
        orientation = image.getexif().get(_ORIENTATION_TAG, 1)
        turned = ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001 - EXIF parsing can fail in many ways; the pixels are still fine
        return image.copy(), []
    if orientation in _ROTATIONS:
        return turned, ["Rotated by its EXIF orientation."]
    if orientation in (2, 4, 5, 7):
        return turned, ["Flipped by its EXIF orientation."]
    return turned, []


def _finish(image: Image.Image, max_side: int, notes: list[str], label: str,
            full_size: tuple[int, int] | None = None) -> LoadedImage:
    """`full_size`: the upright size of the file's full picture, when `image` was decoded smaller (a JPEG draft)."""
    width, height = full_size or image.size
    if width < MIN_SIDE or height < MIN_SIDE:
        raise ImageError(f"{label} is only {width}x{height} px; both sides must be at least {MIN_SIDE} px.",
                         "Use a larger image; 512 px or more on the short side works best.")
    try:
        rgb, conversion_notes = _to_rgb(image)
    except (ValueError, OSError) as error:
        raise ImageError(f"{label} uses the colour mode {image.mode}, which cannot be converted to RGB.",
                         "Convert it to RGB in an image editor.") from error
    notes = [*notes, *conversion_notes]
    target = snap_size(width, height, max_side)
    if rgb.size != target:
        rgb = rgb.resize(target, Image.Resampling.LANCZOS, reducing_gap=3.0)
    if target != (width, height):
        size_text = f"{width}x{height} to {target[0]}x{target[1]}"
        if max(width, height) > max_side:
            notes.append(f"Scaled from {size_text} (working size limit {max_side} px).")
        else:
            notes.append(f"Resized from {size_text} so both sides are multiples of {SIZE_STEP}.")
    return LoadedImage(image=rgb, original_size=(width, height), notes=tuple(notes))


def _to_rgb(image: Image.Image) -> tuple[Image.Image, list[str]]:
    mode = image.mode
    if mode == "RGB":
        return image, []
    if mode in _HIGH_DEPTH_MODES:
        return _stretch_to_8bit(image), [f"Converted {_HIGH_DEPTH_MODES[mode]} to 8-bit."]
    if mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = (image.convert("LA") if mode == "La" else image).convert("RGBA")  # Pillow has no La -> RGBA
        if rgba.getchannel("A").getextrema()[0] == 255:
            return rgba.convert("RGB"), []
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB"), ["Transparent areas were filled with white."]
    notes = [] if mode in _LOSSLESS_TO_RGB else [f"Converted from {mode}."]
    return image.convert("RGB"), notes


def _stretch_to_8bit(image: Image.Image) -> Image.Image:
    """Map the actual value range of a 16-bit, 32-bit or float image onto 0..255."""
    values = np.asarray(image, dtype=np.float64)
    finite = np.isfinite(values)
    if not finite.any():
        return Image.new("RGB", image.size)
    low, high = values[finite].min(), values[finite].max()
    scaled = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
    scaled[~finite] = 0
    return Image.fromarray(np.round(scaled).astype(np.uint8)).convert("RGB")
