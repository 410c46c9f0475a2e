"""Before Qt starts on Linux: name the system packages its window plugin lacks, instead of Qt's abort.

Qt's xcb plugin links against a dozen system libraries that a minimal desktop may lack; without
one Qt prints "could not load the Qt platform plugin" and aborts. This reads the plugin's
dependencies with `ldd` (no Qt involved) and maps the missing ones to Debian/Ubuntu packages.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

DEBIAN_PACKAGES = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb.so.1": "libxcb1",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libX11.so.6": "libx11-6",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libOpenGL.so.0": "libopengl0",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libdbus-1.so.3": "libdbus-1-3",
    "libglib-2.0.so.0": "libglib2.0-0",
}
_NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found", re.MULTILINE)


def uses_xcb(environ=os.environ) -> bool:
    """Whether Qt will pick its X11 (xcb) plugin: Linux, no other platform asked for, not a Wayland session."""
    platform = environ.get("QT_QPA_PLATFORM", "")
    if not sys.platform.startswith("linux") or platform.split(";")[0] not in ("", "xcb"):
        return False
    return platform == "xcb" or not environ.get("WAYLAND_DISPLAY")


def xcb_plugin_files() -> list[Path]:
    import PySide6

    qt = Path(PySide6.__file__).parent / "Qt"
    return [path for path in (qt / "plugins" / "platforms" / "libqxcb.so", *sorted((qt / "lib").glob("libQt6XcbQpa.so*")))
            if path.is_file()]


def missing_libraries(files: list[Path]) -> list[str]:
    """The libraries `files` need that the dynamic loader cannot find (empty when ldd is not there)."""
    ldd = shutil.which("ldd")
    if not ldd or not files:
        return []
    output = subprocess.run([ldd, *map(str, files)], capture_output=True, text=True, timeout=30).stdout
    return sorted(set(_NOT_FOUND.findall(output)))


def install_advice(missing: list[str]) -> str:
    packages = [DEBIAN_PACKAGES.get(name, name) for name in missing]
    return (f"The window cannot open: these system libraries are missing: {', '.join(missing)}. "
            f"On Debian or Ubuntu install them with: sudo apt install {' '.join(dict.fromkeys(packages))} "
            "(other systems name the packages after the same libraries).")


def check_window_libraries() -> str | None:
    """A message naming what to install when Qt's window plugin would fail to load, else None."""
    if not uses_xcb():
        return None
    try:
        missing = missing_libraries(xcb_plugin_files())
    except (OSError, subprocess.SubprocessError):
        return None  # the check is a courtesy; Qt's own error still follows
    return install_advice(missing) if missing else None


def tell_user(message: str) -> None:
    """Print the message, and show it in a desktop dialog when one of the usual tools is there (no terminal
    is open when the app was started from a menu)."""
    print(f"error: {message}", file=sys.stderr)
    for command in (["zenity", "--error", f"--text={message}"],
                    ["kdialog", "--error", message],
                    ["xmessage", "-center", message]):
        if shutil.which(command[0]):
            subprocess.run(command, check=False, capture_output=True)
            return
