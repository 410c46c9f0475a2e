"""Downloads through huggingface_hub from a local stand-in for the Hub (tests cannot reach the internet)."""

import hashlib
import json
import shutil
import threading
from pathlib import Path

import pytest

from d2i_desktop.core.errors import Cancelled, ModelError
from d2i_desktop.core.models.catalogue import SD2_DEPTH_REPO, SD2_DEPTH_SOURCES
from d2i_desktop.core.models.downloads import (
    DownloadProgress, RemoteFile, download_model, download_repo, download_sd2_depth, select_files,
)
from d2i_desktop.core.models.hf_cache import cached_snapshot, repo_folder, scan_cached_models
from d2i_desktop.core.models.hub_endpoint import DownloadError
from local_hub import closed_port_endpoint, COMMIT, DEMO_REPO as REPO, LocalHub

WITHDRAWN = SD2_DEPTH_SOURCES[-1].repo_id
UNET_WEIGHTS = "unet/diffusion_pytorch_model.safetensors"



def assert_nothing_usable_left(repo_id: str, cache_dir: Path) -> None:
    """No snapshot link and no branch ref: the cache offers nothing of a download that failed."""
    storage = repo_folder(repo_id, cache_dir)
    assert not (storage / "refs").exists()
    assert not [p for p in (storage / "snapshots").rglob("*") if not p.is_dir()]
    assert cached_snapshot(repo_id, cache_dir=cache_dir) is None and scan_cached_models(cache_dir) == []


def test_download_fills_the_cache_the_way_the_hub_library_does_and_loads_offline(hub, cache_dir):
    from d2i_desktop.core.generation.engine import Engine

    seen: list[DownloadProgress] = []
    snapshot = download_model(REPO, endpoint=hub.endpoint, on_progress=seen.append)

    assert snapshot == cache_dir / f"models--{REPO.replace('/', '--')}" / "snapshots" / COMMIT
    assert cached_snapshot(REPO, cache_dir=cache_dir) == snapshot
    unet_file = snapshot / "unet" / "diffusion_pytorch_model.safetensors"
    assert unet_file.is_symlink() and unet_file.resolve().parent.name == "blobs"
    assert unet_file.read_bytes() == hub.files["unet/diffusion_pytorch_model.safetensors"]
    served = sum(len(d) for p, d in hub.files.items() if p != "d2i_demo_model.json")  # the app's marker is not a model file
    assert seen[-1].done_bytes == seen[-1].total_bytes == served
    assert not (snapshot / "d2i_demo_model.json").exists()
    assert [m.repo_id for m in scan_cached_models(cache_dir)] == [REPO]

    hub.stop()  # from here on, the model must load with no server at all
    info = Engine(device="cpu").load(REPO)
    assert info.name == REPO and info.source == REPO


def test_blobs_are_named_as_the_hub_library_names_them(hub, cache_dir):
    snapshot = download_model(REPO, endpoint=hub.endpoint)
    for path in ("unet/diffusion_pytorch_model.safetensors", "unet/config.json"):
        # weights: X-Linked-Etag, their sha256 (not the pointer's ETag); small files: ETag, their git blob id
        assert (snapshot / path).resolve().name == hub.etags[path]
    assert hub.etags[UNET_WEIGHTS] == hashlib.sha256(hub.files[UNET_WEIGHTS]).hexdigest()


def test_progress_reports_speed_and_time_left(hub, cache_dir):
    hub.delay_per_piece = 0.002
    seen: list[DownloadProgress] = []
    download_model(REPO, endpoint=hub.endpoint, on_progress=seen.append)
    moving = [p for p in seen if 0 < p.done_bytes < p.total_bytes and not p.checking]
    assert moving and all(a.done_bytes <= b.done_bytes for a, b in zip(seen, seen[1:]))
    assert any(p.bytes_per_second > 0 and p.seconds_left is not None for p in moving)
    assert " of " in moving[-1].text() and "/s" in moving[-1].text()


