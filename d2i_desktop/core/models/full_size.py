"""The full-size SD2-depth architecture from the bundled configs, with random weights.

Same shapes and FLOPs as stabilityai/stable-diffusion-2-depth, so speed and memory
figures measured with it hold for the real model. Its pictures are noise.
The bundled folder is also the configuration used to read single-file checkpoints.
"""

from __future__ import annotations

from pathlib import Path

SD2_DEPTH_CONFIG_DIR = Path(__file__).resolve().parents[2] / "resources" / "sd2_depth"
FULL_SIZE_LABEL = "full-size SD2-depth (random weights)"


def load_tokenizer(config_dir: str | Path = SD2_DEPTH_CONFIG_DIR):
    """SD2's CLIP BPE tokenizer (49,408 tokens), read from the bundled files."""
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(str(config_dir), subfolder="tokenizer")


def build_components(config_dir: str | Path = SD2_DEPTH_CONFIG_DIR,
                     parts=("unet", "vae", "text_encoder", "depth_estimator")) -> dict:
    """Instantiate the named parts from `config_dir` with freshly initialised weights (fp32, current device)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, DPTConfig, DPTForDepthEstimation

    config_dir = Path(config_dir)
    builders = {
        "unet": lambda: UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(config_dir / "unet")),
        "vae": lambda: AutoencoderKL.from_config(AutoencoderKL.load_config(config_dir / "vae")),
        "text_encoder": lambda: CLIPTextModel(CLIPTextConfig.from_pretrained(config_dir / "text_encoder")),
        "depth_estimator": lambda: DPTForDepthEstimation(DPTConfig.from_pretrained(config_dir / "depth_estimator")),
    }
    return {name: builders[name]() for name in parts}


def build_full_size_pipeline(dtype=None, device: str = "cpu", seed: int = 0):
    """A StableDiffusionDepth2ImgPipeline of full size with random weights, on `device` in `dtype`."""
    import torch
    from diffusers import DDIMScheduler, StableDiffusionDepth2ImgPipeline
    from transformers import DPTImageProcessor

    dtype = dtype or torch.float32
    torch.manual_seed(seed)
    with torch.device(device):  # initialising on the GPU takes seconds instead of a minute on the CPU
        parts = build_components()
    pipe = StableDiffusionDepth2ImgPipeline(
        **parts,
        tokenizer=load_tokenizer(),
        scheduler=DDIMScheduler.from_pretrained(SD2_DEPTH_CONFIG_DIR, subfolder="scheduler"),
        feature_extractor=DPTImageProcessor.from_pretrained(SD2_DEPTH_CONFIG_DIR, subfolder="feature_extractor"),
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device=device, dtype=dtype)
