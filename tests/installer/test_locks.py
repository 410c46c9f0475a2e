"""installer/locks/: one lock per platform, exact and hashed, in step with pyproject.toml, without torch."""

import importlib.util
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LOCKS = ROOT / "installer" / "locks"


@pytest.fixture(scope="module")
def lock_script():
    spec = importlib.util.spec_from_file_location("lock", ROOT / "installer" / "lock.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def entries(lock: Path) -> list[str]:
    """The lock's requirements, each with its continuation lines (its hashes)."""
    text = re.sub(r"[ \t]*#.*", "", lock.read_text()).replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip()]


def pyproject_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(line) for line in project["dependencies"] + project["optional-dependencies"]["installer"]]


@pytest.fixture(params=["linux-x86_64", "windows-x86_64", "macos-arm64"])
def lock(request) -> Path:
    return LOCKS / f"{request.param}.txt"


def test_the_locks_are_those_lock_py_makes(lock_script):
    assert sorted(lock_script.PLATFORMS) == ["linux-x86_64", "macos-arm64", "windows-x86_64"]
    assert lock_script.PYTHON_VERSION == "3.11"


def test_every_package_is_pinned_exactly_with_its_hashes(lock):
    lines = entries(lock)
    assert len(lines) > 40
    for line in lines:
        assert re.fullmatch(r"[a-z0-9][a-z0-9.-]*==[^\s;]+( +--hash=sha256:[0-9a-f]{64})+", line), line


def test_torch_and_its_cuda_packages_stay_out_of_the_lock(lock, lock_script):
    names = lock_script.pins(lock.read_text())
    assert not [name for name in names if name == "torch" or re.match(r"nvidia-|cuda-|triton", name)]
    assert {"sympy", "networkx", "jinja2"} <= names.keys()  # what torch needs besides the GPU is locked


def test_each_requirement_of_pyproject_is_locked_at_a_version_it_allows(lock, lock_script):
    locked = lock_script.pins(lock.read_text())
    for requirement in pyproject_requirements():
        if requirement.name == "torch":
            continue
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{name} is not in {lock.name}: run python installer/lock.py"
        assert requirement.specifier.contains(locked[name]), f"{lock.name}: {name}=={locked[name]} vs {requirement}"


def test_the_pinned_torch_is_one_pyproject_allows(lock_script):
    pinned = lock_script.pins((LOCKS / "torch.txt").read_text())
    assert list(pinned) == ["torch"]
    torch = next(requirement for requirement in pyproject_requirements() if requirement.name == "torch")
    assert torch.specifier.contains(pinned["torch"])


def test_the_comparison_names_what_differs_from_the_lock(lock_script):
    table = lock_script.comparison({"diffusers": "0.42.1", "numpy": "2.4.6", "kernels": "0.19.1"},
                                   {"diffusers": "0.43.0", "numpy": "2.4.6"})
    assert table.splitlines() == ["| package | lock | this build |", "| --- | --- | --- |",
                                  "| diffusers | 0.42.1 | 0.43.0 |", "| kernels | 0.19.1 | not installed |"]
    assert lock_script.comparison({"numpy": "2.4.6"}, {"numpy": "2.4.6"}).startswith("Every locked package")
