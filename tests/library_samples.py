"""Real LoRA and embedding files for the demo model (and for models it is not), written the way tools in the wild write them."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

UNET_TARGETS = ("attn1.to_q", "attn1.to_v", "attn2.to_k", "attn2.to_v", "attn2.to_out.0")
TEXT_TARGETS = ("self_attn.q_proj", "self_attn.v_proj", "self_attn.out_proj")


def _layers(model, targets):
    """The linear layers named by `targets`, also once LoRA layers wrap them (as `<name>.base_layer`)."""
    layers = ((name.removesuffix(".base_layer"), module) for name, module in model.named_modules())
    return [(name, module) for name, module in layers if isinstance(module, torch.nn.Linear) and name.endswith(targets)]


def lora_state(pipe, layout: str = "peft", seed: int = 0, rank: int = 4, scale: float = 0.5,
               unet: bool = True, text_encoder: bool = True) -> dict[str, torch.Tensor]:
    """A LoRA for `pipe` with random weights, in the diffusers/peft or the kohya layout."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    parts = ([("unet", pipe.unet, UNET_TARGETS)] if unet else []) + \
            ([("text_encoder", pipe.text_encoder, TEXT_TARGETS)] if text_encoder else [])
    for component, model, targets in parts:
        for name, module in _layers(model, targets):
            down = torch.randn(rank, module.in_features, generator=generator) * scale
            up = torch.randn(module.out_features, rank, generator=generator) * scale
            if layout == "peft":
                # diffusers writes the text encoder's layers under the older `text_model.` prefix
                prefix = f"{component}.text_model." if component == "text_encoder" else f"{component}."
                state[f"{prefix}{name}.lora_A.weight"] = down
                state[f"{prefix}{name}.lora_B.weight"] = up
            else:
                kohya = {"unet": "lora_unet_", "text_encoder": "lora_te_text_model_"}[component] + name.replace(".", "_")
                state[f"{kohya}.lora_down.weight"] = down
                state[f"{kohya}.lora_up.weight"] = up
                state[f"{kohya}.alpha"] = torch.tensor(float(rank))
    return state


def write_lora(path: Path, state: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(path), metadata=metadata)
    return path


def sd1_lora(rank: int = 4) -> dict[str, torch.Tensor]:
    """Kohya-layout LoRA layers as an SD 1.x LoRA has them (768-wide text features, 320-wide first block)."""
    unet = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k"
    text = "lora_te_text_model_encoder_layers_0_self_attn_q_proj"
    return {f"{unet}.lora_down.weight": torch.zeros(rank, 768), f"{unet}.lora_up.weight": torch.zeros(320, rank),
            f"{unet}.alpha": torch.tensor(1.0),
            f"{text}.lora_down.weight": torch.zeros(rank, 768), f"{text}.lora_up.weight": torch.zeros(768, rank)}


def sdxl_lora(rank: int = 4) -> dict[str, torch.Tensor]:
    """Diffusers-layout LoRA layers as an SDXL LoRA has them (a second text encoder, 2048-wide context)."""
    unet = "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k"
    text = "text_encoder_2.text_model.encoder.layers.0.self_attn.q_proj"
    return {f"{unet}.lora_A.weight": torch.zeros(rank, 2048), f"{unet}.lora_B.weight": torch.zeros(640, rank),
            f"{text}.lora_A.weight": torch.zeros(rank, 1280), f"{text}.lora_B.weight": torch.zeros(1280, rank)}


def embedding_vectors(count: int = 2, width: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.randn(count, width, generator=torch.Generator().manual_seed(seed))


def write_diffusers_embedding(path: Path, vectors: torch.Tensor, token: str = "<concept>") -> Path:
    """The diffusers textual-inversion layout: {token: vectors}."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".safetensors":
        save_file({token: vectors.contiguous()}, str(path))
    else:
        torch.save({token: vectors}, path)
    return path


def write_a1111_embedding(path: Path, vectors: torch.Tensor) -> Path:
    """AUTOMATIC1111's layouts: a pickled dict with `string_to_param`, or safetensors `emb_params`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".safetensors":
        save_file({"emb_params": vectors.contiguous()}, str(path))
    else:
        torch.save({"string_to_token": {"*": 265}, "string_to_param": {"*": torch.nn.Parameter(vectors)},
                    "name": path.stem, "step": 1500, "sd_checkpoint": "a1b2c3d4", "sd_checkpoint_name": "v2-1_768"}, path)
    return path


class Payload:
    """Unpickling this creates `marker`: the proof that a file ran code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def write_pickle_payload(path: Path, marker: Path) -> Path:
    """An embedding-looking .pt whose unpickling would run code."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"string_to_param": {"*": torch.zeros(1, 32)}, "hook": Payload(marker)}, path)
    return path
