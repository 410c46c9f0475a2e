"""LoRA mixes: several LoRAs at their weights saved as one LoRA file.

Each source is read and checked against the loaded model (core.adapters), so
kohya and diffusers layouts mix alike. Per layer the sources' low-rank factors
are stacked: down = [A1; A2], up = [w1·B1, w2·B2], whose product is
w1·B1·A1 + w2·B2·A2, exactly the sum the sources apply at their weights. The
file is written by diffusers' LoRA saving (`unet.` / `text_encoder.` keys,
lora_A / lora_B), with the sources and weights in its metadata, and is put
into the library at once.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Sequence

import torch
from safetensors.torch import save_file

from .adapters import Adapters, check_weight
from ..errors import ParamError
from .library import LORA, AlreadyInLibrary, Library, LibraryItem
from .lora_files import sha256_file

MIX_METADATA_KEY = "d2i.mix"  # JSON list of {"name", "sha256", "weight"}


def mix_layers(adapters: Adapters, sources: Sequence[tuple[LibraryItem, float]]) -> dict[str, dict[str, torch.Tensor]]:
    """{component: {layer.lora_A.weight: tensor, ...}} of the mix, float32."""
    down: dict[str, list[torch.Tensor]] = {}
    up: dict[str, list[torch.Tensor]] = {}
    for item, weight in sources:
        _, state = adapters.prepare_lora(item)
        for key, tensor in state.items():
            layer, role = key.rsplit(".lora_", 1)
            if role == "A.weight":
                down.setdefault(layer, []).append(tensor.float())
            else:
                up.setdefault(layer, []).append(tensor.float() * weight)
    layers: dict[str, dict[str, torch.Tensor]] = {"unet": {}, "text_encoder": {}}
    for layer in down:
        component, name = layer.split(".", 1)
        if component == "text_encoder":
            name = f"text_model.{name.removeprefix('text_model.')}"  # CLIP's layout, as other tools write it
        layers[component][f"{name}.lora_A.weight"] = torch.cat(down[layer], dim=0).contiguous()
        layers[component][f"{name}.lora_B.weight"] = torch.cat(up[layer], dim=1).contiguous()
    return layers


def export_mix(adapters: Adapters, sources: Sequence[tuple[str, float]], out: Path,
               library: Library | None = None) -> LibraryItem:
    """Write the mix of library LoRAs `sources` (name, weight) to `out`; returns it as a library item."""
    library = library or Library()
    if not sources:
        raise ParamError("A mix needs at least one LoRA.", "Name them with --lora name:weight.")
    out = Path(out)
    if out.suffix.lower() != ".safetensors":
        raise ParamError(f"{out.name}: a mix is written as a .safetensors file.", "Give the output a .safetensors name.")
    if out.exists():
        raise ParamError(f"{out} already exists.", "Choose another name; files are never overwritten.")
    items = [(library.find(name, LORA), check_weight(weight, name)) for name, weight in sources]
    layers = mix_layers(adapters, items)
    metadata = {"format": "pt", MIX_METADATA_KEY: json.dumps(
        [{"name": item.name, "sha256": sha256_file(item.path), "weight": weight} for item, weight in items])}
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as folder:  # written whole, then moved into place
        adapters.pipe.save_lora_weights(folder, unet_lora_layers=layers["unet"] or None,
                                        text_encoder_lora_layers=layers["text_encoder"] or None, weight_name=out.name,
                                        save_function=lambda state, path: save_file(state, path, metadata=metadata))
        Path(folder, out.name).replace(out)
    if any(out.resolve().parent == folder.resolve() for folder in library.folders()):
        return library.find(out.stem, LORA)
    try:
        return library.import_file(out)
    except AlreadyInLibrary as exc:  # written inside a folder the library scans
        return exc.item
