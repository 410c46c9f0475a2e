"""Models: what a source is (hub id, diffusers folder, cache entry, single file), checking it, loading it,
and the persistent list of models the user has set up.

Loading never touches the network: hub ids are resolved to their folder in the Hugging Face
cache, and everything is read with local_files_only.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from ..files.app_data import locked, read_json, sweep_stale_temporaries
from .catalogue import SD2_DEPTH_REPO
from .checkpoints import CHECKPOINT_SUFFIXES, build_parts_from_checkpoint, load_state_dict, require_sd2_depth, tensor_shapes
from .demo import is_demo_model
from ..errors import ModelError
from .full_size import SD2_DEPTH_CONFIG_DIR
from .hf_cache import cached_snapshot, find_depth_estimator, is_dpt_folder
from ..paths import data_dir

log = logging.getLogger(__name__)

REQUIRED_PARTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
_WEIGHT_SUFFIXES = (".safetensors", ".bin")
NO_DEPTH_ESTIMATOR_NOTE = ("This model has no depth estimator of its own: choose a downloaded one in the Depth "
                           "panel (Model > Models… downloads them), or load a depth map for each image.")
_REGISTRY_LOCK = threading.Lock()  # the GUI thread adds models while the worker thread records their use


# -- what a source is --------------------------------------------------------------------------
def source_kind(source: str | Path) -> str:
    """"single-file", "folder" or "hub"; raises ModelError when it is none of them."""
    text = str(source)
    path = Path(text).expanduser()
    if path.is_file():
        if path.suffix.lower() not in CHECKPOINT_SUFFIXES:
            raise ModelError(f"{path.name} is not a model file this app reads.",
                             "Pick a .safetensors or .ckpt checkpoint, or a diffusers model folder.")
        return "single-file"
    if path.is_dir():
        return "folder"
    if text.count("/") == 1 and not text.startswith((".", "/", "~")) and "\\" not in text and ":" not in text:
        return "hub"
    raise ModelError(f"No model found at '{text}'.", "Check the path, or use a Hugging Face id like org/name.")


class NotDownloaded(ModelError):
    """A hub id that is not in the Hugging Face cache (models are only downloaded on request)."""

    def __init__(self, repo: str):
        super().__init__(f"'{repo}' is not downloaded yet.", "Download it from the Models dialog (Model > Models…).")
        self.repo = repo


def normalized_source(source: str | Path) -> str:
    """How a source is stored in the model list: an absolute path for files and folders, a hub id as it is."""
    return str(source) if source_kind(source) == "hub" else str(Path(source).expanduser().resolve())


def resolve_folder(source: str | Path) -> Path:
    """The local diffusers folder behind a folder path, a cache repo folder or a cached hub id."""
    kind = source_kind(source)
    if kind == "hub":
        snapshot = cached_snapshot(str(source))
        if snapshot is None:
            raise NotDownloaded(str(source))
        return snapshot
    folder = Path(source).expanduser()
    if folder.name.startswith("models--") and (folder / "refs").is_dir():  # a repo folder of the cache itself
        snapshot = cached_snapshot(folder.name.removeprefix("models--").replace("--", "/"), cache_dir=folder.parent)
        if snapshot is not None:
            return snapshot
    return folder


def _read_json(path: Path, what: str) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{what} is unreadable or corrupt ({path}).", "Download or copy the model again.") from exc
    if not isinstance(data, dict):
        raise ModelError(f"{what} is corrupt ({path}).", "Download or copy the model again.")
    return data


def weights_variant(part: Path) -> str | None:
    """None for plain weight files, "fp16" (etc.) when only a variant is present; ModelError when there are none."""
    stems = [f.name[: -len(s)] for f in part.iterdir() for s in _WEIGHT_SUFFIXES if f.name.endswith(s)]
    if not stems:
        raise ModelError(f"The model folder has no weights for its {part.name.replace('_', ' ')} ({part}).",
                         "The download or copy is incomplete: get the model again.")
    if any("." not in stem for stem in stems):
        return None
    variants = {stem.split(".", 1)[1].split("-")[0] for stem in stems}  # model.fp16-00001-of-00002 -> fp16
    return "fp16" if "fp16" in variants else sorted(variants)[0]


@dataclass(frozen=True)
class FolderCheck:
    folder: Path
    variant: str | None
    has_depth_estimator: bool


def check_folder(folder: Path) -> FolderCheck:
    """Reject folders that are not complete SD2-depth diffusers models, with a message saying why."""
    index_file = folder / "model_index.json"
    if not index_file.is_file():
        raise ModelError(f"{folder} is not a diffusers model folder (it has no model_index.json).",
                         "Pick the folder that holds model_index.json, unet/, vae/ and the other parts.")
    index = _read_json(index_file, "model_index.json")
    class_name = index.get("_class_name", "")
    if "XL" in class_name:
        raise ModelError(f"'{folder.name}' is an SDXL model ({class_name}); this app needs a Stable Diffusion 2 depth model.",
                         f"Use {SD2_DEPTH_REPO} or another SD2-depth model.")
    missing = [part for part in REQUIRED_PARTS if not (folder / part).is_dir()]
    if missing:
        raise ModelError(f"The model folder {folder.name} is missing {', '.join(missing)}.",
                         "The download or copy is incomplete: get the model again.")
    unet = _read_json(folder / "unet" / "config.json", "The UNet's config.json")
    in_channels, context = unet.get("in_channels"), unet.get("cross_attention_dim")
    if in_channels != 5:
        family = "Stable Diffusion 1.x " if context == 768 else ""
        raise ModelError(f"'{folder.name}' is a {family}text-to-image model, not a depth model: its UNet takes "
                         f"{in_channels} input channels, a depth model takes 5.",
                         f"Use {SD2_DEPTH_REPO} or another SD2-depth model.")
    variants = {part: weights_variant(folder / part) for part in ("unet", "vae", "text_encoder")}
    has_depth = (folder / "depth_estimator").is_dir() and index.get("depth_estimator", [None])[0] is not None
    if has_depth:
        variants["depth_estimator"] = weights_variant(folder / "depth_estimator")
    # diffusers falls back to plain files for parts that lack the variant
    return FolderCheck(folder, next((v for v in variants.values() if v), None), has_depth)


def folder_size(path: Path) -> int:
    """Bytes on disk, following the cache's links to its blobs."""
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


