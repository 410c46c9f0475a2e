"""Reading LoRA and textual-inversion files safely, and telling what they are from names and shapes.

Nothing here touches a pipeline. `.safetensors` headers are read without loading
any weights; pickle-based `.pt`/`.bin`/`.ckpt` files are only opened with
`torch.load(weights_only=True)`, which refuses to run code.
"""

from __future__ import annotations

import hashlib
import pickle
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..models.checkpoints import SafetensorsDamage, load_pickle_weights, parse_safetensors
from ..errors import D2IError

SAFETENSORS = ".safetensors"
PICKLE_SUFFIXES = (".pt", ".bin", ".ckpt", ".pth")
WEIGHT_SUFFIXES = (SAFETENSORS, *PICKLE_SUFFIXES)
LORA, EMBEDDING = "LoRA", "embedding"

# Cross-attention / text-feature width -> the model family that uses it.
FAMILY_BY_WIDTH = {768: "SD 1.x", 1024: "SD 2.x", 2048: "SDXL", 1280: "SDXL"}
SDXL, TRANSFORMER = "SDXL", "Flux or SD3"

_KOHYA_KEY = re.compile(r"^lora_(unet|te|te1|te2|transformer)_(.+)\.(lora_down\.weight|lora_up\.weight|alpha)$")
_DIFFUSERS_KEY = re.compile(
    r"^(unet|text_encoder|text_encoder_2|transformer)\.(.+)\."
    r"(lora_A\.weight|lora_B\.weight|lora\.down\.weight|lora\.up\.weight|"
    r"lora_linear_layer\.down\.weight|lora_linear_layer\.up\.weight|alpha)$"
)
_OLD_PROCESSOR_KEY = re.compile(r"^(unet|text_encoder)\.(.+?)(?:\.processor)?\.(to_q|to_k|to_v|to_out)_lora\.(down|up)\.weight$")
_LYCORIS_MARKERS = ("hada_w1", "lokr_w1", "dora_scale", "lora_mid", "oft_blocks", ".diff")
_COMPONENTS = {"unet": "unet", "te": "text_encoder", "te1": "text_encoder", "te2": "text_encoder_2",
               "transformer": "transformer", "text_encoder": "text_encoder", "text_encoder_2": "text_encoder_2"}
_ROLES = {"lora_down.weight": "down", "lora_up.weight": "up", "lora_A.weight": "down", "lora_B.weight": "up",
          "lora.down.weight": "down", "lora.up.weight": "up", "lora_linear_layer.down.weight": "down",
          "lora_linear_layer.up.weight": "up", "alpha": "alpha"}
_TEXT_ENCODER_OLD_NAMES = {"to_q": "q_proj", "to_k": "k_proj", "to_v": "v_proj", "to_out": "out_proj"}
_UNET_OLD_NAMES = {"to_q": "to_q", "to_k": "to_k", "to_v": "to_v", "to_out": "to_out.0"}


class LibraryFileError(D2IError):
    """A LoRA or embedding file cannot be read or used."""


# -- reading ---------------------------------------------------------------------------
def read_safetensors_header(path: Path) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    """Tensor names -> shapes, and the `__metadata__` strings, without reading any weights.

    The header gets the same checks as a model's (entry count, byte ranges, overlaps, dtype and shape against size).
    """
    if path.stat().st_size == 0:
        raise LibraryFileError(f"{path.name} is empty.", "Download the file again.")
    try:
        entries, metadata = parse_safetensors(path)
    except SafetensorsDamage as damage:
        raise _corrupt(path, damage.why) from None
    return {name: shape for name, (_, shape) in entries.items()}, {str(k): str(v) for k, v in metadata.items()}


def load_weights(path: Path) -> object:
    """The file's contents: a dict of tensors (safetensors) or whatever a weights-only unpickler accepts."""
    path = Path(path)
    if path.suffix.lower() == SAFETENSORS:
        read_safetensors_header(path)  # clear messages for empty/truncated files
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise _corrupt(path, str(exc).splitlines()[0][:120]) from exc
    if path.suffix.lower() not in PICKLE_SUFFIXES:
        raise LibraryFileError(f"{path.name} is not a weights file the app reads.",
                               "Use .safetensors (best), .pt, .bin or .ckpt files.")
    if path.stat().st_size == 0:
        raise LibraryFileError(f"{path.name} is empty.", "Download the file again.")
    try:
        return load_pickle_weights(path)
    except pickle.UnpicklingError as exc:
        unsafe = getattr(exc, "unsafe", None)
        raise LibraryFileError(
            f"{path.name} holds code, not just weights{f' (it asks to run {unsafe[0]})' if unsafe else ''}; it was not loaded.",
            "Only use files from sources you trust; prefer the .safetensors version of this file.",
        ) from exc
    except (RuntimeError, EOFError, OSError, ValueError, struct.error) as exc:
        raise _corrupt(path, str(exc).splitlines()[0][:120] or type(exc).__name__) from exc


