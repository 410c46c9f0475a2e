"""Single-file checkpoints: safe reading, recognising what a file is, and converting SD2-depth ones.

`.safetensors` headers are checked before anything in them is trusted. Pickle-based
files (`.ckpt`, `.pt`, `.pth`, `.bin`) are only ever read with `torch.load(weights_only=True)`,
which refuses to run code hidden in them.
"""

from __future__ import annotations

import json
import math
import pickle
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelError

SAFETENSORS_SUFFIXES = (".safetensors",)
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
CHECKPOINT_SUFFIXES = SAFETENSORS_SUFFIXES + PICKLE_SUFFIXES

_DTYPE_SIZES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
}
_MAX_HEADER_BYTES = 100 * 1024 * 1024  # the safetensors format's own limit
_MAX_ENTRIES = 200_000  # SD checkpoints hold ~1,200-2,600 tensors

LDM_UNET_PREFIX = "model.diffusion_model."
_UNET_INPUT_CONV = LDM_UNET_PREFIX + "input_blocks.0.0.weight"
_UNET_FIRST_CROSS_ATTENTION = LDM_UNET_PREFIX + "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"
_OPEN_CLIP_PREFIX = "cond_stage_model.model."
_TEXT_PROJECTION = _OPEN_CLIP_PREFIX + "text_projection"


def _refuse(path: Path, what: str, hint: str = "Pick an SD2-depth checkpoint such as 512-depth-ema.safetensors.") -> ModelError:
    return ModelError(f"{path.name}: {what}", hint)


# -- safetensors --------------------------------------------------------------------------
class SafetensorsDamage(Exception):
    """A safetensors file whose header does not describe its contents; `why` completes "the file is damaged: …"."""

    def __init__(self, why: str):
        super().__init__(why)
        self.why = why


def parse_safetensors(path: str | Path) -> tuple[dict[str, tuple[str, tuple[int, ...]]], dict]:
    """{name: (dtype, shape)} and the `__metadata__` table, after checking the header against the file.

    Used for models, LoRAs and embeddings alike. Raises SafetensorsDamage; a header with an implausible
    number of entries is refused before it is parsed, so a hostile one costs no time or memory.
    """
    path = Path(path)
    size = path.stat().st_size
    with path.open("rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise SafetensorsDamage("it is empty or truncated (no safetensors header)")
        header_len = struct.unpack("<Q", prefix)[0]
        if header_len < 2 or header_len > _MAX_HEADER_BYTES or 8 + header_len > size:
            raise SafetensorsDamage(f"its header is larger than the file (a corrupt safetensors header claiming "
                                    f"{header_len:,} bytes in a {size:,}-byte file)")
        raw = _read_header(handle, header_len)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise SafetensorsDamage("its header is not valid JSON (corrupt safetensors header)") from None
    if not isinstance(header, dict):
        raise SafetensorsDamage("corrupt safetensors header (not a table of tensors)")
    metadata = header.pop("__metadata__", None)
    if len(header) > _MAX_ENTRIES:
        raise SafetensorsDamage(f"implausible safetensors header ({len(header):,} tensors)")

    data_size = size - 8 - header_len
    entries, ranges = {}, []
    for name, entry in header.items():
        try:
            dtype, shape, (begin, end) = entry["dtype"], entry["shape"], entry["data_offsets"]
            valid = (dtype in _DTYPE_SIZES and isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape)
                     and isinstance(begin, int) and isinstance(end, int) and 0 <= begin <= end)
        except (TypeError, KeyError, ValueError):
            valid = False
        if not valid:
            raise SafetensorsDamage(f"corrupt safetensors header (bad entry for '{name[:80]}')")
        if end > data_size:
            raise SafetensorsDamage(f"it is truncated: tensor '{name[:80]}' ends at byte {end:,} of a {data_size:,}-byte "
                                    "data section")
        if end - begin != math.prod(shape) * _DTYPE_SIZES[dtype]:
            raise SafetensorsDamage(f"corrupt safetensors header: the byte range of '{name[:80]}' does not match its shape {shape}")
        entries[name] = (dtype, tuple(shape))
        ranges.append((begin, end))
    ranges.sort()
    for (_, previous_end), (begin, _) in zip(ranges, ranges[1:]):
        if begin < previous_end:
            raise SafetensorsDamage("corrupt safetensors header: tensors overlap")
    return entries, metadata if isinstance(metadata, dict) else {}


