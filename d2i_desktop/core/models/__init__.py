"""Models: the user's model list, loading checks, single checkpoints, downloads, the HF cache, the demo model."""