def test_checking_a_file_is_reported_and_can_be_cancelled(hub, cache_dir, monkeypatch):
    from d2i_desktop.core.models import downloads

    monkeypatch.setattr(downloads, "_HASH_CHUNK_BYTES", 4096)  # many pieces even for the demo's small files
    monkeypatch.setattr(downloads, "_REPORT_EVERY_S", 0.0)  # and each of them reported
    cancel = threading.Event()
    seen: list[DownloadProgress] = []

    def stop_while_checking_the_unet(progress: DownloadProgress):
        seen.append(progress)
        if progress.checking and progress.current_file == UNET_WEIGHTS:
            cancel.set()

    with pytest.raises(Cancelled):
        download_model(REPO, endpoint=hub.endpoint, on_progress=stop_while_checking_the_unet, cancel=cancel)
    assert seen[-1].text().endswith(f"checking {UNET_WEIGHTS}")
    partial = repo_folder(REPO, cache_dir) / "blobs" / f"{hub.etags[UNET_WEIGHTS]}.incomplete"
    assert partial.stat().st_size == len(hub.files[UNET_WEIGHTS])  # complete but unchecked: kept, not a blob yet
    assert_nothing_usable_left(REPO, cache_dir)

    hub.requests.clear()
    snapshot = download_model(REPO, endpoint=hub.endpoint)  # checked this time, not downloaded again
    assert not [r for r in hub.requests if r[0] == "GET" and r[1].endswith(UNET_WEIGHTS)]
    assert (snapshot / UNET_WEIGHTS).read_bytes() == hub.files[UNET_WEIGHTS] and not partial.exists()


def test_cancel_keeps_the_partial_file_and_the_next_download_resumes_it(hub, cache_dir, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 16384)  # small chunks, so a cancel lands mid-file
    hub.delay_per_piece = 0.001
    cancel = threading.Event()
    big = "unet/diffusion_pytorch_model.safetensors"

    def stop_inside_the_unet(progress: DownloadProgress):
        if progress.current_file == big and progress.done_bytes > 0:
            cancel.set()

    with pytest.raises(Cancelled):
        download_model(REPO, endpoint=hub.endpoint, on_progress=stop_inside_the_unet, cancel=cancel)
    partial = cache_dir / f"models--{REPO.replace('/', '--')}" / "blobs" / f"{hub.etags[big]}.incomplete"
    kept = partial.stat().st_size
    assert 0 < kept < len(hub.files[big])
    assert cached_snapshot(REPO, cache_dir=cache_dir) is None  # not usable until complete
    assert_nothing_usable_left(REPO, cache_dir)

    hub.requests.clear()
    snapshot = download_model(REPO, endpoint=hub.endpoint)
    assert ("GET", f"/{REPO}/resolve/{COMMIT}/{big}", f"bytes={kept}-") in hub.requests
    assert (snapshot / big).read_bytes() == hub.files[big]
    assert not partial.exists()


def test_server_error_and_no_connection_give_clear_messages(hub, cache_dir):
    hub.fail_with = 500
    with pytest.raises(ModelError, match=r"answered with an error \(500\)"):
        download_model(REPO, endpoint=hub.endpoint)
    endpoint = closed_port_endpoint()
    with pytest.raises(DownloadError, match="offline") as raised:
        download_model(REPO, endpoint=endpoint)
    assert raised.value.reason == "offline" and f"Cannot reach {endpoint}" in raised.value.message
    assert "kept" in raised.value.hint


def test_unknown_repository_is_reported(hub, cache_dir):
    with pytest.raises(ModelError, match="not found") as raised:
        download_model("example/nothing-here", endpoint=hub.endpoint)
    assert raised.value.reason == "not-found" and hub.endpoint in raised.value.message


def test_a_gated_repository_says_it_needs_a_login(hub, cache_dir):
    hub.first.gated = True
    with pytest.raises(DownloadError, match="needs a login") as raised:
        download_model(REPO, endpoint=hub.endpoint)
    assert raised.value.reason == "login" and "hf auth login" in raised.value.hint
    assert_nothing_usable_left(REPO, cache_dir)


def test_select_files_prefers_the_fp16_safetensors_and_skips_single_file_checkpoints():
    names = ["model_index.json", "512-depth-ema.ckpt", "512-depth-ema.safetensors", "README.md",
             "unet/config.json", "unet/diffusion_pytorch_model.bin", "unet/diffusion_pytorch_model.safetensors",
             "unet/diffusion_pytorch_model.fp16.safetensors", "unet/diffusion_pytorch_model.fp16.bin",
             "vae/config.json", "vae/diffusion_pytorch_model.bin", "tokenizer/vocab.json", "tokenizer/merges.txt",
             "scheduler/scheduler_config.json", "feature_extractor/preprocessor_config.json",
             "text_encoder/model.fp16.safetensors", "text_encoder/model.safetensors", "unet/diffusion_flax_model.msgpack"]
    chosen = [f.path for f in select_files([RemoteFile(n, 1) for n in names])]
    assert chosen == sorted(["model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.fp16.safetensors",
                             "vae/config.json", "vae/diffusion_pytorch_model.bin", "tokenizer/vocab.json",
                             "tokenizer/merges.txt", "scheduler/scheduler_config.json",
                             "feature_extractor/preprocessor_config.json", "text_encoder/model.fp16.safetensors"])


