"""Which Hub a download talks to, remembering a mirror, and the connection test, against local servers."""

import json

import pytest

from d2i_desktop.core.models.catalogue import SD2_DEPTH_REPO, SD2_DEPTH_SOURCES
from d2i_desktop.core.models.downloads import download_model, download_sd2_depth
from d2i_desktop.core.models.hf_cache import repo_folder
from d2i_desktop.core.models.hub_endpoint import (
    DEFAULT_ENDPOINT, DownloadError, check_endpoint, remember_endpoint, remembered_endpoint, resolve_endpoint,
)
from local_hub import closed_port_endpoint, DEMO_REPO, HtmlSite, LocalHub



@pytest.mark.parametrize("text", ["hf-mirror.com", "ftp://hf-mirror.com", "", "https://", "https://hf-mirror.com/?x=1"])
def test_an_endpoint_that_is_not_a_web_address_is_refused_in_one_line(text):
    with pytest.raises(DownloadError, match="is not a web address") as raised:
        resolve_endpoint(text or " ")
    assert raised.value.reason == "invalid" and "https://hf-mirror.com" in raised.value.hint


def test_the_endpoint_given_then_the_remembered_one_then_hf_endpoint_then_the_hub(isolated_data_dir, monkeypatch):
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    assert resolve_endpoint() == DEFAULT_ENDPOINT
    monkeypatch.setenv("HF_ENDPOINT", "https://hub.example.org/")
    assert resolve_endpoint() == "https://hub.example.org"
    remember_endpoint("https://hf-mirror.com/")
    assert json.loads((isolated_data_dir / "hub.json").read_text()) == {"endpoint": "https://hf-mirror.com"}
    assert [p.name for p in isolated_data_dir.iterdir() if p.name.startswith(".d2i-")] == []  # no temporary left
    assert remembered_endpoint() == resolve_endpoint() == "https://hf-mirror.com"
    assert resolve_endpoint("http://127.0.0.1:8080/") == "http://127.0.0.1:8080"
    remember_endpoint(None)
    assert remembered_endpoint() is None and resolve_endpoint() == "https://hub.example.org"


def test_a_damaged_remembered_endpoint_is_kept_aside_and_not_used(isolated_data_dir, monkeypatch):
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    isolated_data_dir.mkdir()
    (isolated_data_dir / "hub.json").write_text('{"endpoint": ', encoding="utf-8")  # a half-written file
    assert resolve_endpoint() == DEFAULT_ENDPOINT
    assert [p.name for p in isolated_data_dir.iterdir() if p.name.startswith("hub.json.corrupt-")]


def test_a_download_goes_to_the_remembered_mirror_not_to_hf_endpoint(mirror_hub, cache_dir, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", closed_port_endpoint())
    remember_endpoint(mirror_hub.endpoint)
    source, snapshot = download_sd2_depth()
    assert source.repo_id == SD2_DEPTH_REPO and (snapshot / "model_index.json").is_file()
    assert [path for method, path, _ in mirror_hub.requests if f"/{SD2_DEPTH_REPO}/resolve/" in path]


def test_the_endpoint_given_is_the_one_requested(mirror_hub, cache_dir, monkeypatch):
    other = closed_port_endpoint()
    monkeypatch.setenv("HF_ENDPOINT", other)
    remember_endpoint(other)
    download_model(SD2_DEPTH_REPO, endpoint=mirror_hub.endpoint + "/")
    assert ("HEAD" in {method for method, _, _ in mirror_hub.requests}
            and all(path.startswith((f"/api/models/{SD2_DEPTH_REPO}/", f"/{SD2_DEPTH_REPO}/resolve/"))
                    for _, path, _ in mirror_hub.requests))


@pytest.mark.parametrize("status", [200, 404])  # a portal page, a web site without the Hub's API
def test_a_web_site_that_is_not_a_hub_is_named_so(status, cache_dir):
    site = HtmlSite(status).start()
    try:
        check = check_endpoint(site.endpoint, timeout=5)
        with pytest.raises(DownloadError) as raised:
            download_model(SD2_DEPTH_REPO, endpoint=site.endpoint)
    finally:
        site.stop()
    assert check.outcome == "not-a-hub" and not check.ok
    assert check.message == f"{site.endpoint} answers, but it is not a Hugging Face Hub (no Hub API there)."
    assert raised.value.reason == "not-a-hub" and raised.value.message == check.message
    assert site.requests[0].startswith(f"/api/models/{SD2_DEPTH_REPO}")
    assert not repo_folder(SD2_DEPTH_REPO, cache_dir).exists()


def test_the_connection_test_says_reachable_with_the_round_trip(mirror_hub):
    check = check_endpoint(mirror_hub.endpoint)
    assert check.ok and check.repo_id == SD2_DEPTH_REPO and 0 < check.seconds < 10
    assert check.message == (f"{mirror_hub.endpoint} is reachable ({check.seconds * 1000:.0f} ms) "
                             f"and has {SD2_DEPTH_REPO}.")


def test_the_connection_test_finds_a_mirror_that_keeps_only_the_withdrawn_id(demo_model_dir):
    withdrawn = SD2_DEPTH_SOURCES[-1].repo_id
    hub = LocalHub(withdrawn, demo_model_dir).start()
    try:
        check = check_endpoint(hub.endpoint)
    finally:
        hub.stop()
    assert check.ok and check.repo_id == withdrawn


def test_the_connection_test_says_when_the_model_is_missing_or_nothing_answers(hub):
    missing = check_endpoint(hub.endpoint)
    assert missing.outcome == "no-model" and SD2_DEPTH_REPO in missing.message and hub.endpoint in missing.message
    assert check_endpoint(hub.endpoint, repo_ids=(DEMO_REPO,)).ok
    endpoint = closed_port_endpoint()
    offline = check_endpoint(endpoint, timeout=5)
    assert offline.outcome == "offline" and offline.message.startswith(f"Cannot reach {endpoint}")
    invalid = check_endpoint("hf-mirror.com")
    assert invalid.outcome == "invalid" and "'hf-mirror.com' is not a web address" in invalid.message


def test_the_connection_test_leaves_the_hub_library_offline(mirror_hub):
    from huggingface_hub import constants

    assert constants.HF_HUB_OFFLINE  # the app's setting (core/__init__.py)
    assert check_endpoint(mirror_hub.endpoint).ok
    assert constants.HF_HUB_OFFLINE


def test_overlapping_downloads_and_checks_keep_the_hub_library_online_until_the_last_ends():
    from huggingface_hub import constants

    from d2i_desktop.core.models.hub_endpoint import hub_online

    with hub_online():
        with hub_online():  # e.g. a connection test while a download runs in another thread
            assert not constants.HF_HUB_OFFLINE
        assert not constants.HF_HUB_OFFLINE  # the download is still running
    assert constants.HF_HUB_OFFLINE
