"""The app's files: images in, pictures out, and its own data kept safe."""