def _corrupt(path: Path, why: str) -> LibraryFileError:
    return LibraryFileError(f"{path.name} is damaged: {why}.", "Download the file again; it may be incomplete.")


# -- hashes ----------------------------------------------------------------------------
def sha256_file(path: Path, skip: int = 0) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as stream:
        stream.seek(skip)
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def short_hash(path: Path) -> str:
    """AUTOMATIC1111's short hash: for .safetensors the tensor data only (kohya's addnet hash), else the whole file."""
    path = Path(path)
    skip = 0
    if path.suffix.lower() == SAFETENSORS:
        with path.open("rb") as stream:
            skip = 8 + struct.unpack("<Q", stream.read(8))[0]
    return sha256_file(path, skip)[:12]


# -- LoRA layout -----------------------------------------------------------------------
@dataclass
class LoraModule:
    """One adapted layer: its component, its name as written in the file, and down/up/alpha values."""
    component: str
    raw_name: str
    kohya: bool  # raw_name uses '_' for '.', resolved against the model's module names
    parts: dict[str, object] = field(default_factory=dict)  # "down"/"up"/"alpha" -> tensor or shape


def is_lora_key(key: str) -> bool:
    return bool(_KOHYA_KEY.match(key) or _DIFFUSERS_KEY.match(key) or _OLD_PROCESSOR_KEY.match(key))


def lora_modules(items: dict[str, object], name: str) -> list[LoraModule]:
    """Group a LoRA's entries (tensors or shapes) by layer, whatever the layout; raise on what cannot be applied."""
    lycoris = next((key for key in items if any(marker in key for marker in _LYCORIS_MARKERS)), None)
    if lycoris:
        raise LibraryFileError(f"{name} is a LyCORIS file (LoHa/LoKr/DoRA: '{lycoris}'); the app applies plain LoRAs only.",
                               "Look for a plain LoRA version of it.")
    modules: dict[tuple[str, str], LoraModule] = {}
    for key, value in items.items():
        if match := _KOHYA_KEY.match(key):
            prefix, raw, role = match.groups()
            module = modules.setdefault((_COMPONENTS[prefix], raw), LoraModule(_COMPONENTS[prefix], raw, True))
        elif match := _OLD_PROCESSOR_KEY.match(key):
            component, parent, projection, role = match.groups()
            renamed = (_UNET_OLD_NAMES if component == "unet" else _TEXT_ENCODER_OLD_NAMES)[projection]
            raw = f"{parent}.{renamed}"
            module = modules.setdefault((component, raw), LoraModule(component, raw, False))
        elif match := _DIFFUSERS_KEY.match(key):
            component, raw, role = match.groups()
            module = modules.setdefault((component, raw), LoraModule(component, raw, False))
        else:
            continue
        module.parts[_ROLES.get(role, role)] = value
    incomplete = next((m for m in modules.values() if not {"down", "up"} <= m.parts.keys()), None)
    if incomplete:
        raise LibraryFileError(f"{name} is incomplete: layer '{incomplete.raw_name}' lacks its "
                               f"{'up' if 'down' in incomplete.parts else 'down'} weights.", "Download the file again.")
    return list(modules.values())


def _shape(value) -> tuple[int, ...]:
    return tuple(value.shape) if hasattr(value, "shape") else tuple(value)


def lora_base_model(modules: list[LoraModule]) -> str:
    """The model family a LoRA was made for, from its components and its layers' widths ('' if unknown)."""
    components = {m.component for m in modules}
    if "transformer" in components:
        return TRANSFORMER
    if "text_encoder_2" in components:
        return SDXL
    for module in modules:
        flat = module.raw_name.replace(".", "_")
        if module.component == "unet" and flat.endswith(("attn2_to_k", "attn2_to_v")):
            return family_of_width(_shape(module.parts["down"])[1])
    for module in modules:
        if module.component == "text_encoder" and module.raw_name.replace(".", "_").endswith("self_attn_q_proj"):
            return family_of_width(_shape(module.parts["down"])[1])
    return ""