# -- the registry --------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelEntry:
    name: str
    source: str
    kind: str  # "demo", "folder", "hub", "single-file"
    size_bytes: int = 0
    last_used: float = 0.0  # seconds since the epoch; 0 = never
    config_dir: str = ""  # single files: the diffusers folder whose configs describe the checkpoint
    depth_estimator: str = ""  # single files: a DPT folder; empty = found automatically, or depth maps supplied


@dataclass
class ModelRegistry:
    """The user's models, kept as JSON in the app-data folder."""

    path: Path = field(default_factory=lambda: data_dir() / "models.json")

    def __post_init__(self):
        sweep_stale_temporaries(self.path.parent)

    def entries(self) -> list[ModelEntry]:
        raw = read_json(self.path, "The model list", _valid_model_list) or []
        return [ModelEntry(**{k: v for k, v in item.items() if k in ModelEntry.__dataclass_fields__}) for item in raw]

    def get(self, source: str) -> ModelEntry | None:
        names = _spellings(source)
        return next((e for e in self.entries() if e.source in names), None)

    def save(self, entry: ModelEntry) -> ModelEntry:
        with _REGISTRY_LOCK, locked(self.path):
            self._write([e for e in self.entries() if e.source != entry.source] + [entry])
        return entry

    def remove(self, source: str) -> None:
        with _REGISTRY_LOCK, locked(self.path):
            self._write([e for e in self.entries() if e.source not in _spellings(source)])

    def _write(self, entries: list[ModelEntry]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".models-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump([asdict(e) for e in entries], handle, indent=1)
        os.replace(tmp, self.path)


def _spellings(source: str | Path) -> set[str]:
    """A source as given and as an absolute path (entries added before paths were stored absolute)."""
    return {str(source), str(Path(source).expanduser().resolve())}


def _valid_model_list(data) -> bool:
    def valid(item) -> bool:
        return (isinstance(item, dict) and all(isinstance(item.get(key), str) for key in ("name", "source", "kind"))
                and all(isinstance(item.get(key, 0), (int, float)) for key in ("size_bytes", "last_used")))

    return isinstance(data, list) and all(valid(item) for item in data)


def describe(source: str | Path, config_dir: str | Path | None = None, depth_estimator: str | Path | None = None) -> ModelEntry:
    """Check a source as loading does (a pickle file is read safely) and describe it for the model list.

    Files and folders are described by their absolute paths, so the list works from any working folder.
    """
    kind = source_kind(source)
    source = normalized_source(source)
    if kind == "single-file":
        path = Path(source)
        require_sd2_depth(path, tensor_shapes(path))  # the header alone for safetensors; a refused pickle stops here
        if depth_estimator:
            _require_dpt_folder(depth_estimator)
        absolute = (lambda folder: str(Path(folder).expanduser().resolve()) if folder else "")
        return ModelEntry(path.stem, source, kind, path.stat().st_size,
                          config_dir=absolute(config_dir), depth_estimator=absolute(depth_estimator))
    folder = resolve_folder(source)
    check_folder(folder)
    if is_demo_model(folder):
        kind = "demo"
    name = source if kind == "hub" else folder.name
    return ModelEntry(name, source, kind, folder_size(folder))


def add_model(source: str | Path, config_dir: str | Path | None = None,
              depth_estimator: str | Path | None = None, registry: ModelRegistry | None = None) -> ModelEntry:
    """Check a model and remember it in the model list."""
    registry = registry or ModelRegistry()
    entry = describe(source, config_dir, depth_estimator)
    previous = registry.get(entry.source)
    return registry.save(replace(entry, last_used=previous.last_used) if previous else entry)


def _require_dpt_folder(folder: str | Path) -> None:
    if not is_dpt_folder(Path(folder)):
        raise ModelError(f"{folder} is not a DPT depth-estimator folder.",
                         "Pick a folder like Intel/dpt-hybrid-midas (config.json with model_type dpt), or none.")


def attach_depth_estimator(source: str | Path, folder: str | Path, registry: ModelRegistry | None = None) -> ModelEntry:
    """Give a single file in the model list the DPT folder `folder` as its depth estimator."""
    registry = registry or ModelRegistry()
    entry = registry.get(normalized_source(source))
    if entry is None or entry.kind != "single-file":
        raise ModelError(f"{source} is not a single checkpoint file in the model list.", "Add the file first.")
    _require_dpt_folder(folder)
    return registry.save(replace(entry, depth_estimator=str(Path(folder).expanduser().resolve())))


# -- loading ------------------------------------------------------------------------------------
def check_source(source: str | Path, local_files_only: bool = True) -> None:
    """The checks that need no weights: kind, folder completeness, the UNet's inputs, a safetensors header."""
    kind = source_kind(source)
    if kind == "single-file":
        path = Path(source).expanduser()
        if path.suffix.lower() == ".safetensors":
            require_sd2_depth(path, tensor_shapes(path))
    elif kind == "folder" or local_files_only or cached_snapshot(str(source)) is not None:
        check_folder(resolve_folder(source))


@dataclass(frozen=True)
class LoadedModel:
    pipe: object
    name: str
    is_demo: bool
    notes: tuple[str, ...] = ()


def load_pipeline(source: str | Path, dtype, local_files_only: bool = True,
                  config_dir: str | Path | None = None, depth_estimator: str | Path | None = None,
                  registry: ModelRegistry | None = None) -> LoadedModel:
    """Check and load any kind of source as a StableDiffusionDepth2ImgPipeline (on the CPU, in `dtype`)."""
    registry = registry or ModelRegistry()
    source = normalized_source(source)
    kind = source_kind(source)
    if kind == "single-file":
        entry = registry.get(source)
        config_dir = config_dir or (entry.config_dir if entry else "")
        depth_estimator = depth_estimator or (entry.depth_estimator if entry else "")
        loaded = _load_single_file(Path(source).expanduser(), dtype, config_dir or SD2_DEPTH_CONFIG_DIR, depth_estimator or None)
        remembered = ModelEntry(loaded.name, source, kind, Path(source).expanduser().stat().st_size,
                                config_dir=str(config_dir or ""), depth_estimator=str(depth_estimator or ""))
    elif kind == "hub" and not local_files_only and cached_snapshot(source) is None:
        loaded = _load_folder_or_id(source, source, None, True, dtype, local_files_only=False)
        remembered = ModelEntry(source, source, kind)
    else:
        check = check_folder(resolve_folder(source))
        name = source if kind == "hub" else check.folder.name
        loaded = _load_folder_or_id(str(check.folder), name, check.variant, check.has_depth_estimator, dtype)
        remembered = ModelEntry(name, source, "demo" if loaded.is_demo else kind, folder_size(check.folder))
    _remember(remembered, registry)
    return loaded


def _load_folder_or_id(where: str, name: str, variant, has_depth_estimator: bool, dtype,
                       local_files_only: bool = True) -> LoadedModel:
    from diffusers import StableDiffusionDepth2ImgPipeline

    extra = {} if has_depth_estimator else {"depth_estimator": None, "feature_extractor": None}
    try:
        pipe = StableDiffusionDepth2ImgPipeline.from_pretrained(
            where, dtype=dtype, variant=variant, local_files_only=local_files_only, **extra,
        )
    except (OSError, ValueError, RuntimeError) as exc:
        log.exception("model load failed")
        raise ModelError(f"Could not load the model '{name}': {str(exc).splitlines()[0][:200]}",
                         "Check that the folder is complete, or download the model again.") from exc
    in_channels = pipe.unet.config.in_channels
    if in_channels != 5:
        raise ModelError(f"'{name}' is a text-to-image model, not a depth model: its UNet takes {in_channels} input channels, "
                         "a depth model takes 5.", f"Use {SD2_DEPTH_REPO} or another SD2-depth model.")
    notes = () if has_depth_estimator else (NO_DEPTH_ESTIMATOR_NOTE,)
    return LoadedModel(pipe, name, Path(where).is_dir() and is_demo_model(where), notes)


def _load_single_file(path: Path, dtype, config_dir, depth_estimator) -> LoadedModel:
    """UNet, VAE and text encoder from the checkpoint; tokenizer and scheduler from the configs;
    the depth estimator from a DPT folder the user has (given, or found in the cache), else none."""
    from diffusers import DDIMScheduler, StableDiffusionDepth2ImgPipeline
    from transformers import CLIPTokenizer, DPTForDepthEstimation, DPTImageProcessor

    config_dir = Path(config_dir)
    state = load_state_dict(path)  # read once: for .ckpt files the shapes are only known after loading
    require_sd2_depth(path, {name: tuple(tensor.shape) for name, tensor in state.items()})
    parts = build_parts_from_checkpoint(state, config_dir)
    del state
    depth_folder = Path(depth_estimator) if depth_estimator else find_depth_estimator()
    notes = []
    estimator = processor = None
    if depth_folder is not None:
        try:
            estimator = DPTForDepthEstimation.from_pretrained(depth_folder, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ModelError(f"The depth estimator in {depth_folder} cannot be loaded.",
                             "Pick another DPT folder, or none and supply depth maps.") from exc
        processor_folder = next((f for f in (depth_folder, depth_folder.parent / "feature_extractor",
                                             config_dir / "feature_extractor", SD2_DEPTH_CONFIG_DIR / "feature_extractor")
                                 if (f / "preprocessor_config.json").is_file()))
        processor = DPTImageProcessor.from_pretrained(processor_folder)
        notes.append(f"Depth estimator: {depth_folder}")
    else:
        notes.append(NO_DEPTH_ESTIMATOR_NOTE)
    pipe = StableDiffusionDepth2ImgPipeline(
        **parts, depth_estimator=estimator, feature_extractor=processor,
        tokenizer=CLIPTokenizer.from_pretrained(config_dir, subfolder="tokenizer"),
        scheduler=DDIMScheduler.from_pretrained(config_dir, subfolder="scheduler"),
    )
    return LoadedModel(pipe.to(dtype=dtype), path.stem, False, tuple(notes))


def _remember(entry: ModelEntry, registry: ModelRegistry) -> None:
    try:
        registry.save(replace(entry, last_used=time.time()))
    except OSError:
        log.exception("could not record %s in the model list", entry.source)
