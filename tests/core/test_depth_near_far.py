"""Importing depth with either brightness convention, and exporting the edited map without loss."""

import numpy as np
import pytest
from PIL import Image

from d2i_desktop.core.depth.maps import load_depth, normalize, save_depth_npy, save_depth_png16
from d2i_desktop.core.depth.edit import Brush, paint_stroke
from d2i_desktop.core.errors import D2IError
from d2i_desktop.core.files.outputs import OutputExistsError


def _distances(height=48, width=64) -> np.ndarray:
    """A renderer-style Z pass in metres: a near box (2 m) in front of a wall (10 m)."""
    z = np.full((height, width), 10.0, dtype=np.float32)
    z[12:36, 16:40] = 2.0
    return z


def test_float_distances_are_detected_and_converted_to_inverse_depth(tmp_path):
    path = tmp_path / "zpass.tif"
    Image.fromarray(_distances()).save(path)
    depth, notes = load_depth(path, (64, 48), bright_is_near=None)
    assert depth[20, 20] == 1.0 and depth[0, 0] == 0.0  # the near box is bright
    assert any("Assumed bright = far" in note and "Z pass" in note for note in notes)
    assert "Converted distances to inverse depth (1/distance), so near is bright." in notes


def _load_array(folder, values, bright_is_near):
    np.save(folder / "depth.npy", values)
    return load_depth(folder / "depth.npy", values.shape[::-1], bright_is_near=bright_is_near)


def test_inverse_depth_keeps_metric_proportions(tmp_path):
    depth, _ = _load_array(tmp_path, np.array([[1.0, 2.0, 4.0]], dtype=np.float32), bright_is_near=False)
    np.testing.assert_allclose(depth[0], [1.0, 1 / 3, 0.0], atol=1e-6)  # 1/z = 1, .5, .25, normalised


@pytest.mark.parametrize("values", [
    np.linspace(0, 1, 64 * 48, dtype=np.float32).reshape(48, 64),  # normalised float: inverse depth
    np.linspace(-3, 5, 64 * 48, dtype=np.float32).reshape(48, 64),  # signed values are not distances
    np.arange(64 * 48, dtype=np.uint16).reshape(48, 64),  # integer images: MiDaS-style PNGs
])
def test_other_maps_are_assumed_bright_near_and_the_note_says_so(tmp_path, values):
    depth, notes = _load_array(tmp_path, values, bright_is_near=None)
    assert notes == ("Assumed bright = near (inverse depth, as MiDaS and DPT give).",)
    np.testing.assert_allclose(depth, normalize(values), atol=1e-6)


def test_an_explicit_far_flips_an_8_bit_map(tmp_path):
    path = tmp_path / "far.png"
    Image.fromarray(np.tile(np.arange(0, 256, 4, dtype=np.uint8), (8, 1))).save(path)
    depth, notes = load_depth(path, (64, 8), bright_is_near=False)
    assert notes == ("Inverted the map, so near is bright.",)  # zero distance: 1/z impossible, so a flip
    np.testing.assert_allclose(depth[0], 1 - np.arange(0, 256, 4) / 252, atol=1e-6)


def test_edited_map_round_trips_through_npy_exactly(tmp_path):
    depth = np.random.default_rng(0).normal(4, 1, (48, 64)).astype(np.float32)
    paint_stroke(depth, Brush("raise", size=20), [(10, 10), (50, 30)])
    path = save_depth_npy(depth, tmp_path / "edited.npy")
    assert np.load(path).dtype == np.float32
    loaded, notes = load_depth(path, (64, 48), bright_is_near=None)
    assert np.array_equal(loaded, normalize(depth))  # bit for bit
    assert notes == ("Assumed bright = near (inverse depth, as MiDaS and DPT give).",)


def test_edited_map_round_trips_through_16_bit_png_within_one_level(tmp_path):
    depth = np.random.default_rng(1).normal(4, 1, (48, 64)).astype(np.float32)
    paint_stroke(depth, Brush("smooth", size=30), [(10, 10), (50, 30)])
    loaded, _ = load_depth(save_depth_png16(depth, tmp_path / "edited.png"), (64, 48), bright_is_near=None)
    assert np.abs(loaded - normalize(depth)).max() <= 0.5 / 65535 + 1e-7


def test_npy_export_never_overwrites_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "depth.npy"
    target.write_bytes(b"precious")
    with pytest.raises(OutputExistsError):
        save_depth_npy(np.ones((4, 4), dtype=np.float32), target)
    assert target.read_bytes() == b"precious" and [p.name for p in tmp_path.iterdir()] == ["depth.npy"]


def test_npy_export_into_a_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(D2IError) as caught:
        save_depth_npy(np.eye(4, dtype=np.float32), tmp_path / "absent" / "depth.npy")
    assert "depth.npy" in caught.value.message and caught.value.hint


def test_distance_map_of_other_size_is_converted_then_resized(tmp_path):
    path = tmp_path / "z.npy"
    np.save(path, _distances(24, 32).astype(np.float64))
    depth, notes = load_depth(path, (64, 32), bright_is_near=None)
    assert depth.shape == (32, 64) and depth.max() <= 1 and depth.min() >= 0
    assert any("aspect ratio" in note for note in notes) and any("inverse depth" in note for note in notes)
