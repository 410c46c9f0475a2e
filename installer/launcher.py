"""The frozen app's one entry script: `d2i` runs the command line, any other name opens the window."""

import sys
from pathlib import Path

if __name__ == "__main__":
    if Path(sys.executable).stem.lower() == "d2i":
        from d2i_desktop.cli import main
    else:
        from d2i_desktop.app import main
    sys.exit(main())