def test_select_files_takes_shards_with_their_index():
    names = ["model_index.json", "unet/config.json",
             "unet/diffusion_pytorch_model-00001-of-00002.safetensors",
             "unet/diffusion_pytorch_model-00002-of-00002.safetensors",
             "unet/diffusion_pytorch_model.safetensors.index.json",
             "unet/diffusion_pytorch_model.fp16-00001-of-00002.safetensors",
             "unet/diffusion_pytorch_model.fp16-00002-of-00002.safetensors",
             "unet/diffusion_pytorch_model.safetensors.index.fp16.json"]
    fp16 = [f.path for f in select_files([RemoteFile(n, 1) for n in names])]
    assert fp16 == ["model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.fp16-00001-of-00002.safetensors",
                    "unet/diffusion_pytorch_model.fp16-00002-of-00002.safetensors",
                    "unet/diffusion_pytorch_model.safetensors.index.fp16.json"]
    plain = [f.path for f in select_files([RemoteFile(n, 1) for n in names], variant=None)]
    assert plain == ["model_index.json", "unet/config.json", "unet/diffusion_pytorch_model-00001-of-00002.safetensors",
                     "unet/diffusion_pytorch_model-00002-of-00002.safetensors",
                     "unet/diffusion_pytorch_model.safetensors.index.json"]


def test_select_files_for_a_transformers_model_takes_one_set_of_weights_at_the_top():
    names = ["config.json", "preprocessor_config.json", "README.md", "model.safetensors", "pytorch_model.bin",
             "tf_model.h5", "onnx/model.onnx", "training_args.bin"]
    chosen = [f.path for f in select_files([RemoteFile(n, 1) for n in names], variant=None, kind="transformers")]
    assert chosen == ["config.json", "model.safetensors", "preprocessor_config.json"]
    without_safetensors = [RemoteFile(n, 1) for n in names if not n.endswith(".safetensors")]
    chosen = [f.path for f in select_files(without_safetensors, variant=None, kind="transformers")]
    assert chosen == ["config.json", "preprocessor_config.json", "pytorch_model.bin"]
    with pytest.raises(ValueError, match="unknown kind"):
        select_files([], kind="checkpoint")


def test_a_full_disk_is_reported_before_downloading(hub, cache_dir, monkeypatch):
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))  # a full disk cannot be made here
    with pytest.raises(ModelError, match="Not enough disk space") as raised:
        download_model(REPO, endpoint=hub.endpoint)
    assert "Free some space" in raised.value.hint and raised.value.reason == "disk-full"
    assert not [r for r in hub.requests if "/resolve/" in r[1]]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs Linux's /dev/full")
def test_a_disk_that_fills_up_during_the_transfer_is_reported(hub, cache_dir):
    blobs = repo_folder(REPO, cache_dir) / "blobs"
    blobs.mkdir(parents=True)
    # /dev/full answers every write with ENOSPC, as a full disk does: the kernel's error, not a stand-in for it
    (blobs / f"{hub.etags[UNET_WEIGHTS]}.incomplete").symlink_to("/dev/full")
    with pytest.raises(DownloadError, match="The disk is full") as raised:
        download_model(REPO, endpoint=hub.endpoint)
    assert raised.value.reason == "disk-full" and "resumes" in raised.value.hint
    assert_nothing_usable_left(REPO, cache_dir)


# -- where SD2-depth lives now ---------------------------------------------------------------------
def test_sd2_depth_comes_from_the_community_mirror_with_every_file_checked(mirror_hub, cache_dir):
    notes: list[str] = []
    source, snapshot = download_sd2_depth(endpoint=mirror_hub.endpoint, on_note=notes.append)
    assert source is SD2_DEPTH_SOURCES[0] and notes == []
    assert cached_snapshot(SD2_DEPTH_REPO, cache_dir=cache_dir) == snapshot
    for path, data in mirror_hub.files.items():
        if path != "d2i_demo_model.json":
            assert hashlib.sha256((snapshot / path).read_bytes()).digest() == hashlib.sha256(data).digest()
    assert all(f"/{SD2_DEPTH_REPO}/" in path for _, path, _ in mirror_hub.requests)  # the withdrawn id is not asked