def family_of_width(width: int) -> str:
    return FAMILY_BY_WIDTH.get(width, f"a {width}-wide model")


# -- embeddings ------------------------------------------------------------------------
def embedding_vectors(data, name: str) -> dict[str, object]:
    """Text-encoder part -> vectors (tensor or shape) for diffusers and AUTOMATIC1111 embedding layouts."""
    if isinstance(data, torch.Tensor):
        return {"clip_l": data}
    if not isinstance(data, dict) or not data:
        raise _neither(name)
    if "string_to_param" in data:  # AUTOMATIC1111 .pt
        params = data["string_to_param"]
        if not isinstance(params, dict) or not params:
            raise LibraryFileError(f"{name} is an AUTOMATIC1111 embedding without vectors.", "Download the file again.")
        return {"clip_l": params.get("*", next(iter(params.values())))}
    if "emb_params" in data:  # AUTOMATIC1111 .safetensors
        return {"clip_l": data["emb_params"]}
    if {"clip_g", "clip_l"} <= data.keys():  # SDXL: one set of vectors per text encoder
        return {"clip_l": data["clip_l"], "clip_g": data["clip_g"]}
    values = [v for v in data.values() if isinstance(v, (torch.Tensor, tuple))]
    if len(data) == 1 and values:  # diffusers: {"<token>": vectors}
        return {"clip_l": values[0]}
    raise _neither(name)


def embedding_shape(vectors: dict[str, object]) -> tuple[int, int]:
    """(number of vectors, vector width) of the first text encoder's part."""
    shape = _shape(vectors["clip_l"])
    if len(shape) == 1:
        return 1, shape[0]
    if len(shape) != 2 or 0 in shape:
        raise LibraryFileError(f"The embedding's vectors have an unexpected shape {list(shape)}.", "Download the file again.")
    return shape[0], shape[1]


def embedding_base_model(vectors: dict[str, object]) -> str:
    return SDXL if "clip_g" in vectors else family_of_width(embedding_shape(vectors)[1])


def _neither(name: str) -> LibraryFileError:
    return LibraryFileError(f"{name} is neither a LoRA nor an embedding.", "Check that it is a LoRA or textual-inversion file.")


# -- what a file is --------------------------------------------------------------------
@dataclass(frozen=True)
class FileFacts:
    kind: str  # LORA or EMBEDDING
    base_model: str  # "SD 1.x", "SD 2.x", "SDXL", ... or "" when the file does not tell
    metadata: dict[str, str]
    layers: int  # LoRA layers adapted, or embedding vectors


def inspect_file(path: Path) -> FileFacts:
    """What `path` holds, from names and shapes only (a safetensors header; small pickles are loaded safely)."""
    path = Path(path)
    if path.suffix.lower() == SAFETENSORS:
        data, metadata = read_safetensors_header(path)
    else:
        data, metadata = load_weights(path), {}
    items = data if isinstance(data, dict) else {}
    if any(is_lora_key(str(key)) for key in items):
        modules = lora_modules(items, path.name)
        return FileFacts(LORA, lora_base_model(modules) or base_from_metadata(metadata), metadata, len(modules))
    if isinstance(data, dict) and not data:
        raise LibraryFileError(f"{path.name} holds no tensors.", "Check that it is a LoRA or textual-inversion file.")
    vectors = embedding_vectors(data, path.name)
    return FileFacts(EMBEDDING, embedding_base_model(vectors), metadata, embedding_shape(vectors)[0])


def base_from_metadata(metadata: dict[str, str]) -> str:
    """The family named by kohya's `ss_base_model_version` / `ss_v2` or `modelspec.architecture`."""
    text = " ".join(metadata.get(key, "") for key in ("ss_base_model_version", "modelspec.architecture")).lower()
    if "xl" in text:
        return SDXL
    if "v2" in text or metadata.get("ss_v2", "").lower() == "true":
        return "SD 2.x"
    if "v1" in text or metadata.get("ss_v2", "").lower() == "false":
        return "SD 1.x"
    if "flux" in text or "sd3" in text:
        return TRANSFORMER
    return ""
