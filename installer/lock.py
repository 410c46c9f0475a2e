"""Make the release locks: `python installer/lock.py [--upgrade]` (needs uv: `pip install uv`).

One lock per platform in installer/locks/, for Python 3.11: the exact version and hashes of every package
d2i-desktop and its `installer` extra need, resolved by `uv pip compile` from pyproject.toml. torch is kept out
(and with it the CUDA-only packages it brings on Linux): the build machine's torch decides CPU or CUDA, at the
version pinned in installer/locks/torch.txt, which the locks are resolved against. Without --upgrade, pins that
still fit pyproject.toml are kept.

`python installer/lock.py --compare` instead prints, as a Markdown table, where this environment's versions
differ from this platform's lock (the scheduled newest-dependencies workflow puts it in its summary).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCKS = ROOT / "installer" / "locks"
TORCH_PIN = LOCKS / "torch.txt"
PYTHON_VERSION = "3.11"
# Lock name (as build.py's platform tag) -> uv's target platform. Linux: the oldest glibc PySide6 6.11 supports;
# macOS: the oldest release torch has arm64 wheels for.
PLATFORMS = {"linux-x86_64": "x86_64-manylinux_2_34", "windows-x86_64": "x86_64-pc-windows-msvc",
             "macos-arm64": "aarch64-apple-darwin"}
MACOS_TARGET = "14.0"
# CUDA runtime packages and triton: on Linux torch requires them, and they come with a CUDA torch, never a lock.
GPU_ONLY = re.compile(r"nvidia-.*|cuda-.*|triton|pytorch-triton.*")
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", re.MULTILINE)


def pins(text: str) -> dict[str, str]:
    """The `name==version` pins of a requirements file's text, by lower-case name."""
    return {name.lower(): version for name, version in PIN.findall(text)}


def compile_lock(target: str, *options: str) -> str:
    """`uv pip compile` of pyproject.toml with the installer extra, against the pinned torch, for one platform."""
    environment = os.environ | {"MACOSX_DEPLOYMENT_TARGET": MACOS_TARGET}
    done = subprocess.run(["uv", "pip", "compile", "pyproject.toml", "--extra", "installer", "--quiet",
                           "--constraints", str(TORCH_PIN.relative_to(ROOT)), "--python-version", PYTHON_VERSION,
                           "--python-platform", target, *options],
                          cwd=ROOT, env=environment, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"uv pip compile for {target} failed:\n{done.stderr}")
    return done.stdout


def write_lock(name: str, target: str, upgrade: bool) -> Path:
    """Resolve once to learn which GPU-only packages torch brings on this platform, then lock without them."""
    lock = LOCKS / f"{name}.txt"
    gpu_only = sorted(package for package in pins(compile_lock(target, "--no-header", "--no-annotate"))
                      if GPU_ONLY.fullmatch(package))
    with tempfile.TemporaryDirectory() as scratch:
        excluded = Path(scratch) / "gpu-only.txt"
        excluded.write_text("".join(f"{package}\n" for package in gpu_only))
        compile_lock(target, "--generate-hashes", "--no-emit-package", "torch", "--excludes", str(excluded),
                     "--custom-compile-command", "python installer/lock.py", "--output-file",
                     str(lock.relative_to(ROOT)), *(["--upgrade"] if upgrade else []))
    return lock


def installed_versions() -> dict[str, str]:
    """This environment's versions by normalised name, without local labels (torch's `+cpu`)."""
    return {re.sub(r"[-_.]+", "-", distribution.metadata["Name"]).lower(): distribution.version.split("+")[0]
            for distribution in metadata.distributions()}


def comparison(locked: dict[str, str], installed: dict[str, str]) -> str:
    """A Markdown table of the packages whose installed version is not the locked one."""
    rows = [f"| {name} | {version} | {installed.get(name, 'not installed')} |"
            for name, version in sorted(locked.items()) if installed.get(name) != version]
    if not rows:
        return "Every locked package is installed at its locked version."
    return "\n".join(["| package | lock | this build |", "| --- | --- | --- |", *rows])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upgrade", action="store_true", help="take the newest versions, not the locked ones")
    parser.add_argument("--compare", choices=sorted(PLATFORMS), help="print where this environment differs from "
                                                                      "this lock; writes nothing")
    args = parser.parse_args(argv)
    if args.compare:
        locked = pins((LOCKS / f"{args.compare}.txt").read_text()) | pins(TORCH_PIN.read_text())
        print(comparison(locked, installed_versions()))
        return 0
    if not shutil.which("uv"):
        sys.exit("lock.py needs uv: pip install uv")
    for name, target in PLATFORMS.items():
        print(f"{write_lock(name, target, args.upgrade).relative_to(ROOT)}: {target}, Python {PYTHON_VERSION}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
