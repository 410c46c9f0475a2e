"""Thumbnails of history pictures: fitted, cached by path, size and time, made again when the picture changes."""

import os

import pytest
from PIL import Image

from d2i_desktop.core.errors import D2IError
from d2i_desktop.core.history.thumbnails import thumbnail


def test_thumbnails_are_fitted_cached_and_renewed_when_the_picture_changes(tmp_path):
    picture, cache = tmp_path / "p.png", tmp_path / "cache"
    Image.new("RGB", (400, 200), "red").save(picture)
    assert thumbnail(picture, 100, cache).size == (100, 50)
    cached = list(cache.rglob("*.png"))
    assert len(cached) == 1
    Image.new("RGB", (20, 20), "blue").save(cached[0])  # what the cache holds is what is shown
    assert thumbnail(picture, 100, cache).getpixel((0, 0)) == (0, 0, 255)
    Image.new("RGB", (200, 400), "green").save(picture)
    os.utime(picture, ns=(1, 1))
    assert thumbnail(picture, 100, cache).size == (50, 100) and len(list(cache.rglob("*.png"))) == 2


def test_a_damaged_picture_gives_a_clear_error(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a picture")
    with pytest.raises((D2IError, OSError)):
        thumbnail(bad, 100, tmp_path / "cache")
