"""The chosen depth estimator through the engine, the record, "Use settings" and Reproduce: the demo model and tiny
random-weight estimators put into a Hugging Face cache folder of the test, as a download would."""

import gc
import shutil
import weakref

import numpy as np
import pytest
import torch
from PIL import Image

from d2i_desktop.core.depth.estimators import DEFAULT_ESTIMATOR, ESTIMATORS, DepthSettings, load_estimator
from d2i_desktop.core.errors import ModelError
from d2i_desktop.core.files.images import load_image
from d2i_desktop.core.files.outputs import parse_parameters, read_parameters
from d2i_desktop.core.generation.batch import repaint
from d2i_desktop.core.generation.depth_origin import DepthOrigin
from d2i_desktop.core.generation.engine import Engine
from d2i_desktop.core.generation.params import GenerationParams, params_from_fields
from d2i_desktop.core.history.foreign import read_settings
from d2i_desktop.core.history.record import depth_levels, depth_path_for, read_record, save_with_record
from d2i_desktop.core.history.reproduce import reproduce
from d2i_desktop.core.depth.tiny_estimators import put_in_hf_cache, save_tiny_estimator

SMALL, BASE = "depth-anything-v2-small", "depth-anything-v2-base"


@pytest.fixture(scope="module")
def tiny_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-estimators")
    return {name: save_tiny_estimator(name, root / name, seed=seed)
            for seed, name in enumerate((SMALL, BASE, DEFAULT_ESTIMATOR))}


@pytest.fixture
def download(tiny_folders, cache_dir):
    """Puts tiny estimators into this test's Hugging Face cache under their repo ids."""
    def put(*names):
        for name in names:
            put_in_hf_cache(ESTIMATORS[name].repo_id, tiny_folders[name], cache_dir)
    return put


@pytest.fixture
def engine(demo_model_dir):
    engine = Engine(device="cpu")
    engine.load(demo_model_dir)
    return engine


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    rng = np.random.default_rng(11)
    ramp = np.linspace(0, 255, 96, dtype=np.float32)[None, :, None]
    return Image.fromarray(np.clip(ramp + rng.normal(0, 25, (64, 96, 3)), 0, 255).astype(np.uint8))


def fast(**overrides) -> GenerationParams:
    return GenerationParams(**({"prompt": "a lighthouse", "steps": 2, "strength": 1.0, "seed": 5} | overrides))


def own_estimate(engine, image) -> np.ndarray:
    """The pipeline's DPT-hybrid run as the engine always ran it: processor, model, bicubic to the image's size."""
    pipe = engine.pipe
    pixels = pipe.feature_extractor(images=image.convert("RGB"), return_tensors="pt").pixel_values
    with torch.inference_mode():
        predicted = pipe.depth_estimator(pixels).predicted_depth
        depth = torch.nn.functional.interpolate(predicted.unsqueeze(1).float(), size=(image.height, image.width),
                                                mode="bicubic", align_corners=False)[0, 0]
    return depth.numpy().astype(np.float32)


def pixels(result) -> np.ndarray:
    return np.asarray(result.images[0], dtype=np.int16)


# -- the engine --------------------------------------------------------------------------------------
def test_the_default_is_the_pipelines_own_dpt_hybrid_pixel_for_pixel(engine, photo, cache_dir):
    assert np.array_equal(engine.estimate_depth(photo), own_estimate(engine, photo))
    assert np.array_equal(engine.estimate_depth(photo, settings=DepthSettings(DEFAULT_ESTIMATOR)), own_estimate(engine, photo))
    assert engine.depth_source.resident is None  # nothing else was loaded for it


def test_another_estimator_loads_from_the_cache_and_generation_uses_its_depth(engine, photo, download):
    download(SMALL)
    settings = DepthSettings(SMALL)
    depth = engine.estimate_depth(photo, settings=settings)
    assert engine.depth_source.resident.spec.name == SMALL
    alone = load_estimator(SMALL, "cpu", torch.float32).estimate(photo).depth
    assert np.array_equal(depth, alone) and not np.allclose(depth, engine.estimate_depth(photo))

    estimated_here = engine.generate(fast(depth_estimator=SMALL), photo)  # no map given: the params' estimator
    given = engine.generate(fast(), photo, depth)
    assert np.array_equal(pixels(estimated_here), pixels(given))
    assert estimated_here.depth_origin == DepthOrigin.estimated(settings)
    assert "Depth estimator: Depth Anything V2 Small" in estimated_here.parameters_text(0)
    default_text = engine.generate(fast(), photo).parameters_text(0)
    assert "Depth" not in default_text  # a default picture's text is what it always was


