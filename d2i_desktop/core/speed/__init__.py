"""Speed and memory: performance settings and the accelerated UNet step."""
