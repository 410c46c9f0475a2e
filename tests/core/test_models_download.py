"""Downloads through huggingface_hub from a local stand-in for the Hub (tests cannot reach the internet)."""

import socket
import threading

import pytest

from d2i_desktop.core.models.downloads import DownloadProgress, RemoteFile, download_model, select_files
from d2i_desktop.core.generation.engine import Engine
from d2i_desktop.core.errors import Cancelled, ModelError
from d2i_desktop.core.models.hf_cache import cached_snapshot, scan_cached_models
from local_hub import COMMIT, DEMO_REPO as REPO

def test_download_fills_the_cache_the_way_the_hub_library_does_and_loads_offline(hub, cache_dir):
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


def test_progress_reports_speed_and_time_left(hub, cache_dir):
    hub.delay_per_piece = 0.002
    seen: list[DownloadProgress] = []
    download_model(REPO, endpoint=hub.endpoint, on_progress=seen.append)
    moving = [p for p in seen if 0 < p.done_bytes < p.total_bytes]
    assert moving and all(a.done_bytes <= b.done_bytes for a, b in zip(seen, seen[1:]))
    assert any(p.bytes_per_second > 0 and p.seconds_left is not None for p in moving)
    assert " of " in moving[-1].text() and "/s" in moving[-1].text()


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

    hub.requests.clear()
    snapshot = download_model(REPO, endpoint=hub.endpoint)
    assert ("GET", f"/{REPO}/resolve/{COMMIT}/{big}", f"bytes={kept}-") in hub.requests
    assert (snapshot / big).read_bytes() == hub.files[big]
    assert not partial.exists()


def test_server_error_and_no_connection_give_clear_messages(hub, cache_dir):
    hub.fail_with = 500
    with pytest.raises(ModelError, match=r"answered with an error \(500\)"):
        download_model(REPO, endpoint=hub.endpoint)
    with socket.socket() as probe:  # a port on which nothing listens
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    with pytest.raises(ModelError, match="offline") as raised:
        download_model(REPO, endpoint=f"http://127.0.0.1:{closed_port}")
    assert "kept" in raised.value.hint


def test_unknown_repository_is_reported(hub, cache_dir):
    with pytest.raises(ModelError, match="not found"):
        download_model("example/nothing-here", endpoint=hub.endpoint)


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


def test_a_full_disk_is_reported_before_downloading(hub, cache_dir, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))  # a full disk cannot be made here
    with pytest.raises(ModelError, match="Not enough disk space") as raised:
        download_model(REPO, endpoint=hub.endpoint)
    assert "Free some space" in raised.value.hint
    assert not [r for r in hub.requests if "/resolve/" in r[1]]
