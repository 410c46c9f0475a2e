"""Build the installed app: `python installer/build.py [--locked]`.

Makes dist/d2i-desktop/ (the executables d2i-desktop and d2i, one folder) with PyInstaller, then the
archive for this system: dist/d2i-desktop-<version>-<os>-<machine>.tar.gz on Linux (with install.sh),
.zip on Windows and macOS (Windows also gets an Inno Setup installer when `iscc` is on the PATH).

Plain, it bundles this Python's packages and torch (a CPU build gives a CPU app, a CUDA build a CUDA app).
With --locked (release builds) the same build runs in a virtual environment under build/ holding the torch
pinned in installer/locks/torch.txt, then exactly this platform's lock (installer/locks/<os>-<machine>.txt,
made by installer/lock.py) and the app; the environment is made again only when the lock, the torch pin or
the Python changes.
"""

from __future__ import annotations

import argparse
import hashlib
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
LOCKS = INSTALLER / "locks"
TORCH_PIN = LOCKS / "torch.txt"
LOCKED_PYTHON = (3, 11)
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


def locked_environment(torch_index_url: str | None) -> Path:
    """The Python of build/locked-<platform>/, holding the pinned torch, this platform's lock and the app."""
    lock = LOCKS / f"{platform_tag()}.txt"
    if not lock.is_file():
        sys.exit(f"No lock for {platform_tag()} ({lock.relative_to(ROOT)}): make it with python installer/lock.py.")
    if sys.version_info[:2] != LOCKED_PYTHON:
        sys.exit(f"The locks are for Python {'.'.join(map(str, LOCKED_PYTHON))}; this is {platform.python_version()}. "
                 "Run build.py --locked with that Python.")
    environment = ROOT / "build" / f"locked-{platform_tag()}"
    python = environment / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    stamp = environment / "lock.sha256"
    made_from = [lock.read_bytes(), TORCH_PIN.read_bytes(), (torch_index_url or "").encode(), sys.version.encode()]
    digest = hashlib.sha256(b"\0".join(made_from)).hexdigest()
    if not (python.is_file() and stamp.is_file() and stamp.read_text() == digest):
        shutil.rmtree(environment, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(environment)], check=True)
        # torch first, with what it needs on this machine (a CUDA build brings the nvidia-* packages) ...
        index = ["--index-url", torch_index_url] if torch_index_url else []
        pip(python, "install", "-r", str(TORCH_PIN), *index)
        # ... then exactly the lock, which sets the versions of what torch shares with the rest.
        pip(python, "install", "--no-deps", "--require-hashes", "-r", str(lock))
        stamp.write_text(digest)  # last: an environment left half-made is made again
    pip(python, "install", "--no-deps", "--no-build-isolation", "--editable", str(ROOT))
    pip(python, "check")
    return python


def pip(python: Path, *args: str) -> None:
    if subprocess.run([str(python), "-m", "pip", "--disable-pip-version-check", "--quiet", *args]).returncode:
        sys.exit(f"Making the locked environment failed at `pip {' '.join(args)}` (pip says why above).")


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
    parser.add_argument("--locked", action="store_true",
                        help="build from this platform's lock in a virtual environment under build/ (release builds)")
    parser.add_argument("--torch-index-url", metavar="URL",
                        help="with --locked: where pip finds torch (e.g. https://download.pytorch.org/whl/cpu)")
    args = parser.parse_args(argv)
    if args.torch_index_url and not args.locked:
        parser.error("--torch-index-url goes with --locked")

    started = time.perf_counter()
    if args.locked:  # the same build, run by the locked environment's Python
        python = locked_environment(args.torch_index_url)
        print(f"locked environment: {python} ready in {time.perf_counter() - started:.0f} s")
        build = [str(python), str(Path(__file__).resolve()), "--dist", str(args.dist)]
        return subprocess.run(build + (["--no-archive"] if args.no_archive else [])).returncode
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