@pytest.mark.parametrize("missing_status", [404, 401])  # 401 is what the Hub answers a request without a token
def test_a_source_the_hub_does_not_have_gives_a_note_and_the_next_is_tried(demo_model_dir, cache_dir, missing_status):
    notes: list[str] = []
    hub = LocalHub(SD2_DEPTH_REPO, demo_model_dir).start()
    hub.missing_status = missing_status
    try:
        source, snapshot = download_sd2_depth(tuple(reversed(SD2_DEPTH_SOURCES)), endpoint=hub.endpoint,
                                              on_note=notes.append)
    finally:
        hub.stop()
    assert source.repo_id == SD2_DEPTH_REPO and snapshot == cached_snapshot(SD2_DEPTH_REPO, cache_dir=cache_dir)
    assert notes == [f"{WITHDRAWN} was not found (withdrawn in November 2025) on {hub.endpoint}; "
                     f"trying {SD2_DEPTH_REPO}."]
    assert [path for method, path, _ in hub.requests if path.startswith(f"/api/models/{WITHDRAWN}/")]
    assert not repo_folder(WITHDRAWN, cache_dir).exists()


def test_a_mirror_that_still_keeps_the_withdrawn_repository_serves_it(demo_model_dir, cache_dir):
    notes: list[str] = []
    hub = LocalHub(WITHDRAWN, demo_model_dir).start()
    try:
        source, _ = download_sd2_depth(endpoint=hub.endpoint, on_note=notes.append)
    finally:
        hub.stop()
    assert source.repo_id == WITHDRAWN
    assert notes == [f"{SD2_DEPTH_REPO} was not found on {hub.endpoint}; trying {WITHDRAWN}."]


def test_no_source_found_names_every_one_tried(hub, cache_dir):
    notes: list[str] = []
    with pytest.raises(DownloadError) as raised:
        download_sd2_depth(endpoint=hub.endpoint, on_note=notes.append)
    assert raised.value.reason == "not-found" and len(notes) == 1
    assert SD2_DEPTH_REPO in raised.value.message and WITHDRAWN in raised.value.message
    assert "512-depth-ema.safetensors" in raised.value.hint


def test_an_error_other_than_not_found_stops_at_the_first_source(mirror_hub, cache_dir):
    mirror_hub.first.gated = True
    with pytest.raises(DownloadError) as raised:
        download_sd2_depth(endpoint=mirror_hub.endpoint)
    assert raised.value.reason == "login"
    assert not [r for r in mirror_hub.requests if WITHDRAWN in r[1]]


@pytest.mark.parametrize("damaged", [UNET_WEIGHTS, "unet/config.json"])
def test_a_file_that_differs_from_its_checksum_is_refused_and_not_kept(mirror_hub, cache_dir, damaged):
    mirror_hub.first.wrong_checksums.add(damaged)
    with pytest.raises(DownloadError) as raised:
        download_sd2_depth(endpoint=mirror_hub.endpoint)
    what = "sha256" if damaged == UNET_WEIGHTS else "git blob id"
    assert raised.value.reason == "checksum"
    assert raised.value.message == (f"The file {damaged} from {SD2_DEPTH_REPO} is damaged or was changed "
                                    f"({what} mismatch).")
    blobs = repo_folder(SD2_DEPTH_REPO, cache_dir) / "blobs"
    assert not [p for p in blobs.iterdir() if p.name.startswith(mirror_hub.etags[damaged])]
    assert_nothing_usable_left(SD2_DEPTH_REPO, cache_dir)
    assert not [r for r in mirror_hub.requests if WITHDRAWN in r[1]]  # a damaged file is no reason to try elsewhere

    mirror_hub.first.wrong_checksums.clear()  # the source is mended: the next download completes
    _, snapshot = download_sd2_depth(endpoint=mirror_hub.endpoint)
    assert (snapshot / damaged).read_bytes() == mirror_hub.files[damaged]


