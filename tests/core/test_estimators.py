"""The choice of depth estimators: tiny random-weight models of every architecture, saved like their Hub repos
and loaded back through load_estimator; conversions and the fine-detail merge checked on controlled values."""

import shutil
import threading

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from d2i_desktop.core.depth import fine_detail
from d2i_desktop.core.depth.estimators import (
    DEFAULT_ESTIMATOR, ESTIMATORS, OUTPUTS, PIPELINE_SOURCE, DepthSettings, estimator_folder, estimator_spec,
    load_estimator, pipeline_estimator, to_inverse_depth,
)
from d2i_desktop.core.errors import Cancelled, ModelError
from d2i_desktop.core.generation.guards import InvalidValues
from d2i_desktop.core.models.catalogue import SD2_DEPTH_REPO
from d2i_desktop.core.depth.tiny_estimators import ARCHITECTURES, BUILDERS, put_in_hf_cache, save_tiny_estimator


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """One tiny saved model per architecture: name -> folder."""
    root = tmp_path_factory.mktemp("estimators")
    return {name: save_tiny_estimator(name, root / name) for name in ARCHITECTURES}


def _photo(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
    return Image.fromarray(np.clip(ramp + rng.normal(0, 30, (height, width, 3)), 0, 255).astype(np.uint8))


def _coarse(depth: np.ndarray) -> np.ndarray:
    """Only the structure: what is coarser than 8 pixels."""
    return ndimage.gaussian_filter(depth.astype(np.float64), 8)


def _counting_calls(estimator) -> list[int]:
    """A forward hook on the real model that records each call; returns the list it appends to."""
    calls = []
    model = estimator.pipe.unet if hasattr(estimator, "pipe") else estimator.model
    model.register_forward_hook(lambda *_: calls.append(1))  # append returns None: the output is kept
    return calls


# -- the catalogue ---------------------------------------------------------------------------------
def test_the_catalogue_lists_the_default_first_and_describes_every_output():
    assert next(iter(ESTIMATORS)) == DEFAULT_ESTIMATOR == "dpt-hybrid"
    assert set(ESTIMATORS) >= set(ARCHITECTURES)
    for name, spec in ESTIMATORS.items():
        assert spec.name == name and spec.output in OUTPUTS and spec.library in ("transformers", "diffusers")
        assert spec.commercial_use == ("NC" not in spec.licence and "apple-amlr" not in spec.licence)


def test_every_estimator_offered_has_a_tiny_model_and_the_self_test_runs_each_architecture():
    assert set(BUILDERS) == set(ESTIMATORS)
    assert {BUILDERS[name] for name in ARCHITECTURES} == set(BUILDERS.values())


def test_an_unknown_estimator_is_refused_with_the_choices():
    with pytest.raises(ModelError) as caught:
        estimator_spec("midas-v9")
    assert caught.value.message == "Unknown depth estimator 'midas-v9'."
    assert caught.value.hint.startswith("Choose one of: dpt-hybrid, depth-anything-v2-small")
    with pytest.raises(ModelError, match="midas-v9"):
        DepthSettings("midas-v9").validated()


def test_depth_settings_describe_themselves():
    assert DepthSettings().validated().describe() == "DPT-Hybrid (MiDaS)"
    assert DepthSettings("depth-anything-v2-small", fine_detail=True).describe() == "Depth Anything V2 Small, fine detail"


# -- every architecture through the real loading path ------------------------------------------------
@pytest.mark.parametrize("name", ARCHITECTURES)
def test_every_architecture_loads_and_estimates_at_the_image_size(tiny, name):
    estimator = load_estimator(name, "cpu", torch.float16, tiny[name])  # fp16 asked for: the CPU runs fp32
    assert estimator.spec is ESTIMATORS[name] and estimator.source == str(tiny[name])
    assert estimator.dtype == torch.float32
    estimate = estimator.estimate(_photo(80, 56))
    assert estimate.depth.shape == (56, 80) and estimate.depth.dtype == np.float32
    assert np.isfinite(estimate.depth).all()
    conversion = {"metric": "turned into 1/distance", "affine-depth": "turned around"}.get(ESTIMATORS[name].output)
    if conversion is None:
        assert estimate.notes == ()
    else:
        assert len(estimate.notes) == 1 and conversion in estimate.notes[0]


def test_the_pipelines_own_dpt_gives_exactly_the_engines_depth(demo_engine):
    image = _photo(64, 48)
    estimator = pipeline_estimator(demo_engine.pipe)
    assert estimator.source == PIPELINE_SOURCE and estimator.spec.name == "dpt-hybrid"
    estimate = estimator.estimate(image)
    assert np.array_equal(estimate.depth, demo_engine.estimate_depth(image)) and estimate.notes == ()


def test_a_saved_dpt_hybrid_and_a_cached_sd2_depth_models_dpt_match_the_engine(demo_engine, demo_model_dir, tiny,
                                                                               cache_dir):
    image = _photo(64, 48)
    expected = demo_engine.estimate_depth(image)
    saved = load_estimator("dpt-hybrid", "cpu", torch.float32, tiny["dpt-hybrid"])  # the demo's DPT, on its own
    assert np.array_equal(saved.estimate(image).depth, expected)
    in_the_model = load_estimator("dpt-hybrid", "cpu", torch.float32, demo_model_dir)  # an SD2-depth folder
    assert in_the_model.source == str(demo_model_dir / "depth_estimator")
    assert np.array_equal(in_the_model.estimate(image).depth, expected)
    snapshot = put_in_hf_cache(SD2_DEPTH_REPO, demo_model_dir, cache_dir)
    assert estimator_folder("dpt-hybrid") == snapshot / "depth_estimator"
    cached = load_estimator("dpt-hybrid", "cpu", torch.float32)
    assert cached.source == str(snapshot / "depth_estimator")
    assert np.array_equal(cached.estimate(image).depth, expected)


def test_a_pipeline_without_depth_estimator_has_none():
    from d2i_desktop.core.models.demo import build_demo_pipeline

    pipe = build_demo_pipeline()
    pipe.depth_estimator = None
    assert pipeline_estimator(pipe) is None


def test_marigolds_depth_is_the_pipelines_turned_around(tiny):
    from diffusers import MarigoldDepthPipeline

    image = _photo(64, 48)
    estimator = load_estimator("marigold", "cpu", torch.float32, tiny["marigold"])
    pipe = MarigoldDepthPipeline.from_pretrained(tiny["marigold"], local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    own = pipe(image, generator=torch.Generator().manual_seed(0), output_type="np").prediction[0, :, :, 0]
    depth = estimator.estimate(image).depth
    np.testing.assert_allclose(depth, 1.0 - own, atol=1e-6)
    assert np.array_equal(estimator.estimate(image).depth, depth)  # a fixed seed: the same map every time


# -- conversions, on controlled raw outputs -----------------------------------------------------------
def test_metric_depth_becomes_inverse_depth():
    metres = torch.linspace(1.0, 10.0, 10)[None].repeat(4, 1)  # near on the left
    inverse = to_inverse_depth(metres, "metric")
    torch.testing.assert_close(inverse, 1.0 / metres)
    assert (inverse[:, 1:] < inverse[:, :-1]).all()  # near stays bright
    assert torch.isfinite(to_inverse_depth(torch.zeros(2, 2), "metric")).all()


def test_marigolds_zero_near_depth_is_turned_around_and_inverse_depth_is_kept():
    depth01 = torch.linspace(0.0, 1.0, 5)[None]  # 0 = near
    torch.testing.assert_close(to_inverse_depth(depth01, "affine-depth"), 1.0 - depth01)
    torch.testing.assert_close(to_inverse_depth(depth01, "relative-inverse"), depth01)


# -- fine detail -------------------------------------------------------------------------------------
def test_tiles_only_for_images_larger_than_the_model_input_and_they_cover_it():
    assert fine_detail.tile_grid(384, 384, (384, 384)) is None
    grid = fine_detail.tile_grid(385, 300, (384, 384))
    assert (grid.rows, grid.columns, grid.scale) == (2, 1, 2)
    grid = fine_detail.tile_grid(3000, 4000, (384, 512))
    assert (grid.rows, grid.columns) == (3, 3)  # capped
    covered = np.zeros((3000, 4000), dtype=int)
    for top, left, bottom, right in grid.boxes:
        covered[top:bottom, left:right] += 1
    assert covered.min() >= 1 and covered.max() >= 2  # everything covered, neighbours overlap


def test_merge_keeps_the_whole_images_structure_and_takes_the_tiles_detail():
    height, width = 120, 160
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    structure = 0.5 + 0.4 * np.sin(xx / 40.0) * np.cos(yy / 50.0)  # smooth: what a whole-image estimate sees
    detail = 0.05 * np.sign(np.sin(xx / 1.5) * np.sin(yy / 1.5))  # fine: what only the tiles see
    grid = fine_detail.tile_grid(height, width, (48, 64))
    rng = np.random.default_rng(1)
    tiles = []
    for top, left, bottom, right in grid.boxes:  # each tile off by its own scale and shift, as relative depth is
        scale, shift = rng.uniform(0.5, 2.0), rng.uniform(-1.0, 1.0)
        tiles.append(((top, left, bottom, right), scale * (structure + detail)[top:bottom, left:right] + shift))
    merged = fine_detail.merge(structure.astype(np.float32), tiles, detail_sigma=2.5)
    assert merged.dtype == np.float32 and merged.shape == (height, width)
    assert np.abs(_coarse(merged) - _coarse(structure)).max() < 0.01  # the structure is the whole image's
    added = merged - structure
    assert np.corrcoef(added.ravel(), detail.ravel())[0, 1] > 0.9  # the detail is the tiles'
    assert np.abs(added).max() < 0.12  # no seams from the tiles' own scales and shifts


def test_fine_detail_on_an_image_no_larger_than_the_input_is_the_plain_estimate(tiny):
    estimator = load_estimator("depth-anything-v2-small", "cpu", torch.float32, tiny["depth-anything-v2-small"])
    image = _photo(42, 40)
    plain, fine = estimator.estimate(image), estimator.estimate(image, fine_detail=True)
    assert np.array_equal(plain.depth, fine.depth) and fine.notes == ()


def test_fine_detail_on_a_large_image_merges_tiles_into_the_plain_estimate(tiny):
    estimator = load_estimator("dpt-hybrid", "cpu", torch.float32, tiny["dpt-hybrid"])  # input 32 x 32
    image = _photo(128, 96)
    calls = _counting_calls(estimator)
    plain = estimator.estimate(image)
    fine = estimator.estimate(image, fine_detail=True)
    assert fine.notes == ("fine detail: 9 tiles at 3x",) and len(calls) == 1 + 1 + 9
    assert fine.depth.shape == (96, 128) and np.isfinite(fine.depth).all()
    assert not np.array_equal(fine.depth, plain.depth)
    assert np.corrcoef(_coarse(fine.depth).ravel(), _coarse(plain.depth).ravel())[0, 1] > 0.9


# -- cancel and invalid values ------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["depth-anything-v2-small", "marigold"])
def test_cancel_before_the_first_model_call(tiny, name):
    estimator = load_estimator(name, "cpu", torch.float32, tiny[name])
    calls, cancel = _counting_calls(estimator), threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        estimator.estimate(_photo(64, 48), cancel=cancel)
    assert calls == []


def test_cancel_between_tiles_stops_at_the_next_one(tiny):
    estimator = load_estimator("depth-anything-v2-small", "cpu", torch.float32, tiny["depth-anything-v2-small"])
    calls, cancel = _counting_calls(estimator), threading.Event()
    estimator.model.register_forward_hook(lambda *_: cancel.set())  # the user cancels during the first call
    with pytest.raises(Cancelled):
        estimator.estimate(_photo(128, 96), fine_detail=True, cancel=cancel)
    assert len(calls) == 1  # the whole image, then no tile


def test_nan_depth_is_refused_as_invalid_values(tiny):
    estimator = load_estimator("depth-anything-v2-small", "cpu", torch.float32, tiny["depth-anything-v2-small"])
    with torch.no_grad():
        next(estimator.model.head.parameters()).fill_(float("nan"))
    with pytest.raises(InvalidValues) as caught:
        estimator.estimate(_photo(64, 48))
    assert caught.value.message == "Depth Anything V2 Small produced invalid depth values (NaN or infinity)."
    assert caught.value.hint and caught.value.fix is None  # fp32 already: no precision to switch to


# -- bad folders and missing downloads ----------------------------------------------------------------
def test_a_folder_of_another_architecture_says_what_it_holds(tiny):
    with pytest.raises(ModelError) as caught:
        load_estimator("zoedepth", "cpu", torch.float32, tiny["depth-anything-v2-small"])
    assert caught.value.message.endswith("is not ZoeDepth: it holds a Depth Anything model.")
    assert "Intel/zoedepth-nyu-kitti" in caught.value.hint
    with pytest.raises(ModelError, match="is not Marigold Depth v1.1: it holds a DPT-Hybrid depth estimator"):
        load_estimator("marigold", "cpu", torch.float32, tiny["dpt-hybrid"])
    with pytest.raises(ModelError, match="is not Depth Pro: it holds a Marigold depth model"):
        load_estimator("depth-pro", "cpu", torch.float32, tiny["marigold"])


def test_a_plain_dpt_is_not_taken_for_dpt_hybrid(tiny, tmp_path):
    import json

    folder = shutil.copytree(tiny["dpt-hybrid"], tmp_path / "dpt-large")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(config | {"is_hybrid": False}))
    with pytest.raises(ModelError, match="without the hybrid backbone"):
        load_estimator("dpt-hybrid", "cpu", torch.float32, folder)


def test_folders_without_config_or_weights_are_refused_clearly(tiny, tmp_path):
    with pytest.raises(ModelError, match="it holds no model configuration"):
        load_estimator("depth-pro", "cpu", torch.float32, tmp_path)
    no_weights = shutil.copytree(tiny["depth-pro"], tmp_path / "depth-pro", ignore=shutil.ignore_patterns("*.safetensors"))
    with pytest.raises(ModelError) as caught:
        load_estimator("depth-pro", "cpu", torch.float32, no_weights)
    assert caught.value.message == f"Depth Pro in {no_weights} has no weights." and "incomplete" in caught.value.hint
    marigold = shutil.copytree(tiny["marigold"], tmp_path / "marigold")
    for weights in (marigold / "unet").glob("*.safetensors"):
        weights.unlink()
    with pytest.raises(ModelError, match="has no weights for its unet"):
        load_estimator("marigold", "cpu", torch.float32, marigold)
    shutil.rmtree(marigold / "tokenizer")
    with pytest.raises(ModelError, match="is missing tokenizer"):
        load_estimator("marigold", "cpu", torch.float32, marigold)


def test_damaged_weights_are_a_model_error(tiny, tmp_path):
    folder = shutil.copytree(tiny["zoedepth"], tmp_path / "zoedepth")
    (folder / "model.safetensors").write_bytes(b"not a safetensors file" * 10)
    with pytest.raises(ModelError, match="^Could not load ZoeDepth from") as caught:
        load_estimator("zoedepth", "cpu", torch.float32, folder)
    assert "download it again" in caught.value.hint


def test_an_estimator_not_downloaded_says_how_big_and_under_which_licence(cache_dir):
    assert estimator_folder("zoedepth") is None
    with pytest.raises(ModelError) as caught:
        load_estimator("zoedepth", "cpu", torch.float32)
    assert caught.value.message == "ZoeDepth is not downloaded yet."
    assert caught.value.hint == "Download it in Model > Models… (1.4 GB, licence MIT)."


def test_an_estimator_in_the_hf_cache_is_found_and_loaded_from_it(tiny, cache_dir, tmp_path):
    snapshot = put_in_hf_cache(ESTIMATORS["depth-anything-v2-small"].repo_id, tiny["depth-anything-v2-small"], cache_dir)
    assert estimator_folder("depth-anything-v2-small") == snapshot
    assert estimator_folder("depth-anything-v2-small", cache_dir=tmp_path / "elsewhere") is None
    assert estimator_folder("depth-anything-v2-base") is None  # another repo
    estimator = load_estimator("depth-anything-v2-small", "cpu", torch.float32)
    assert estimator.source == str(snapshot) and estimator.estimate(_photo(48, 32)).depth.shape == (32, 48)
