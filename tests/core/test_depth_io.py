"""Depth arrays: normalising, colour maps, and 16-bit / float file I/O."""

import numpy as np
import pytest
from PIL import Image

from d2i_desktop.core.depth.maps import COLORMAPS, colorize, load_depth, normalize, save_depth_png16
from d2i_desktop.core.errors import ImageError
from d2i_desktop.core.files.outputs import OutputExistsError

REC709 = np.array([0.2126, 0.7152, 0.0722])
RAMP = np.linspace(0.0, 1.0, 256, dtype=np.float32)[None, :]


def _luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float64) @ REC709


def _random_depth(height=61, width=97, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).normal(5.0, 2.0, (height, width)).astype(np.float32)


# --- normalize ---------------------------------------------------------------------------------

def test_normalize_spans_zero_to_one():
    depth = normalize(np.array([[2, 4], [6, 10]], dtype=np.int32))
    assert depth.dtype == np.float32
    np.testing.assert_allclose(depth, [[0, 0.25], [0.5, 1]])


def test_normalize_of_a_constant_map_is_zeros():
    depth = normalize(np.full((4, 5), 3.0))
    assert depth.dtype == np.float32 and depth.shape == (4, 5) and not depth.any()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_normalize_refuses_non_finite_values(bad):
    depth = np.ones((4, 4))
    depth[1, 2] = bad
    with pytest.raises(ImageError, match="NaN or infinite"):
        normalize(depth)


@pytest.mark.parametrize("shape", [(5,), (2, 3, 3), (0, 4)])
def test_normalize_refuses_non_maps(shape):
    with pytest.raises(ImageError, match="height x width"):
        normalize(np.ones(shape))


# --- colorize ----------------------------------------------------------------------------------

@pytest.mark.parametrize("cmap", COLORMAPS)
def test_colorize_shape_and_dtype(cmap):
    picture = colorize(_random_depth(7, 9) / 10, cmap)
    assert picture.shape == (7, 9, 3) and picture.dtype == np.uint8


def test_grey_is_the_value_itself_near_is_bright():
    picture = colorize(RAMP, "grey")[0]
    assert (picture[:, 0] == np.arange(256)).all()
    assert (picture[:, 0] == picture[:, 1]).all() and (picture[:, 1] == picture[:, 2]).all()


@pytest.mark.parametrize("cmap", ["viridis", "magma"])
def test_perceptual_maps_get_brighter_with_value(cmap):
    luminance = _luminance(colorize(RAMP, cmap)[0])
    assert (np.diff(luminance) > -0.5).all()  # monotonic up to 8-bit rounding
    assert (np.diff(luminance[::8]) > 0).all()
    assert luminance[-1] - luminance[0] > 150


@pytest.mark.parametrize("cmap, index, reference", [
    # matplotlib's published 256-entry tables
    ("viridis", 0, (0.267004, 0.004874, 0.329415)),
    ("viridis", 128, (0.127568, 0.566949, 0.550556)),
    ("viridis", 255, (0.993248, 0.906157, 0.143936)),
    ("magma", 0, (0.001462, 0.000466, 0.013866)),
    ("magma", 128, (0.716387, 0.214982, 0.475290)),
    ("magma", 255, (0.987053, 0.991438, 0.749504)),
    # Google's published Turbo table, including entries between the stored ones
    ("turbo", 0, (0.18995, 0.07176, 0.23217)),
    ("turbo", 36, (0.27698, 0.46153, 0.93309)),
    ("turbo", 100, (0.24797, 0.96423, 0.54303)),
    ("turbo", 129, (0.65394, 0.98775, 0.22835)),
    ("turbo", 180, (0.99654, 0.63193, 0.18738)),
    ("turbo", 255, (0.47960, 0.01583, 0.01055)),
])
def test_colour_maps_match_their_published_tables(cmap, index, reference):
    tolerance = 2 if cmap == "turbo" else 6  # viridis/magma are polynomial fits
    colour = colorize(np.array([[index / 255]]), cmap)[0, 0].astype(int)
    assert np.abs(colour - np.round(np.array(reference) * 255)).max() <= tolerance


def test_colorize_clips_out_of_range_values():
    picture = colorize(np.array([[-1.0, 2.0]]), "grey")
    assert picture[0, 0, 0] == 0 and picture[0, 1, 0] == 255


def test_unknown_colour_map():
    with pytest.raises(ImageError, match="colour map"):
        colorize(RAMP, "jet")


# --- save and load -----------------------------------------------------------------------------

def test_round_trip_keeps_16_bit_precision(tmp_path):
    depth = _random_depth()
    path = save_depth_png16(depth, tmp_path / "depth.png")
    with Image.open(path) as saved:
        assert saved.mode.startswith("I;16") and saved.size == (97, 61)
    loaded, notes = load_depth(path, (97, 61))
    assert loaded.dtype == np.float32 and loaded.shape == (61, 97) and notes == ()
    assert np.abs(loaded - normalize(depth)).max() <= 1 / 65535
    assert len(np.unique(loaded)) > 256


def test_save_depth_never_overwrites(tmp_path):
    target = tmp_path / "depth.png"
    target.write_bytes(b"precious")
    with pytest.raises(OutputExistsError):
        save_depth_png16(_random_depth(), target)
    assert target.read_bytes() == b"precious"
    assert [entry.name for entry in tmp_path.iterdir()] == ["depth.png"]


