"""Depth brushes and whole-map tools: their maths, their bounds, and undo/redo round trips."""

import numpy as np
import pytest

from d2i_desktop.core.depth.edit import (
    BRUSHES, RAISE_PER_DAB, Brush, Stroke, blur, falloff, invert, levels, paint_stroke, pick, replace,
)
from d2i_desktop.core.errors import ParamError


def _ramp(height=80, width=100) -> np.ndarray:
    """Depth rising left to right from 2 to 6 (range 4), with a little texture."""
    rng = np.random.default_rng(1)
    ramp = np.linspace(2, 6, width, dtype=np.float32)[None, :]
    return (ramp + rng.normal(0, 0.05, (height, width))).astype(np.float32)


def test_falloff_is_one_at_the_centre_zero_outside_and_hardness_widens_the_core():
    soft, hard = falloff(10, 0.0), falloff(10, 0.8)
    assert soft.shape == (21, 21) and soft[10, 10] == 1
    assert soft[0, 0] == 0 and soft[10, 0] == 0  # corner and rim lie at or beyond the radius
    assert np.all(np.diff(soft[10, 10:]) <= 0)  # falls off monotonically
    assert hard[10, 10 + 7] == 1 and soft[10, 10 + 7] < 0.25
    assert (hard >= soft).all()


def test_raise_adds_strength_times_rate_of_the_range_at_the_centre_only_inside_the_radius():
    depth = _ramp()
    before = depth.copy()
    stroke = Stroke(depth, Brush("raise", size=21, strength=0.5, hardness=0.5))
    box = stroke.dab(50, 40)
    span = float(before.max() - before.min())
    assert box == (30, 40, 51, 61)
    assert depth[40, 50] - before[40, 50] == pytest.approx(0.5 * RAISE_PER_DAB * span, rel=1e-5)
    changed = np.argwhere(depth != before)
    assert np.hypot(changed[:, 0] - 40, changed[:, 1] - 50).max() <= 10.5
    assert (depth >= before).all()


def test_lower_is_the_mirror_of_raise():
    raised, lowered = _ramp(), _ramp()
    before = _ramp()
    paint_stroke(raised, Brush("raise", size=15), [(30, 30)])
    paint_stroke(lowered, Brush("lower", size=15), [(30, 30)])
    np.testing.assert_allclose(raised - before, before - lowered, atol=1e-5)


def test_flatten_pulls_towards_the_picked_depth():
    depth = _ramp()
    target = pick(depth, 10, 40)
    far_before = abs(depth[40, 70] - target)
    paint_stroke(depth, Brush("flatten", size=31, strength=1.0, hardness=0.9, target=target), [(70, 40)])
    assert depth[40, 70] == pytest.approx(target, abs=1e-6)  # full strength, full weight: exactly the target
    assert abs(depth[40, 84] - target) < far_before  # the soft rim moves part of the way


def test_smooth_reduces_roughness_and_keeps_the_mean_trend():
    rng = np.random.default_rng(2)
    depth = rng.normal(0, 1, (64, 64)).astype(np.float32)
    before = depth.copy()
    paint_stroke(depth, Brush("smooth", size=40, strength=1.0, hardness=1.0), [(32, 32)])
    centre = np.s_[24:40, 24:40]
    assert depth[centre].std() < 0.5 * before[centre].std()
    assert abs(depth[centre].mean() - before[centre].mean()) < 0.2
    assert (depth[:5] == before[:5]).all()  # outside the brush nothing moves


def test_dab_off_the_map_changes_nothing_and_edges_are_clipped():
    depth = _ramp()
    before = depth.copy()
    stroke = Stroke(depth, Brush("raise", size=20))
    assert stroke.dab(-50, -50) is None
    assert stroke.finish() is None and (depth == before).all()
    stroke = Stroke(depth, Brush("raise", size=20))
    assert stroke.dab(0, 0) == (0, 0, 11, 11)


def test_stroke_spaces_dabs_evenly_along_the_path():
    depth = np.zeros((40, 200), dtype=np.float32)
    stroke = Stroke(depth, Brush("raise", size=2, hardness=1.0), spacing=2.5)  # one-pixel dabs, 5 px apart
    stroke.move_to(10, 20)
    for x in range(12, 190, 3):  # uneven pointer steps
        stroke.move_to(x, 20)
    dabbed = np.flatnonzero(depth[20])
    assert np.count_nonzero(depth) == len(dabbed)  # every dab on the path's row
    assert dabbed[0] == 10 and (np.diff(dabbed) == 5).all() and dabbed[-1] == 185
    assert stroke.move_to(189.5, 20) is None  # 4.5 px since the last dab: no dab yet


