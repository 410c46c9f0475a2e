"""Cheap per-step previews: a linear map from the 4 SD latent channels to RGB."""

from __future__ import annotations

import numpy as np
import torch

PREVIEW_INTERVAL = 1 / 30  # seconds between previews in the app: a screen shows no more, and each costs a GPU sync

# Least-squares fit of SD 1.x/2.x VAE latents to RGB, as published by several SD front ends.
LATENT_RGB_FACTORS = torch.tensor([
    [0.3512, 0.2297, 0.3227],
    [0.3250, 0.4974, 0.2350],
    [-0.2829, 0.1762, 0.2721],
    [-0.2120, -0.2616, -0.7177],
])


def latents_to_rgb(latents: torch.Tensor) -> np.ndarray:
    """First latent of a (B, 4, h, w) batch -> uint8 (h, w, 3) at the latent grid's size."""
    latent = latents[0].detach()
    # Mapped on the latents' device: only the small uint8 result crosses to the CPU.
    rgb = torch.einsum("chw,cr->hwr", latent, LATENT_RGB_FACTORS.to(latent.device, latent.dtype))
    return ((rgb.float() + 1.0) * 127.5).clamp(0, 255).to(torch.uint8).cpu().numpy()