def test_a_hub_that_lists_no_checksums_is_refused(mirror_hub, cache_dir, monkeypatch):
    from local_hub import ServedRepo

    monkeypatch.setattr(ServedRepo, "sibling", lambda self, path: {"rfilename": path, "size": len(self.files[path])})
    with pytest.raises(DownloadError, match="lists no checksum for") as raised:
        download_sd2_depth(endpoint=mirror_hub.endpoint)
    assert raised.value.reason == "checksum"
    assert_nothing_usable_left(SD2_DEPTH_REPO, cache_dir)


# -- other kinds of repositories -------------------------------------------------------------------
def test_a_repository_without_model_index_is_not_taken_for_a_depth_model(hub, demo_model_dir, cache_dir, tmp_path):
    estimator = tmp_path / "estimator"
    shutil.copytree(demo_model_dir / "depth_estimator", estimator)
    hub.add_repo("someone/dpt-small", estimator)
    with pytest.raises(DownloadError, match=r"not a diffusers model \(it has no model_index.json\)") as raised:
        download_model("someone/dpt-small", endpoint=hub.endpoint)
    assert raised.value.reason == "wrong-kind" and SD2_DEPTH_REPO in raised.value.hint
    assert not [r for r in hub.requests if "/resolve/" in r[1]]
    assert not repo_folder("someone/dpt-small", cache_dir).exists()


def test_a_transformers_depth_estimator_downloads_and_loads(hub, demo_model_dir, cache_dir, tmp_path):
    from transformers import DPTForDepthEstimation, DPTImageProcessor

    estimator = tmp_path / "estimator"
    shutil.copytree(demo_model_dir / "depth_estimator", estimator)
    shutil.copy(demo_model_dir / "feature_extractor" / "preprocessor_config.json", estimator)
    (estimator / "README.md").write_text("A small DPT.", encoding="utf-8")
    hub.add_repo("someone/dpt-small", estimator)

    snapshot = download_repo("someone/dpt-small", kind="transformers", endpoint=hub.endpoint)
    assert sorted(p.name for p in snapshot.iterdir()) == ["config.json", "model.safetensors", "preprocessor_config.json"]
    assert cached_snapshot("someone/dpt-small", cache_dir=cache_dir) == snapshot
    assert isinstance(DPTForDepthEstimation.from_pretrained(snapshot, local_files_only=True), DPTForDepthEstimation)
    assert DPTImageProcessor.from_pretrained(snapshot, local_files_only=True).size == {"height": 32, "width": 32}

    with pytest.raises(DownloadError, match="not a transformers model"):
        download_repo(REPO, kind="transformers", endpoint=hub.endpoint)  # a diffusers pipeline has no weights at its top


def test_a_marigold_pipeline_downloads_but_is_not_taken_for_an_sd2_depth_model(hub, cache_dir, tmp_path):
    from diffusers import MarigoldDepthPipeline, UNet2DConditionModel

    from d2i_desktop.core.models.demo import build_demo_pipeline

    demo = build_demo_pipeline()
    unet = UNet2DConditionModel.from_config({**demo.unet.config, "in_channels": 8})  # image and depth latents, as Marigold's
    marigold = MarigoldDepthPipeline(unet=unet, vae=demo.vae, scheduler=demo.scheduler,
                                     text_encoder=demo.text_encoder, tokenizer=demo.tokenizer)
    folder = tmp_path / "marigold"
    marigold.save_pretrained(folder)
    marigold.save_pretrained(folder, variant="fp16")
    hub.add_repo("someone/marigold-small", folder)

    with pytest.raises(DownloadError, match="not a depth model: its UNet takes 8 input channels") as raised:
        download_model("someone/marigold-small", endpoint=hub.endpoint)
    assert raised.value.reason == "wrong-kind"
    assert not [r for r in hub.requests if r[1].endswith(".safetensors")]  # refused on its configs alone
    assert_nothing_usable_left("someone/marigold-small", cache_dir)

    snapshot = download_repo("someone/marigold-small", kind="pipeline", variant="fp16", endpoint=hub.endpoint)
    assert sorted(p.name for p in (snapshot / "unet").iterdir()) == ["config.json", "diffusion_pytorch_model.fp16.safetensors"]
    loaded = MarigoldDepthPipeline.from_pretrained(snapshot, variant="fp16", local_files_only=True)
    assert loaded.unet.config.in_channels == 8
    assert json.loads((snapshot / "model_index.json").read_text())["_class_name"] == "MarigoldDepthPipeline"
