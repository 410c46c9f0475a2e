"""Seamless tiles: circular padding in the UNet's and VAE's convolutions for the length of a run.

With every padded convolution wrapping around, the picture's left edge continues
its right edge and its top edge its bottom edge, so it repeats without a seam.
The padding modes are put back afterwards, so a run without tiling computes what
it computed before.
"""

from __future__ import annotations

import contextlib

import torch


@contextlib.contextmanager
def seamless(pipe, enabled: bool):
    """Inside this block `pipe`'s UNet and VAE pad circularly when `enabled`; otherwise nothing changes."""
    if not enabled:
        yield
        return
    convs = [module for model in (pipe.unet, pipe.vae) for module in model.modules()
             if isinstance(module, torch.nn.Conv2d) and module.padding != (0, 0)]
    modes = [conv.padding_mode for conv in convs]
    for conv in convs:
        conv.padding_mode = "circular"
    try:
        yield
    finally:
        for conv, mode in zip(convs, modes):
            conv.padding_mode = mode
