"""Small previews of the pictures in the history, cached on disk by path, size and modification time."""

from __future__ import annotations

import hashlib
from pathlib import Path

from PIL import Image

from ..files.images import open_image
from ..paths import data_dir

THUMBNAIL_SIZE = 160


def thumbnail(path: str | Path, size: int = THUMBNAIL_SIZE, cache: Path | None = None) -> Image.Image:
    """The picture at `path` fitted in `size` x `size` (RGB), made once and then read from the cache folder.

    OSError or D2IError when the picture cannot be read.
    """
    path = Path(path).resolve()
    stat = path.stat()
    cache = cache or data_dir() / "thumbnails"
    key = hashlib.sha1(f"{path}\n{stat.st_size}\n{stat.st_mtime_ns}\n{size}".encode()).hexdigest()
    cached = cache / key[:2] / f"{key}.png"
    try:
        with Image.open(cached) as image:
            return image.convert("RGB")
    except (OSError, ValueError):
        pass  # not made yet, or damaged: made again
    with open_image(path) as image:
        small = image.convert("RGB")
    small.thumbnail((size, size), Image.Resampling.LANCZOS)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        temp = cached.with_suffix(".tmp")
        small.save(temp, format="PNG")
        temp.replace(cached)
    except OSError:
        pass  # a read-only cache still shows the picture
    return small