def _read_header(handle, length: int) -> bytes:
    """The header's bytes, refused as soon as they hold more entries than any real file (before parsing them)."""
    key, chunks, entries, tail, left = b'"data_offsets"', [], 0, b"", length
    while left > 0 and (chunk := handle.read(min(1 << 20, left))):
        left -= len(chunk)
        entries += (tail + chunk).count(key)  # the tail is too short to hold a whole key: nothing counts twice
        if entries > _MAX_ENTRIES:
            raise SafetensorsDamage(f"implausible safetensors header (more than {_MAX_ENTRIES:,} tensors)")
        chunks.append(chunk)
        tail = chunk[-(len(key) - 1):]
    return b"".join(chunks)


def read_safetensors_header(path: str | Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """{name: (dtype, shape)} of a model file; raises ModelError if it is damaged."""
    try:
        return parse_safetensors(path)[0]
    except SafetensorsDamage as damage:
        raise _refuse(Path(path), f"{damage.why}.", "Download or copy the file again.") from None


# -- loading --------------------------------------------------------------------------------
def load_state_dict(path: str | Path) -> dict:
    """All tensors of a checkpoint on the CPU. Pickle files are read with weights_only=True, never more."""
    import torch

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in SAFETENSORS_SUFFIXES:
        read_safetensors_header(path)
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception as exc:  # the header passed our checks; anything else is damage deeper in the file
            raise _refuse(path, f"the file cannot be read ({str(exc).splitlines()[0][:120]}).", "Download or copy the file again.") from exc
    if suffix not in PICKLE_SUFFIXES:
        raise _refuse(path, f"'{suffix or 'no extension'}' is not a checkpoint format this app reads.",
                      "Use a .safetensors file (preferred) or a .ckpt.")
    try:
        state = load_pickle_weights(path)
    except pickle.UnpicklingError as exc:
        raise _refuse(path, f"the file asks to run code or build objects beyond plain weights{_asked_for(exc)}, so it was refused.",
                      "Use the .safetensors version of this model, which cannot carry code.") from exc
    except (RuntimeError, EOFError, ValueError, OSError) as exc:
        raise _refuse(path, "the file is corrupt or truncated.", "Download or copy the file again.") from exc
    while isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise _refuse(path, "the file holds no table of weights.", "Pick a Stable Diffusion checkpoint file.")
    return state


# What numpy numbers and arrays (e.g. a global_step many training tools store beside the weights) unpickle with.
_NUMPY_DATA = re.compile(r"numpy\.(_?core\.multiarray\.(scalar|_reconstruct)|dtype|ndarray|dtypes\.\w+DType)")


def _numpy_data_globals() -> list:
    import numpy as np

    multiarray = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray
    dtypes = [getattr(np.dtypes, name) for name in dir(np.dtypes) if name.endswith("DType") and name != "ObjectDType"]
    return [multiarray.scalar, multiarray._reconstruct, np.ndarray, np.dtype, *dtypes]


def load_pickle_weights(path: str | Path) -> object:
    """torch.load with weights_only=True, also accepting numpy numbers and arrays (plain data, no code).

    Raises pickle.UnpicklingError with `unsafe`: the globals it asks for that are not plain data.
    """
    import torch

    try:
        return torch.load(str(path), map_location="cpu", weights_only=True, mmap=False)
    except pickle.UnpicklingError as exc:
        try:
            needed = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
        except Exception:  # noqa: BLE001 - not even listable: refuse with the original error
            needed = []
        exc.unsafe = [name for name in needed if not _NUMPY_DATA.fullmatch(name)]
        if exc.unsafe or not needed:
            raise
    with torch.serialization.safe_globals(_numpy_data_globals()):
        return torch.load(str(path), map_location="cpu", weights_only=True, mmap=False)


def _asked_for(exc: Exception) -> str:
    unsafe = getattr(exc, "unsafe", None)
    return f" ({', '.join(unsafe[:3])})" if unsafe else ""


def tensor_shapes(path: str | Path) -> dict[str, tuple[int, ...]]:
    """Names and shapes: from the header alone for safetensors, by loading safely for pickle files."""
    path = Path(path)
    if path.suffix.lower() in SAFETENSORS_SUFFIXES:
        return {name: shape for name, (_, shape) in read_safetensors_header(path).items()}
    return {name: tuple(t.shape) for name, t in load_state_dict(path).items()}


# -- recognising ----------------------------------------------------------------------------
@dataclass(frozen=True)
class CheckpointKind:
    family: str  # "sd2", "sd1", "sdxl", "lora", "diffusers-part", "unknown"
    unet_in_channels: int | None = None

    @property
    def is_sd2_depth(self) -> bool:
        return self.family == "sd2" and self.unet_in_channels == 5

    def describe(self) -> str:
        if self.family == "sd2":
            return {5: "an SD2 depth checkpoint", 9: "an SD2 inpainting checkpoint",
                    4: "an SD2 text-to-image checkpoint"}.get(self.unet_in_channels, "an SD2 checkpoint")
        return {
            "sd1": "a Stable Diffusion 1.x checkpoint", "sdxl": "an SDXL checkpoint", "lora": "a LoRA, not a full model",
            "diffusers-part": "a single part of a diffusers model (not a whole checkpoint)",
        }.get(self.family, "not a Stable Diffusion checkpoint")


def classify(shapes: dict[str, tuple[int, ...]]) -> CheckpointKind:
    """What a checkpoint in the original (LDM) layout is, from its tensor names and shapes."""
    if any(k.startswith(("lora_unet_", "lora_te_")) or ".lora_down." in k or ".lora_A." in k for k in shapes):
        return CheckpointKind("lora")
    if any(k.startswith(("conditioner.embedders.", LDM_UNET_PREFIX + "label_emb.")) for k in shapes):
        return CheckpointKind("sdxl")
    conv_in = shapes.get(_UNET_INPUT_CONV)
    if conv_in is None:
        if "conv_in.weight" in shapes or "encoder.conv_in.weight" in shapes or any(k.startswith("text_model.") for k in shapes):
            return CheckpointKind("diffusers-part")
        return CheckpointKind("unknown")
    in_channels = conv_in[1] if len(conv_in) == 4 else None
    cross = shapes.get(_UNET_FIRST_CROSS_ATTENTION)
    if any(k.startswith(_OPEN_CLIP_PREFIX) for k in shapes) or (cross is not None and cross[-1] == 1024):
        return CheckpointKind("sd2", in_channels)
    if any(k.startswith("cond_stage_model.transformer.") for k in shapes) or (cross is not None and cross[-1] == 768):
        return CheckpointKind("sd1", in_channels)
    return CheckpointKind("unknown", in_channels)


def require_sd2_depth(path: str | Path, shapes: dict[str, tuple[int, ...]]) -> None:
    kind = classify(shapes)
    if kind.is_sd2_depth:
        return
    path = Path(path)
    if kind.family == "sd2" and kind.unet_in_channels == 4:
        raise _refuse(path, "this is a text-to-image model (its UNet takes 4 input channels; a depth model takes 5).")
    raise _refuse(path, f"this is {kind.describe()}; this app needs a Stable Diffusion 2 depth model.")


# -- converting -------------------------------------------------------------------------------
def build_parts_from_checkpoint(state: dict, config_dir: str | Path) -> dict:
    """UNet, VAE and text encoder built from `config_dir` and filled from an LDM-layout state dict.

    The key conversion is diffusers' own single-file code; every weight must find its place.
    """
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.loaders.single_file_utils import (
        convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint, convert_open_clip_checkpoint,
    )
    from transformers import CLIPTextConfig, CLIPTextModel

    config_dir = Path(config_dir)
    unet_config = UNet2DConditionModel.load_config(config_dir / "unet")
    vae_config = AutoencoderKL.load_config(config_dir / "vae")
    with init_empty_weights():
        unet = UNet2DConditionModel.from_config(unet_config)
        vae = AutoencoderKL.from_config(vae_config)
        text_encoder = CLIPTextModel(CLIPTextConfig.from_pretrained(config_dir / "text_encoder"))
    converted = {
        "unet": (unet, convert_ldm_unet_checkpoint(state, dict(unet.config))),
        "vae": (vae, convert_ldm_vae_checkpoint(state, dict(vae.config))),
        "text_encoder": (text_encoder, convert_open_clip_checkpoint(text_encoder, state)),
    }
    parts = {}
    for name, (model, weights) in converted.items():
        expected = set(model.state_dict())
        # diffusers names text-encoder weights "text_model.*"; transformers 5 dropped that prefix
        weights = {k if k in expected else k.removeprefix("text_model."): v for k, v in weights.items()}
        missing = sorted(expected - set(weights))
        if missing:
            raise ModelError(f"The checkpoint lacks {len(missing)} weights of the {name.replace('_', ' ')} (e.g. {missing[0]}).",
                             "The file is incomplete or not an SD2-depth checkpoint.")
        try:
            model.load_state_dict({k: v for k, v in weights.items() if k in expected}, strict=True, assign=True)
        except RuntimeError as exc:
            raise ModelError(f"The checkpoint's {name.replace('_', ' ')} does not match the SD2-depth layout.",
                             "Use an SD2-depth checkpoint, or give the config folder that matches it.") from exc
        parts[name] = model.eval()
    return parts
