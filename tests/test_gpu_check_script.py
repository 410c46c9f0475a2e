"""benchmarks/gpu_check.sh's set-up part, run for real with `--install-only` (no GPU needed for it)."""

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
WHEELS = Path(os.environ.get("D2I_GPU_WHEELS") or ROOT.parent / "shared" / "gpu-wheels")


def run_script(tmp_path, **env) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), "--install-only"], capture_output=True, text=True, timeout=300,
                          env=os.environ | {"SITE": str(tmp_path / "site"), "OUT": str(tmp_path / "out")} | env)


def test_the_gpu_wheels_install_offline_into_their_own_folder(tmp_path):
    if not any(WHEELS.glob("diffusers-*.whl")):
        pytest.skip(f"The GPU machine's wheels are not at {WHEELS} (set D2I_GPU_WHEELS to their folder).")
    wheels = tmp_path / ".whl"
    wheels.mkdir()
    for wheel in WHEELS.glob("*.whl"):
        shutil.copy(wheel, wheels)
    done = run_script(tmp_path, WHEELS=str(wheels), PYTHON=sys.executable, PIP_NO_INDEX="1")
    assert done.returncode == 0, done.stderr
    installed = {path.name.split("-")[0].lower() for path in (tmp_path / "site").glob("*.dist-info")}
    assert {"diffusers", "platformdirs", "send2trash", "importlib_metadata", "zipp"} <= installed
    assert not (tmp_path / "out").exists()  # --install-only measures nothing


def test_a_missing_wheel_stops_the_check_and_names_it(tmp_path):
    bare = tmp_path / "bare-python"  # a Python without this machine's packages, as on the GPU machine
    venv.create(bare, with_pip=False)
    wheels = tmp_path / ".whl"
    wheels.mkdir()
    (wheels / "platformdirs-4.14.8-py3-none-any.whl").write_bytes(b"")  # present: not named
    done = run_script(tmp_path, WHEELS=str(wheels), PYTHON=str(bare / "bin" / "python"))
    assert done.returncode == 3
    first = done.stderr.splitlines()[0]
    assert first == f"gpu_check: missing wheels for: diffusers send2trash importlib_metadata zipp (not installed, not in {wheels})."
    assert "cp ../shared/gpu-wheels/*.whl .whl/" in done.stderr
    assert not (tmp_path / "site").exists()


def test_the_wheel_folder_is_ignored_by_git():
    ignored = subprocess.run(["git", "check-ignore", "-q", ".whl/diffusers-0.42.1-py3-none-any.whl"], cwd=ROOT)
    assert ignored.returncode == 0
