"""The product's brain: pure Python, never Qt. Usable from the GUI, the CLI, tests and benchmarks."""

import os
import sys

# Set before diffusers/transformers/huggingface_hub are first imported: they read these once.
# Their console chatter (progress bars, backend notices) is noise in a desktop app and a CLI.
for _name, _value in {
    "TRANSFORMERS_VERBOSITY": "error",
    "DIFFUSERS_VERBOSITY": "error",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    # Offline unless the user says otherwise: loading a set-up model never touches the network.
    # Only an explicit download or connection check goes online (core/models/hub_endpoint.py).
    "HF_HUB_OFFLINE": "1",
}.items():
    os.environ.setdefault(_name, _value)

if "huggingface_hub" in sys.modules:  # imported before this package (an embedding program, a test run): tell it directly
    import huggingface_hub.constants

    huggingface_hub.constants.HF_HUB_OFFLINE = os.environ["HF_HUB_OFFLINE"].upper() in {"1", "ON", "YES", "TRUE"}