def test_one_other_estimator_stays_loaded_and_goes_on_unload(engine, demo_model_dir, photo, download):
    download(SMALL, BASE)
    engine.estimate_depth(photo, settings=DepthSettings(SMALL))
    small = weakref.ref(engine.depth_source.resident.model)
    engine.estimate_depth(photo, settings=DepthSettings(BASE))
    gc.collect()
    assert engine.depth_source.resident.spec.name == BASE and small() is None
    plain = engine.estimate_depth(photo, settings=DepthSettings(BASE))
    detailed = engine.estimate_depth(photo, settings=DepthSettings(BASE, fine_detail=True))  # 96 px > its 42 px input
    assert not np.array_equal(plain, detailed)  # estimates are kept by image and settings
    engine.estimate_depth(photo)  # the pipeline's own: the other one is dropped
    assert engine.depth_source.resident is None

    engine.unload()
    engine.load(demo_model_dir)
    calls = []
    engine.pipe.depth_estimator.register_forward_hook(lambda *_: calls.append(1))
    engine.estimate_depth(photo)
    assert calls == [1]  # the estimates went with the model: another model's own estimator estimates afresh


def test_a_model_without_its_own_estimator_estimates_with_a_downloaded_one(demo_model_dir, tmp_path, photo, download,
                                                                           engine):
    folder = tmp_path / "no-dpt"
    shutil.copytree(demo_model_dir, folder)
    shutil.rmtree(folder / "depth_estimator")
    shutil.rmtree(folder / "feature_extractor")
    bare = Engine(device="cpu")
    assert not bare.load(folder).own_depth_estimator
    with pytest.raises(ModelError) as caught:
        bare.estimate_depth(photo)
    assert "no depth estimator of its own" in caught.value.message and "DPT-Hybrid (MiDaS)" in caught.value.message
    assert "Intel/dpt-hybrid-midas" in caught.value.hint and "Model > Models" in caught.value.hint
    with pytest.raises(ModelError, match="Depth Anything V2 Small is not downloaded yet"):
        bare.generate(fast(depth_estimator=SMALL), photo)

    download(SMALL, DEFAULT_ESTIMATOR)
    assert bare.estimate_depth(photo, settings=DepthSettings(SMALL)).shape == (64, 96)
    # The downloaded DPT-hybrid stands in for the missing one: the demo's own weights, so the same depth.
    assert np.array_equal(bare.estimate_depth(photo), engine.estimate_depth(photo))
    assert bare.depth_source.resident.spec.name == DEFAULT_ESTIMATOR


def test_unknown_estimator_in_the_parameters_is_refused(engine, photo):
    from d2i_desktop.core.errors import ParamError

    with pytest.raises(ParamError, match="Unknown depth estimator 'midas-v9'"):
        engine.generate(fast(depth_estimator="midas-v9"), photo)


# -- the record and the settings text -------------------------------------------------------------------
def made_with(engine, make_photo, tmp_path, params, depth_path=None, name="out.png"):
    photo = make_photo(96, 64, seed=3)
    done = repaint(engine, params, photo, load_image(photo), depth_path, None, tmp_path / "out" / name)
    return done.saved[0]


def test_the_record_and_the_text_carry_the_estimator_and_read_back(engine, make_photo, tmp_path, download):
    download(SMALL)
    path, record = made_with(engine, make_photo, tmp_path, fast(depth_estimator=SMALL, depth_fine_detail=True))
    assert read_record(path) == record
    assert record["params"]["depth_estimator"] == SMALL and record["params"]["depth_fine_detail"] is True
    assert record["depth"]["origin"] == {"kind": "estimated", "estimator": SMALL, "fine_detail": True}
    fields = parse_parameters(read_parameters(path))
    assert fields["Depth estimator"] == "Depth Anything V2 Small" and fields["Depth fine detail"] == "True"

    found = read_settings(path)
    assert found.params.depth_settings == DepthSettings(SMALL, fine_detail=True)
    assert found.settings["depth map"] == "estimated with Depth Anything V2 Small, fine detail"
    from_text, notes = params_from_fields(fields, GenerationParams("x"))
    assert from_text.depth_settings == DepthSettings(SMALL, fine_detail=True) and notes == ["It was made with the model "
                                                                                            "'demo model (random weights)'."]
    unknown, notes = params_from_fields(fields | {"Depth estimator": "MiDaS v9"}, GenerationParams("x"))
    assert unknown.depth_estimator == DEFAULT_ESTIMATOR and "Depth estimator 'MiDaS v9' is not known here" in notes[0]


