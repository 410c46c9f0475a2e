"""Build the installed app: `python installer/build.py`.

Makes dist/d2i-desktop/ (the executables d2i-desktop and d2i, one folder) with PyInstaller, using
whatever torch this Python has (a CPU build gives a CPU app, a CUDA build a CUDA app), then the
archive for this system: dist/d2i-desktop-<version>-<os>-<machine>.tar.gz on Linux (with install.sh),
.zip on Windows and macOS (Windows also gets an Inno Setup installer when `iscc` is on the PATH).
"""

from __future__ import annotations

import argparse
import platform
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INSTALLER = ROOT / "installer"
APP = "d2i-desktop"


def version() -> str:
    sys.path.insert(0, str(ROOT))
    from d2i_desktop import __version__

    return __version__


def platform_tag() -> str:
    system = {"linux": "linux", "win32": "windows", "darwin": "macos"}.get(sys.platform, sys.platform)
    machine = platform.machine().lower().replace("amd64", "x86_64").replace("aarch64", "arm64")
    return f"{system}-{machine}"


def folder_size(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file() and not path.is_symlink())


def windows_icon() -> Path:
    from PIL import Image

    target = ROOT / "build" / f"{APP}.ico"
    target.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(ROOT / "resources" / "icons" / f"{APP}-256.png") as image:
        image.save(target, sizes=[(size, size) for size in (16, 24, 32, 48, 64, 128, 256)])
    return target


def run_pyinstaller(dist: Path, work: Path) -> None:
    subprocess.run([sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN",
                    "--distpath", str(dist), "--workpath", str(work), str(INSTALLER / f"{APP}.spec")], check=True)


def archive_linux(bundle: Path, target: Path) -> Path:
    shutil.copy2(INSTALLER / "linux" / "install.sh", bundle / "install.sh")
    with tarfile.open(target, "w:gz", compresslevel=6) as archive:
        archive.add(bundle, arcname=APP)
    return target


def archive_zip(bundle: Path, target: Path) -> Path:
    if sys.platform == "darwin":  # ditto keeps the symlinks and attributes an .app needs
        subprocess.run(["ditto", "-c", "-k", "--keepParent", str(bundle), str(target)], check=True)
        return target
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(bundle.rglob("*")):
            archive.write(path, Path(APP) / path.relative_to(bundle))
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dist", type=Path, default=ROOT / "dist", help="where the app and archive go (default: dist/)")
    parser.add_argument("--no-archive", action="store_true", help="build the folder only")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    run_pyinstaller(args.dist, ROOT / "build" / "pyinstaller")
    bundle = args.dist / APP
    built = time.perf_counter()
    print(f"app: {bundle} ({folder_size(bundle) / 1e9:.2f} GB on disk) built in {built - started:.0f} s")
    if args.no_archive:
        return 0
    name = f"{APP}-{version()}-{platform_tag()}"
    if sys.platform.startswith("linux"):
        archive = archive_linux(bundle, args.dist / f"{name}.tar.gz")
    else:
        archive = archive_zip(args.dist / f"{APP}.app" if sys.platform == "darwin" else bundle, args.dist / f"{name}.zip")
        if sys.platform == "win32" and shutil.which("iscc"):
            subprocess.run(["iscc", f"/DAppVersion={version()}", f"/DSourceDir={bundle}", f"/DIconFile={windows_icon()}",
                            f"/O{args.dist}", str(INSTALLER / "windows" / f"{APP}.iss")], check=True)
    print(f"archive: {archive} ({archive.stat().st_size / 1e9:.2f} GB) in {time.perf_counter() - built:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
