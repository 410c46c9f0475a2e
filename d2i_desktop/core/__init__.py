"""The product's brain: pure Python, never Qt. Usable from the GUI, the CLI, tests and benchmarks."""

import os

# Set before diffusers/transformers/huggingface_hub are first imported: they read these once.
# Their console chatter (progress bars, backend notices) is noise in a desktop app and a CLI.
for _name, _value in {
    "TRANSFORMERS_VERBOSITY": "error",
    "DIFFUSERS_VERBOSITY": "error",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
}.items():
    os.environ.setdefault(_name, _value)