def test_old_records_and_default_pictures_read_as_dpt_hybrid(engine, make_photo, tmp_path):
    path, record = made_with(engine, make_photo, tmp_path, fast())
    assert record["depth"]["origin"] == {"kind": "estimated", "estimator": DEFAULT_ESTIMATOR, "fine_detail": False}
    assert not any(key.startswith("Depth") for key in parse_parameters(read_parameters(path)))
    old = record | {"params": {k: v for k, v in record["params"].items() if not k.startswith("depth_")},
                    "depth": {k: v for k, v in record["depth"].items() if k != "origin"}}
    levels = depth_levels(np.tile(np.linspace(0, 1, 96, dtype=np.float32), (64, 1)))
    older = save_with_record(Image.open(path), tmp_path / "old.png", read_parameters(path), old, levels)
    found = read_settings(older)
    assert found.params.depth_settings == DepthSettings() and found.settings["depth map"] == "not recorded"
    newer = save_with_record(Image.open(path), tmp_path / "newer.png", read_parameters(path),
                             record | {"params": record["params"] | {"depth_estimator": "midas-v9"}}, levels)
    found = read_settings(newer)
    assert found.params.depth_estimator == DEFAULT_ESTIMATOR and "'midas-v9' is not known here" in found.notes[0]


def test_a_map_from_a_file_or_edited_by_hand_names_no_estimator(engine, make_photo, tmp_path, photo):
    ramp = tmp_path / "ramp.npy"
    np.save(ramp, np.tile(np.linspace(0, 1, 96, dtype=np.float32), (64, 1)))
    path, record = made_with(engine, make_photo, tmp_path, fast(depth_estimator=SMALL), depth_path=ramp)
    assert record["depth"]["origin"] == {"kind": "file", "file": "ramp.npy"}
    assert record["params"]["depth_estimator"] == SMALL  # the setting stays; the map says what made it
    assert "Depth estimator" not in parse_parameters(read_parameters(path))
    assert read_settings(path).settings["depth map"] == "loaded from ramp.npy"
    edited = engine.generate(fast(depth_estimator=SMALL), photo, np.load(ramp), depth_origin=DepthOrigin.edited())
    assert edited.depth_origin.describe() == "edited by hand" and "Depth estimator" not in edited.parameters_text(0)


# -- Reproduce ----------------------------------------------------------------------------------------
def test_reproduce_estimates_again_with_the_recorded_estimator(engine, demo_model_dir, make_photo, tmp_path, download):
    download(SMALL)
    path, record = made_with(engine, make_photo, tmp_path, fast(depth_estimator=SMALL))
    depth_path_for(path).unlink()
    fresh = Engine(device="cpu")
    fresh.load(demo_model_dir)
    said = []
    again = reproduce(path, record, tmp_path / "again.png", say=said.append, engine=fresh)
    assert again.identical and again.changed == ()
    assert fresh.depth_source.resident.spec.name == SMALL
    assert any("missing: estimating it again (estimated with Depth Anything V2 Small)" in line for line in said)
    assert read_record(again.saved)["depth"]["origin"]["estimator"] == SMALL


def test_reproduce_uses_the_map_beside_the_picture_when_it_is_the_one_used(engine, make_photo, tmp_path, download,
                                                                          cache_dir):
    download(SMALL)
    path, record = made_with(engine, make_photo, tmp_path, fast(depth_estimator=SMALL))
    shutil.rmtree(cache_dir)  # the estimator is gone, and is not needed
    engine.unload()
    engine.load(record["model"]["source"])
    assert reproduce(path, record, tmp_path / "again.png", engine=engine).identical
    assert engine.depth_source.resident is None


def test_reproduce_names_the_estimator_it_cannot_have(engine, demo_model_dir, make_photo, tmp_path, download, cache_dir):
    download(SMALL)
    path, record = made_with(engine, make_photo, tmp_path, fast(depth_estimator=SMALL))
    depth_path_for(path).unlink()
    shutil.rmtree(cache_dir)
    fresh = Engine(device="cpu")
    fresh.load(demo_model_dir)
    again = reproduce(path, record, tmp_path / "again.png", engine=fresh)
    assert again.changed[0] == ("depth estimator: estimated with Depth Anything V2 Small then, estimated with "
                                "DPT-Hybrid (MiDaS) now (Depth Anything V2 Small is not downloaded yet)")
    assert any(line.startswith("depth map:") for line in again.changed)
    assert read_record(again.saved)["depth"]["origin"]["estimator"] == DEFAULT_ESTIMATOR
