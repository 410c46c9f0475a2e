"""Which Hugging Face Hub to talk to (the Hub itself or a mirror), what its answers mean, and a connection test.

The endpoint used is, in order: the one given (the command line's --endpoint, the dialog's field), the one
remembered in the app-data folder (hub.json), HF_ENDPOINT, then https://huggingface.co. Where the Hub is
blocked, a mirror such as https://hf-mirror.com serves the same API.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import ModelError
from ..files.app_data import locked, read_json
from ..paths import data_dir
from .catalogue import SD2_DEPTH_SOURCES

DEFAULT_ENDPOINT = "https://huggingface.co"
_CHUNK_BYTES = 1024 * 1024
_LOGIN_HINT = ("Accept the model's terms on its page if it has any, then log in with 'hf auth login' "
               "(or set HF_TOKEN) and try again.")


class DownloadError(ModelError):
    """A download or Hub request that failed, with why: "not-found", "offline", "login", "not-a-hub",
    "disk-full", "checksum", "wrong-kind" (not the kind of model asked for), "invalid" or "server"."""

    def __init__(self, reason: str, message: str, hint: str = ""):
        super().__init__(message, hint)
        self.reason = reason


# -- which endpoint --------------------------------------------------------------------------------
def normalize_endpoint(text: str) -> str:
    """An http(s) address without its trailing slash; DownloadError("invalid") for anything else."""
    address = (text or "").strip().rstrip("/")
    parts = urlsplit(address)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise DownloadError("invalid", f"'{text}' is not a web address of a Hugging Face Hub.",
                            "Give an http(s) address such as https://huggingface.co or https://hf-mirror.com.")
    return address


def _store() -> Path:
    return data_dir() / "hub.json"


def remembered_endpoint() -> str | None:
    data = read_json(_store(), "The Hub address", lambda d: isinstance(d, dict) and isinstance(d.get("endpoint"), str))
    try:
        return normalize_endpoint(data["endpoint"]) if data else None
    except DownloadError:
        return None


def remember_endpoint(endpoint: str | None) -> None:
    """Keep `endpoint` for the next downloads (None forgets it); written whole or not at all."""
    path = _store()
    with locked(path):
        if endpoint is None:
            path.unlink(missing_ok=True)
            return
        text = json.dumps({"endpoint": normalize_endpoint(endpoint)})
        temp = path.with_name(f".d2i-{secrets.token_hex(6)}.json.tmp")
        try:
            temp.write_text(text, encoding="utf-8")
            os.replace(temp, path)
        finally:
            temp.unlink(missing_ok=True)


def resolve_endpoint(given: str | None = None) -> str:
    """The endpoint a download uses: `given`, else the remembered one, else HF_ENDPOINT, else the Hub."""
    if given:
        return normalize_endpoint(given)
    if remembered := remembered_endpoint():
        return remembered
    return normalize_endpoint(os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT)


class _OnlineSwitch:
    """Online while any download or connection test runs (they may overlap in different threads)."""

    def __init__(self):
        self.lock, self.users, self.saved = threading.Lock(), 0, None

    @contextlib.contextmanager
    def __call__(self):
        from huggingface_hub import constants

        with self.lock:
            if self.users == 0:
                self.saved = constants.HF_HUB_OFFLINE, constants.DOWNLOAD_CHUNK_SIZE
                constants.HF_HUB_OFFLINE = False
                # The library reads 10 MB between progress updates; 1 MB keeps the bar moving and Cancel prompt.
                constants.DOWNLOAD_CHUNK_SIZE = min(self.saved[1], _CHUNK_BYTES)
            self.users += 1
        try:
            yield
        finally:
            with self.lock:
                self.users -= 1
                if self.users == 0:
                    constants.HF_HUB_OFFLINE, constants.DOWNLOAD_CHUNK_SIZE = self.saved


# The app keeps the hub library offline (core/__init__.py); downloads and the connection test go online here.
# The library reads the flag at each request, so switching it is enough.
hub_online = _OnlineSwitch()


# -- what its answers mean --------------------------------------------------------------------------
def _answers_json(response) -> bool:
    return "json" in response.headers.get("Content-Type", "") or bool(response.headers.get("X-Error-Code"))


def hub_error(exc: Exception, repo_id: str, endpoint: str) -> DownloadError:
    """One clear line for what went wrong talking to `endpoint` about `repo_id`."""
    import httpx2
    from huggingface_hub.errors import (
        DisabledRepoError, GatedRepoError, HfHubHTTPError, OfflineModeIsEnabled, RepositoryNotFoundError,
    )

    if isinstance(exc, DownloadError):
        return exc
    if isinstance(exc, (httpx2.TransportError, OfflineModeIsEnabled)):
        return DownloadError("offline", f"Cannot reach {endpoint}: the computer seems to be offline, or the address "
                                        "is wrong.",
                             "Check the connection (or the Hub mirror's address) and try again; what is already "
                             "downloaded is kept.")
    if isinstance(exc, GatedRepoError):
        return DownloadError("login", f"'{repo_id}' needs a login on {endpoint} (it is gated or private).", _LOGIN_HINT)
    if isinstance(exc, RepositoryNotFoundError):
        return DownloadError("not-found", f"'{repo_id}' was not found on {endpoint}.",
                             "Check the name (org/name); a private model needs 'hf auth login' first.")
    if isinstance(exc, DisabledRepoError):  # taken down: for the user, it is not there
        return DownloadError("not-found", f"'{repo_id}' is disabled on {endpoint}.", "Download it from another source.")
    if isinstance(exc, HfHubHTTPError) and exc.response is not None:
        status = exc.response.status_code
        if status in (401, 403):
            return DownloadError("login", f"{endpoint} refused access to '{repo_id}' ({status}): it needs a login, or "
                                          "the saved token lacks the right.", _LOGIN_HINT)
        if status == 404 and not _answers_json(exc.response):
            return _not_a_hub(endpoint)
        return DownloadError("server", f"The Hugging Face Hub at {endpoint} answered with an error ({status}).",
                             "Try again later; what is already downloaded is kept.")
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return DownloadError("disk-full", "The disk is full.",
                             "Free some space and download again; it resumes where it stopped.")
    text = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
    return DownloadError("server", f"The download failed: {text}", "Try again; it resumes where it stopped.")


def _not_a_hub(endpoint: str) -> DownloadError:
    return DownloadError("not-a-hub", f"{endpoint} answers, but it is not a Hugging Face Hub (no Hub API there).",
                         "Check the address: a mirror serves the Hub's API, e.g. https://hf-mirror.com.")


def fetch_model_info(repo_id: str, endpoint: str, *, revision: str = "main", token: str | None = None,
                     timeout: float | None = None):
    """The Hub's model info with each file's size and checksums; DownloadError when there is none to be had.

    Call inside hub_online().
    """
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HFValidationError, HfHubHTTPError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise DownloadError("invalid", f"'{repo_id}' is not a Hugging Face model id.",
                            "Give it as organisation/name, e.g. sd2-community/stable-diffusion-2-depth.") from exc
    try:
        info = HfApi(endpoint=endpoint, token=token).model_info(repo_id, revision=revision, files_metadata=True,
                                                                timeout=timeout)
    except HfHubHTTPError as exc:
        raise hub_error(exc, repo_id, endpoint) from exc
    except (ValueError, KeyError, TypeError) as exc:  # a 2xx answer that is not the Hub's JSON (a web page, a portal)
        raise _not_a_hub(endpoint) from exc
    except Exception as exc:  # the network, mostly
        raise hub_error(exc, repo_id, endpoint) from exc
    if not info.sha or info.siblings is None:
        raise _not_a_hub(endpoint)
    return info


# -- the connection test ----------------------------------------------------------------------------
@dataclass(frozen=True)
class EndpointCheck:
    endpoint: str
    outcome: str  # "reachable", "offline", "not-a-hub", "no-model", "login", "invalid" or "server"
    message: str  # one line for the user
    seconds: float | None = None  # the round trip of the successful request
    repo_id: str = ""  # the known source it has

    @property
    def ok(self) -> bool:
        return self.outcome == "reachable"


def check_endpoint(endpoint: str | None = None, timeout: float = 10.0,
                   repo_ids: tuple[str, ...] = tuple(s.repo_id for s in SD2_DEPTH_SOURCES)) -> EndpointCheck:
    """Ask the endpoint for the known SD2-depth sources' model info, in order, and say in one line how that went."""
    try:
        endpoint = resolve_endpoint(endpoint)
    except DownloadError as exc:
        return EndpointCheck(str(endpoint), exc.reason, exc.message)
    with hub_online():
        for repo_id in repo_ids:
            started = time.monotonic()
            try:
                fetch_model_info(repo_id, endpoint, timeout=timeout)
            except DownloadError as exc:
                if exc.reason == "not-found":
                    continue
                return EndpointCheck(endpoint, exc.reason, exc.message)
            seconds = time.monotonic() - started
            return EndpointCheck(endpoint, "reachable", f"{endpoint} is reachable ({seconds * 1000:.0f} ms) and has "
                                                        f"{repo_id}.", seconds, repo_id)
    return EndpointCheck(endpoint, "no-model", f"{endpoint} answers as a Hugging Face Hub but does not have "
                                               f"{' or '.join(repo_ids)}.")
