"""The depth estimators the app offers: what each is, where it lives on the Hub, its licence and its output.

Checked on their Hugging Face pages: licences and the size of one set of weights. No torch here, so that
menus and the command line can list the choice cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ModelError

OUTPUTS = ("relative-inverse", "metric", "affine-depth")  # inverse depth up to scale and shift; metres; 0 near .. 1 far


@dataclass(frozen=True)
class EstimatorSpec:
    name: str  # the key used on the command line and in records, e.g. "depth-anything-v2-small"
    label: str
    repo_id: str  # its Hugging Face repo
    licence: str
    commercial_use: bool  # False for non-commercial licences: the UI shows them as non-commercial
    size_bytes: int  # its download (one set of weights), approximate
    output: str  # one of OUTPUTS: what the raw model output is
    library: str  # "transformers" | "diffusers"
    note: str  # one line for the UI: what it is good at


_SPECS = (
    EstimatorSpec("dpt-hybrid", "DPT-Hybrid (MiDaS)", "Intel/dpt-hybrid-midas", "Apache-2.0", True, 490_000_000,
                  "relative-inverse", "transformers", "What SD2-depth was trained on: its pictures follow this depth best."),
    EstimatorSpec("depth-anything-v2-small", "Depth Anything V2 Small", "depth-anything/Depth-Anything-V2-Small-hf",
                  "Apache-2.0", True, 99_200_000, "relative-inverse", "transformers",
                  "Fast, with sharp edges and fine structures; small download."),
    EstimatorSpec("depth-anything-v2-base", "Depth Anything V2 Base", "depth-anything/Depth-Anything-V2-Base-hf",
                  "CC-BY-NC-4.0", False, 390_000_000, "relative-inverse", "transformers",
                  "More accurate than Small; non-commercial use only."),
    EstimatorSpec("depth-anything-v2-large", "Depth Anything V2 Large", "depth-anything/Depth-Anything-V2-Large-hf",
                  "CC-BY-NC-4.0", False, 1_340_000_000, "relative-inverse", "transformers",
                  "The most detailed Depth Anything; slower, non-commercial use only."),
    EstimatorSpec("zoedepth", "ZoeDepth", "Intel/zoedepth-nyu-kitti", "MIT", True, 1_380_000_000, "metric",
                  "transformers", "Metric depth in metres, tuned on rooms (NYU) and streets (KITTI)."),
    EstimatorSpec("depth-pro", "Depth Pro", "apple/DepthPro-hf", "Apple ML Research (apple-amlr)", False,
                  1_900_000_000, "metric", "transformers",
                  "Sharp metric depth at high resolution; research use only, large download."),
    EstimatorSpec("marigold", "Marigold Depth v1.1", "prs-eth/marigold-depth-v1-1", "OpenRAIL++", True, 2_600_000_000,
                  "affine-depth", "diffusers", "Diffusion-based: very fine detail, but slow (several denoising steps)."),
)
DEFAULT_ESTIMATOR = "dpt-hybrid"
ESTIMATORS: dict[str, EstimatorSpec] = {spec.name: spec for spec in _SPECS}  # display order, the default first


def estimator_spec(name: str) -> EstimatorSpec:
    spec = ESTIMATORS.get(name)
    if spec is None:
        raise ModelError(f"Unknown depth estimator '{name}'.", f"Choose one of: {', '.join(ESTIMATORS)}.")
    return spec


@dataclass(frozen=True)
class DepthSettings:
    estimator: str = DEFAULT_ESTIMATOR
    fine_detail: bool = False

    def validated(self) -> "DepthSettings":
        estimator_spec(self.estimator)
        return self

    def describe(self) -> str:
        """For records and the UI, e.g. "Depth Anything V2 Small, fine detail"."""
        label = estimator_spec(self.estimator).label
        return f"{label}, fine detail" if self.fine_detail else label
