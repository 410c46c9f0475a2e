"""d2i-desktop: depth-guided image generation with Stable Diffusion 2 depth."""

__version__ = "0.1.0"