@pytest.mark.parametrize("kind", BRUSHES)
def test_stroke_undo_and_redo_round_trip(kind):
    depth = _ramp()
    original = depth.copy()
    patch = paint_stroke(depth, Brush(kind, size=25, strength=0.8, target=3.0),
                         [(20, 20), (40, 30), (55, 35)])
    edited = depth.copy()
    assert not np.array_equal(edited, original)
    top, left, bottom, right = patch.box
    assert patch.before.shape == (bottom - top, right - left)  # only the touched box is stored
    assert patch.before.size < depth.size
    patch.undo(depth)
    assert np.array_equal(depth, original)
    patch.redo(depth)
    assert np.array_equal(depth, edited)


def test_invert_swaps_near_and_far_within_the_range():
    depth = _ramp()
    inverted = invert(depth)
    assert inverted.dtype == np.float32
    assert inverted.min() == pytest.approx(depth.min()) and inverted.max() == pytest.approx(depth.max())
    np.testing.assert_allclose(invert(inverted), depth, atol=1e-5)
    assert inverted[:, 0].mean() > inverted[:, -1].mean()


def test_levels_clip_stretch_and_gamma():
    depth = np.linspace(0, 10, 11, dtype=np.float32)[None, :]
    np.testing.assert_allclose(levels(depth), depth, atol=1e-5)  # identity
    clipped = levels(depth, near=0.8, far=0.2)
    np.testing.assert_allclose(clipped[0], [0, 0, 0, 10 / 6, 20 / 6, 5, 40 / 6, 50 / 6, 10, 10, 10], atol=1e-4)
    nearer = levels(depth, gamma=2.0)
    assert nearer[0, 5] == pytest.approx(10 * 0.5 ** 0.5, rel=1e-5)
    flipped = levels(depth, near=0.0, far=1.0)
    np.testing.assert_allclose(flipped, invert(depth), atol=1e-5)


@pytest.mark.parametrize("bad", [dict(near=0.5, far=0.5), dict(near=1.5), dict(gamma=0.0)])
def test_levels_refuse_bad_settings(bad):
    with pytest.raises(ParamError):
        levels(_ramp(), **bad)


def test_blur_smooths_but_keeps_the_mean():
    rng = np.random.default_rng(3)
    depth = rng.normal(0, 1, (64, 64)).astype(np.float32)
    blurred = blur(depth, 4)
    assert blurred.dtype == np.float32 and blurred.shape == depth.shape
    assert blurred.std() < 0.3 * depth.std()
    assert abs(blurred.mean() - depth.mean()) < 0.05
    with pytest.raises(ParamError):
        blur(depth, 0)


def test_replace_is_undoable_and_refuses_another_size():
    depth = _ramp()
    original = depth.copy()
    patch = replace(depth, invert(depth))
    assert np.array_equal(depth, invert(original))
    patch.undo(depth)
    assert np.array_equal(depth, original)
    patch.redo(depth)
    assert np.allclose(depth, invert(original))
    with pytest.raises(ParamError, match="cannot replace"):
        replace(depth, np.zeros((10, 10), dtype=np.float32))


def test_a_brush_on_a_constant_map_still_moves_it():
    depth = np.full((30, 30), 7.0, dtype=np.float32)
    paint_stroke(depth, Brush("raise", size=11, strength=1.0), [(15, 15)])
    assert depth[15, 15] == pytest.approx(7.0 + RAISE_PER_DAB)


@pytest.mark.parametrize("bad", [dict(kind="erase"), dict(size=0), dict(strength=1.5), dict(hardness=-0.1),
                                 dict(target=float("nan"))])
def test_bad_brush_settings_are_refused(bad):
    with pytest.raises(ParamError):
        Stroke(_ramp(), Brush(**bad))


def test_stroke_needs_a_float32_map():
    with pytest.raises(ParamError, match="float32"):
        Stroke(_ramp().astype(np.float64), Brush())