def test_load_8_bit_png(tmp_path):
    path = tmp_path / "depth8.png"
    Image.fromarray(np.tile(np.arange(0, 256, 4, dtype=np.uint8), (32, 1))).save(path)
    depth, notes = load_depth(path, (64, 32))
    assert notes == ()
    np.testing.assert_allclose(depth[0], np.arange(0, 256, 4) / 252, atol=1e-6)


@pytest.mark.parametrize("name", ["pillow_16bit.cropped.tif", "pillow_10ct_32bit_128.tiff"])
def test_load_16_bit_and_float_tiff_at_full_precision(third_party_samples, name):
    path = third_party_samples / name
    with Image.open(path) as image:
        raw = np.asarray(image, dtype=np.float64)
        size = image.size
    depth, notes = load_depth(path, size)
    assert notes == ()
    np.testing.assert_allclose(depth, (raw - raw.min()) / (raw.max() - raw.min()), atol=1e-6)


def test_load_npy(tmp_path):
    raw = _random_depth().astype(np.float64)
    path = tmp_path / "depth.npy"
    np.save(path, raw)
    depth, notes = load_depth(path, (97, 61))
    assert notes == ()
    np.testing.assert_allclose(depth, (raw - raw.min()) / (raw.max() - raw.min()), atol=1e-6)


def test_colour_image_is_read_as_luminance(third_party_samples):
    depth, notes = load_depth(third_party_samples / "pillow_hopper.png", (128, 128))
    assert "Converted a colour depth map to greyscale (luminance)." in notes
    assert depth.min() == 0 and depth.max() == 1


def test_grey_stored_as_rgb_needs_no_note(tmp_path):
    path = tmp_path / "grey_rgb.png"
    Image.fromarray(np.tile(np.arange(64, dtype=np.uint8), (64, 1))).convert("RGB").save(path)
    assert load_depth(path, (64, 64))[1] == ()


def test_exif_orientation_is_applied(third_party_samples):
    _, notes = load_depth(third_party_samples / "pillow_hopper_orientation_6.jpg", (128, 128))
    assert "Rotated by its EXIF orientation." in notes


def test_resize_with_same_aspect_notes_only_the_resize(tmp_path):
    path = tmp_path / "depth.png"
    save_depth_png16(_random_depth(64, 96), path)
    depth, notes = load_depth(path, (48, 32))
    assert depth.shape == (32, 48) and depth.dtype == np.float32
    assert 0 <= depth.min() and depth.max() <= 1
    assert notes == ("Resized the depth map from 96x64 to 48x32 to match the image.",)


def test_resize_with_other_aspect_says_so(tmp_path):
    path = tmp_path / "depth.png"
    save_depth_png16(_random_depth(64, 96), path)
    depth, notes = load_depth(path, (64, 64))
    assert depth.shape == (64, 64)
    assert len(notes) == 2 and "aspect ratio (1.50)" in notes[1] and "(1.00)" in notes[1]


def test_non_finite_npy_is_refused(tmp_path):
    raw = _random_depth()
    raw[3, 3] = np.nan
    path = tmp_path / "nan.npy"
    np.save(path, raw)
    with pytest.raises(ImageError, match="nan.npy contains NaN or infinite"):
        load_depth(path, (97, 61))


def test_non_finite_float_tiff_is_refused(tmp_path):
    raw = _random_depth()
    raw[0, 0] = np.inf
    path = tmp_path / "inf.tif"
    Image.fromarray(raw).save(path)  # float32 -> mode "F"
    with pytest.raises(ImageError, match="NaN or infinite"):
        load_depth(path, (97, 61))


def test_constant_map_is_refused(tmp_path):
    path = tmp_path / "flat.png"
    Image.new("L", (64, 64), 128).save(path)
    with pytest.raises(ImageError, match="carries no depth shape"):
        load_depth(path, (64, 64))


@pytest.mark.parametrize("name", ["pillow_broken.png", "pillow_broken_data_stream.png",
                                  "sdparsers_empty_file.png", "pillow_decompression_bomb.gif"])
def test_unreadable_sample_files(third_party_samples, name):
    with pytest.raises(ImageError) as caught:
        load_depth(third_party_samples / name, (64, 64))
    assert name in caught.value.message and caught.value.hint


def test_truncated_png(tmp_path):
    whole = tmp_path / "whole.png"
    save_depth_png16(_random_depth(128, 128), whole)
    cut = tmp_path / "cut.png"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(ImageError, match="damaged or incomplete"):
        load_depth(cut, (128, 128))


@pytest.mark.parametrize("content", [b"", b"\x93NUMPY truncated", "text"])
def test_broken_npy(tmp_path, content):
    path = tmp_path / "depth.npy"
    if content == "text":
        np.save(path, _random_depth())
        path.write_bytes(path.read_bytes()[:200])  # header intact, data cut short
    else:
        path.write_bytes(content)
    with pytest.raises(ImageError, match="depth.npy"):
        load_depth(path, (97, 61))


@pytest.mark.parametrize("array", [np.arange(10.0), np.array([{"a": 1}, {"b": 2}], dtype=object)])
def test_npy_that_is_not_a_map(tmp_path, array):
    path = tmp_path / "odd.npy"
    np.save(path, array, allow_pickle=True)
    with pytest.raises(ImageError, match="odd.npy"):
        load_depth(path, (64, 64))


def test_missing_depth_file(tmp_path):
    for name in ("absent.png", "absent.npy"):
        with pytest.raises(ImageError, match="absent"):
            load_depth(tmp_path / name, (64, 64))
