"""The demo model: SD2-depth's architecture in miniature, with random weights.

It lets the app run and be tested with no download. Its pictures are noise, and
everything that uses it says so (see DEMO_LABEL).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

DEMO_LABEL = "demo model (random weights)"
DEMO_MARKER = "d2i_demo_model.json"


def _byte_level_alphabet() -> list[str]:
    # The printable stand-ins GPT-2/CLIP byte-level BPE uses for the 256 byte values.
    visible = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = [], 0
    for byte in range(256):
        if byte in visible:
            chars.append(chr(byte))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    return chars


def _write_tokenizer_files(folder: Path) -> None:
    """A valid CLIP BPE vocabulary of single characters (no merges learned)."""
    alphabet = _byte_level_alphabet()
    tokens = alphabet + [ch + "</w>" for ch in alphabet] + ["<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({tok: i for i, tok in enumerate(tokens)}), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")


def build_demo_pipeline(seed: int = 0):
    """Build the tiny pipeline in memory (the real StableDiffusionDepth2ImgPipeline class)."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionDepth2ImgPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer, DPTConfig, DPTForDepthEstimation, DPTImageProcessor

    with tempfile.TemporaryDirectory() as tmp:
        _write_tokenizer_files(Path(tmp))
        tokenizer = CLIPTokenizer(str(Path(tmp) / "vocab.json"), str(Path(tmp) / "merges.txt"), model_max_length=77)

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=32,
        in_channels=5,  # 4 latent channels + 1 depth channel: what makes it a depth model
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        norm_num_groups=8,
    )
    vae = AutoencoderKL(
        block_out_channels=(8, 16, 16, 16),  # four blocks: latents at 1/8 of the image, as in SD
        layers_per_block=1,
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=64,
    )
    text_encoder = CLIPTextModel(CLIPTextConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        hidden_size=32,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        vocab_size=len(tokenizer),
        max_position_embeddings=77,
    ))
    depth_estimator = DPTForDepthEstimation(DPTConfig(
        image_size=32,
        patch_size=16,
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=37,
        backbone_out_indices=(0, 1, 2, 3),
        is_hybrid=True,  # DPT-Hybrid (ResNet/BiT + ViT), the MiDaS variant SD2-depth ships with
        backbone_config={
            "global_padding": "same",
            "layer_type": "bottleneck",
            "depths": [1, 1, 1],
            "out_features": ["stage1", "stage2", "stage3"],
            "embedding_dynamic_padding": True,
            "hidden_sizes": [16, 32, 64, 128],
            "num_groups": 2,
        },
        backbone_featmap_shape=[1, 64, 2, 2],
        neck_hidden_sizes=[16, 32, 64, 64],
        fusion_hidden_size=16,
        head_in_index=-1,
    ))
    feature_extractor = DPTImageProcessor(
        do_resize=True, size={"height": 32, "width": 32}, keep_aspect_ratio=False,
        do_normalize=True, image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5],
    )
    scheduler = DDIMScheduler(  # SD2-depth ships a DDIM config
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
        steps_offset=1, clip_sample=False, set_alpha_to_one=False,
    )
    return StableDiffusionDepth2ImgPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
        depth_estimator=depth_estimator, feature_extractor=feature_extractor,
    )


def make_demo_model(folder: str | Path) -> Path:
    """Build the demo pipeline and save it as a diffusers folder; returns the folder."""
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        if is_demo_model(folder):
            return folder
        from ..errors import ModelError
        raise ModelError(f"{folder} is not empty.", "Choose an empty or new folder for the demo model.")
    build_demo_pipeline().save_pretrained(folder, safe_serialization=True)
    (folder / DEMO_MARKER).write_text(json.dumps({"label": DEMO_LABEL}), encoding="utf-8")
    return folder


def is_demo_model(folder: str | Path) -> bool:
    return (Path(folder) / DEMO_MARKER).is_file()


def write_demo_lora(pipe, path: Path, rank: int = 2, seed: int = 0) -> Path:
    """A small random LoRA for `pipe` in the diffusers/peft layout (UNet attention and text-encoder projections)."""
    import torch
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(seed)
    state = {}
    for prefix, model, targets in (("unet.", pipe.unet, ("attn1.to_q", "attn2.to_v")),
                                   ("text_encoder.text_model.", pipe.text_encoder, ("self_attn.q_proj",))):
        for name, module in model.named_modules():
            name = name.removeprefix("text_model.")  # diffusers' LoRA layout names text-encoder layers under it
            if isinstance(module, torch.nn.Linear) and name.endswith(targets):
                state[f"{prefix}{name}.lora_A.weight"] = torch.randn(rank, module.in_features, generator=generator) * 0.1
                state[f"{prefix}{name}.lora_B.weight"] = torch.randn(module.out_features, rank, generator=generator) * 0.1
    save_file(state, str(path))
    return path


def write_demo_embedding(pipe, path: Path, vectors: int = 2, seed: int = 0) -> Path:
    """A random textual inversion for `pipe` in the diffusers layout ({token: vectors})."""
    import torch
    from safetensors.torch import save_file

    width = pipe.text_encoder.config.hidden_size
    save_file({f"<{path.stem}>": torch.randn(vectors, width, generator=torch.Generator().manual_seed(seed))}, str(path))
    return path
