"""Model sources, checks and the model list: real folders, a real cache layout, real files."""

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from d2i_desktop.core.models import registry as models
from d2i_desktop.core.generation.engine import Engine
from d2i_desktop.core.errors import ModelError
from d2i_desktop.core.models.hf_cache import cached_snapshot, find_depth_estimator, scan_cached_models

COMMIT = "fedcba9876543210fedcba9876543210fedcba98"


def write_hub_cache(cache: Path, repo_id: str, folder: Path) -> Path:
    """Lay `folder` out as huggingface_hub does: blobs named by hash, snapshot links, refs/main."""
    storage = cache / ("models--" + repo_id.replace("/", "--"))
    for file in folder.rglob("*"):
        if file.is_file():
            blob = storage / "blobs" / hashlib.sha256(file.read_bytes()).hexdigest()
            blob.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(file, blob)
            pointer = storage / "snapshots" / COMMIT / file.relative_to(folder)
            pointer.parent.mkdir(parents=True, exist_ok=True)
            pointer.symlink_to(os.path.relpath(blob, pointer.parent))
    (storage / "refs").mkdir()
    (storage / "refs" / "main").write_text(COMMIT)
    return storage / "snapshots" / COMMIT


@pytest.fixture
def copy_of_demo(demo_model_dir, tmp_path):
    return Path(shutil.copytree(demo_model_dir, tmp_path / "demo-copy"))


def test_hub_library_is_offline_by_default():
    from huggingface_hub import constants

    assert os.environ["HF_HUB_OFFLINE"] == "1" and constants.is_offline_mode()


def test_a_model_in_the_hub_cache_is_found_and_loads_with_the_network_blocked(demo_model_dir, tmp_path, monkeypatch, no_network):
    cache = tmp_path / "hf-cache"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    snapshot = write_hub_cache(cache, "someone/sd2-depth-demo", demo_model_dir)
    write_hub_cache(cache, "someone/text-to-image", demo_model_dir)
    t2i = json.loads((cache / "models--someone--text-to-image/snapshots" / COMMIT / "unet/config.json").read_text())
    t2i_config = cache / "models--someone--text-to-image/snapshots" / COMMIT / "unet/config.json"
    t2i_config.unlink()
    t2i_config.write_text(json.dumps({**t2i, "in_channels": 4}))

    found = scan_cached_models(cache)
    assert [(m.repo_id, m.kind) for m in found] == [("someone/sd2-depth-demo", "depth-model")]
    assert found[0].snapshot == snapshot and found[0].size_bytes > 0
    assert cached_snapshot("someone/sd2-depth-demo") == snapshot
    assert find_depth_estimator(cache) == snapshot / "depth_estimator"

    info = Engine(device="cpu").load("someone/sd2-depth-demo")
    assert info.name == "someone/sd2-depth-demo" and info.is_demo
    entry = models.ModelRegistry().get("someone/sd2-depth-demo")
    assert entry.kind == "demo" and entry.last_used > 0 and entry.size_bytes > 0


def test_a_hub_id_that_is_not_downloaded_says_so(tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(ModelError, match="not downloaded yet"):
        Engine(device="cpu").load("stabilityai/stable-diffusion-2-depth")


def test_the_model_list_persists_and_records_use(demo_model_dir, isolated_data_dir):
    registry = models.ModelRegistry()
    entry = models.add_model(demo_model_dir)
    assert entry.kind == "demo" and entry.last_used == 0 and entry.size_bytes > 1_000_000
    assert (isolated_data_dir / "models.json").is_file()
    Engine(device="cpu").load(demo_model_dir)
    reread = models.ModelRegistry().entries()
    assert len(reread) == 1 and reread[0].last_used > 0
    registry.remove(str(demo_model_dir))
    assert models.ModelRegistry().entries() == []


def test_a_corrupt_model_list_does_not_stop_the_app(isolated_data_dir):
    isolated_data_dir.mkdir(parents=True, exist_ok=True)
    (isolated_data_dir / "models.json").write_text("{not json")
    assert models.ModelRegistry().entries() == []


def test_text_to_image_model_is_rejected_before_the_loaded_model_is_released(demo_engine, copy_of_demo):
    config = json.loads((copy_of_demo / "unet/config.json").read_text())
    (copy_of_demo / "unet/config.json").write_text(json.dumps({**config, "in_channels": 4}))
    before = demo_engine.pipe
    with pytest.raises(ModelError, match="text-to-image model.*4 input channels") as raised:
        demo_engine.load(copy_of_demo)
    assert "SD2-depth" in raised.value.hint
    assert demo_engine.pipe is before


def test_sd1_folder_is_named_as_such(copy_of_demo):
    config = json.loads((copy_of_demo / "unet/config.json").read_text())
    (copy_of_demo / "unet/config.json").write_text(json.dumps({**config, "in_channels": 4, "cross_attention_dim": 768}))
    with pytest.raises(ModelError, match="Stable Diffusion 1.x text-to-image"):
        models.check_source(copy_of_demo)


def test_sdxl_folder_is_rejected(copy_of_demo):
    index = json.loads((copy_of_demo / "model_index.json").read_text())
    (copy_of_demo / "model_index.json").write_text(json.dumps({**index, "_class_name": "StableDiffusionXLPipeline"}))
    with pytest.raises(ModelError, match="SDXL"):
        models.check_source(copy_of_demo)


def test_missing_parts_and_missing_weights_are_named(copy_of_demo):
    shutil.rmtree(copy_of_demo / "vae")
    with pytest.raises(ModelError, match="missing vae"):
        models.check_source(copy_of_demo)
    shutil.copytree(copy_of_demo / "unet", copy_of_demo / "vae")
    for weights in (copy_of_demo / "vae").glob("*.safetensors"):
        weights.unlink()
    with pytest.raises(ModelError, match="no weights for its vae"):
        models.check_source(copy_of_demo)


def test_a_folder_without_model_index_and_a_missing_path(tmp_path):
    with pytest.raises(ModelError, match="no model_index.json"):
        models.check_source(tmp_path)
    with pytest.raises(ModelError, match="No model found"):
        models.check_source(tmp_path / "nowhere" / "model")


def test_fp16_variant_folders_load(demo_model_dir, tmp_path):
    folder = tmp_path / "fp16-only"
    for file in demo_model_dir.rglob("*"):
        if file.is_file():
            target = folder / file.relative_to(demo_model_dir)
            if file.suffix == ".safetensors":
                target = target.with_name(target.stem + ".fp16.safetensors")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(file, target)
    check = models.check_folder(folder)
    assert check.variant == "fp16" and check.has_depth_estimator
    assert Engine(device="cpu").load(folder).is_demo


def test_a_folder_without_depth_estimator_loads_and_asks_for_depth_maps(copy_of_demo):
    shutil.rmtree(copy_of_demo / "depth_estimator")
    shutil.rmtree(copy_of_demo / "feature_extractor")
    engine = Engine(device="cpu")
    info = engine.load(copy_of_demo)
    assert engine.pipe.depth_estimator is None and models.NO_DEPTH_ESTIMATOR_NOTE in info.notes


def test_switching_models_frees_the_previous_one(demo_model_dir, copy_of_demo):
    import gc
    import weakref

    engine = Engine(device="cpu")
    engine.load(demo_model_dir)
    previous_unet = weakref.ref(engine.pipe.unet)
    engine.load(copy_of_demo)
    gc.collect()
    assert previous_unet() is None and engine.info.source == str(copy_of_demo)
