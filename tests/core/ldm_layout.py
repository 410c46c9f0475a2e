"""Write a diffusers SD2-depth pipeline as one checkpoint in the original (LDM) layout.

The reverse of the single-file conversion, so tests can make the kind of file other tools
distribute (e.g. 512-depth-ema.safetensors) from the demo model's weights.
"""

from __future__ import annotations

import torch

_RESNET = [("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"), ("conv2", "out_layers.3"),
           ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection")]
_VAE_RESNET = [("conv_shortcut", "nin_shortcut")]
_VAE_ATTENTION = [("group_norm.", "norm."), ("to_q.", "q."), ("to_k.", "k."), ("to_v.", "v."), ("to_out.0.", "proj_out.")]


def _unet_prefixes(config) -> list[tuple[str, str]]:
    """(diffusers prefix, LDM prefix) pairs for a UNet of any depth and layers_per_block."""
    per = config.layers_per_block
    levels = len(config.block_out_channels)
    pairs = [("mid_block.attentions.0.", "middle_block.1."),
             ("mid_block.resnets.0.", "middle_block.0."), ("mid_block.resnets.1.", "middle_block.2.")]
    for i in range(levels):
        for j in range(per):
            pairs.append((f"down_blocks.{i}.resnets.{j}.", f"input_blocks.{(per + 1) * i + j + 1}.0."))
            pairs.append((f"down_blocks.{i}.attentions.{j}.", f"input_blocks.{(per + 1) * i + j + 1}.1."))
        pairs.append((f"down_blocks.{i}.downsamplers.0.conv.", f"input_blocks.{(per + 1) * (i + 1)}.0.op."))
        up_has_attention = "CrossAttn" in config.up_block_types[i]
        for j in range(per + 1):
            pairs.append((f"up_blocks.{i}.resnets.{j}.", f"output_blocks.{(per + 1) * i + j}.0."))
            pairs.append((f"up_blocks.{i}.attentions.{j}.", f"output_blocks.{(per + 1) * i + j}.1."))
        pairs.append((f"up_blocks.{i}.upsamplers.0.", f"output_blocks.{(per + 1) * i + per}.{2 if up_has_attention else 1}."))
    return pairs


def _unet_to_ldm(unet) -> dict:
    fixed = {"time_embedding.linear_1.": "time_embed.0.", "time_embedding.linear_2.": "time_embed.2.",
             "conv_in.": "input_blocks.0.0.", "conv_norm_out.": "out.0.", "conv_out.": "out.2."}
    prefixes = list(fixed.items()) + _unet_prefixes(unet.config)
    out = {}
    for key, value in unet.state_dict().items():
        prefix = next(p for p in prefixes if key.startswith(p[0]))
        rest = key[len(prefix[0]):]
        if ".resnets." in prefix[0]:
            for new, old in _RESNET:
                rest = rest.replace(new, old)
        out["model.diffusion_model." + prefix[1] + rest] = value
    return out


def _vae_to_ldm(vae) -> dict:
    levels = len(vae.config.block_out_channels)
    out = {}
    for key, value in vae.state_dict().items():
        new = key
        for part in ("encoder", "decoder"):
            new = new.replace(f"{part}.conv_norm_out.", f"{part}.norm_out.")
            new = new.replace(f"{part}.mid_block.attentions.0.", f"{part}.mid.attn_1.")
            for i in range(2):
                new = new.replace(f"{part}.mid_block.resnets.{i}.", f"{part}.mid.block_{i + 1}.")
        for i in range(levels):
            new = new.replace(f"encoder.down_blocks.{i}.resnets.", f"encoder.down.{i}.block.")
            new = new.replace(f"encoder.down_blocks.{i}.downsamplers.0.", f"encoder.down.{i}.downsample.")
            new = new.replace(f"decoder.up_blocks.{i}.resnets.", f"decoder.up.{levels - 1 - i}.block.")
            new = new.replace(f"decoder.up_blocks.{i}.upsamplers.0.", f"decoder.up.{levels - 1 - i}.upsample.")
        for old, replacement in _VAE_RESNET:
            new = new.replace(old, replacement)
        if ".mid.attn_1." in new:
            for old, replacement in _VAE_ATTENTION:
                new = new.replace(old, replacement)
            if value.ndim == 2:  # the original stores these projections as 1x1 convolutions
                value = value[:, :, None, None]
        out["first_stage_model." + new] = value
    return out


def _text_encoder_to_open_clip(text_encoder) -> dict:
    # transformers 5 names CLIPTextModel's weights without the "text_model." of earlier versions
    state = {k if k.startswith("text_model.") else "text_model." + k: v for k, v in text_encoder.state_dict().items()}
    prefix = "cond_stage_model.model."
    out = {
        prefix + "token_embedding.weight": state["text_model.embeddings.token_embedding.weight"],
        prefix + "positional_embedding": state["text_model.embeddings.position_embedding.weight"],
        prefix + "ln_final.weight": state["text_model.final_layer_norm.weight"],
        prefix + "ln_final.bias": state["text_model.final_layer_norm.bias"],
        prefix + "text_projection": torch.eye(text_encoder.config.hidden_size),
    }
    for i in range(text_encoder.config.num_hidden_layers):
        src, dst = f"text_model.encoder.layers.{i}.", f"{prefix}transformer.resblocks.{i}."
        for kind in ("weight", "bias"):
            out[dst + f"attn.in_proj_{kind}"] = torch.cat([state[src + f"self_attn.{p}_proj.{kind}"] for p in "qkv"])
            out[dst + f"attn.out_proj.{kind}"] = state[src + f"self_attn.out_proj.{kind}"]
            out[dst + f"ln_1.{kind}"] = state[src + f"layer_norm1.{kind}"]
            out[dst + f"ln_2.{kind}"] = state[src + f"layer_norm2.{kind}"]
            out[dst + f"mlp.c_fc.{kind}"] = state[src + f"mlp.fc1.{kind}"]
            out[dst + f"mlp.c_proj.{kind}"] = state[src + f"mlp.fc2.{kind}"]
    return out


def pipeline_to_ldm(pipe) -> dict:
    """One flat state dict: UNet, VAE and OpenCLIP text encoder under their original names."""
    state = {**_unet_to_ldm(pipe.unet), **_vae_to_ldm(pipe.vae), **_text_encoder_to_open_clip(pipe.text_encoder)}
    return {k: v.detach().contiguous().clone() for k, v in state.items()}
