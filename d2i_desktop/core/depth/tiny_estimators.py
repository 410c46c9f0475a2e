"""Tiny random-weight depth estimators of every architecture the app offers, saved as their Hub repos lay them out.

Each is the real transformers or diffusers class with a few hundred thousand weights, built here and written
with save_pretrained, so the self-test and the tests load it back through the app's real loading path. Their
depth is noise.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch


COMMIT = "fedcba9876543210fedcba9876543210fedcba98"


def _save_dpt_hybrid(folder: Path) -> None:
    """The demo model's DPT-hybrid, so its output can be compared with the engine's."""
    from ..models.demo import build_demo_pipeline

    demo = build_demo_pipeline()
    demo.depth_estimator.save_pretrained(folder)
    demo.feature_extractor.save_pretrained(folder)


def _save_depth_anything(folder: Path) -> None:
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, DPTImageProcessor

    DepthAnythingForDepthEstimation(DepthAnythingConfig(
        backbone_config={"model_type": "dinov2", "image_size": 42, "patch_size": 14, "hidden_size": 32,
                         "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 37,
                         "out_indices": [1, 2, 3, 4], "reshape_hidden_states": False},
        patch_size=14, reassemble_hidden_size=32, neck_hidden_sizes=[8, 16, 32, 32], fusion_hidden_size=16,
        head_hidden_size=8,
    )).save_pretrained(folder)
    # The processor settings of depth-anything/Depth-Anything-V2-*-hf, at a 42-pixel input instead of 518.
    DPTImageProcessor(size={"height": 42, "width": 42}, keep_aspect_ratio=True, ensure_multiple_of=14, resample=3,
                      image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]).save_pretrained(folder)


def _save_zoedepth(folder: Path) -> None:
    from transformers import ZoeDepthConfig, ZoeDepthForDepthEstimation, ZoeDepthImageProcessor

    ZoeDepthForDepthEstimation(ZoeDepthConfig(
        backbone_config={"model_type": "beit", "image_size": 32, "patch_size": 16, "hidden_size": 32,
                         "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 37,
                         "use_relative_position_bias": True, "reshape_hidden_states": False,
                         "out_features": ["stage1", "stage2", "stage3", "stage4"]},
        neck_hidden_sizes=[8, 16, 32, 32], fusion_hidden_size=16, bottleneck_features=16, num_relative_features=8,
        num_attractors=[4, 2, 2, 1], bin_embedding_dim=8,
        # Two heads routed by a classifier, as in Intel/zoedepth-nyu-kitti (its classifier needs 128 features).
        bin_configurations=[{"n_bins": 8, "min_depth": 0.001, "max_depth": 10.0, "name": "nyu"},
                            {"n_bins": 8, "min_depth": 0.001, "max_depth": 80.0, "name": "kitti"}],
        num_patch_transformer_layers=4, patch_transformer_hidden_size=128, patch_transformer_intermediate_size=16,
        patch_transformer_num_attention_heads=2,
    )).save_pretrained(folder)
    ZoeDepthImageProcessor(size={"height": 32, "width": 48}, ensure_multiple_of=16).save_pretrained(folder)


def _save_depth_pro(folder: Path) -> None:
    from transformers import DepthProConfig, DepthProForDepthEstimation

    encoder = {"model_type": "dinov2", "patch_size": 4, "hidden_size": 16, "num_hidden_layers": 2,
               "num_attention_heads": 2, "intermediate_size": 16}
    DepthProForDepthEstimation(DepthProConfig(
        patch_size=16, fusion_hidden_size=16, intermediate_hook_ids=[1, 0], intermediate_feature_dims=[8, 8],
        scaled_images_ratios=[0.25, 0.5, 1], scaled_images_overlap_ratios=[0.0, 0.5, 0.25],
        scaled_images_feature_dims=[16, 16, 8], use_fov_model=True, num_fov_head_layers=2,
        image_model_config=dict(encoder), patch_model_config=dict(encoder), fov_model_config=dict(encoder),
    )).save_pretrained(folder)
    # Written as apple/DepthPro-hf has it: transformers builds DepthProImageProcessor only with torchvision.
    (folder / "preprocessor_config.json").write_text(json.dumps({
        "do_normalize": True, "do_rescale": True, "do_resize": True, "image_mean": [0.5, 0.5, 0.5],
        "image_processor_type": "DepthProImageProcessor", "image_std": [0.5, 0.5, 0.5], "resample": 2,
        "rescale_factor": 1 / 255, "size": {"height": 64, "width": 64},
    }, indent=2), encoding="utf-8")


def _save_marigold(folder: Path) -> None:
    """Marigold is SD2 fine-tuned: the demo model's VAE, text encoder, tokenizer and scheduler, and a UNet
    that takes the image latent and the depth latent (8 channels)."""
    from diffusers import MarigoldDepthPipeline, UNet2DConditionModel

    from ..models.demo import build_demo_pipeline

    demo = build_demo_pipeline()
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=8, in_channels=8, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32, attention_head_dim=(2, 4), use_linear_projection=True, norm_num_groups=8,
    )
    MarigoldDepthPipeline(
        unet=unet, vae=demo.vae, scheduler=demo.scheduler, text_encoder=demo.text_encoder, tokenizer=demo.tokenizer,
        prediction_type="depth", scale_invariant=True, shift_invariant=True,
        default_denoising_steps=2, default_processing_resolution=64,
    ).save_pretrained(folder)


BUILDERS = {"dpt-hybrid": _save_dpt_hybrid, "depth-anything-v2-small": _save_depth_anything,
            "depth-anything-v2-base": _save_depth_anything, "depth-anything-v2-large": _save_depth_anything,
            "zoedepth": _save_zoedepth, "depth-pro": _save_depth_pro, "marigold": _save_marigold}
ARCHITECTURES = ("dpt-hybrid", "depth-anything-v2-small", "zoedepth", "depth-pro", "marigold")  # one name each


def save_tiny_estimator(name: str, folder: Path, seed: int = 0) -> Path:
    """The tiny `name` (a key of ESTIMATORS) saved into `folder`, laid out like its Hub repo; returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    BUILDERS[name](folder)
    return folder


def put_in_hf_cache(repo_id: str, folder: Path, cache_dir: Path) -> Path:
    """Copy `folder` into a Hugging Face cache as the main branch of `repo_id`; returns the snapshot folder."""
    repo = cache_dir / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / COMMIT
    shutil.copytree(folder, snapshot, dirs_exist_ok=True)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(COMMIT, encoding="utf-8")
    return snapshot
