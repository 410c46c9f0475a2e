"""installer/bundle_data.py, which chooses the dependencies' data files for the bundle, on this environment's real
packages: a data file a library reads at import and the bundle lacks makes the frozen app fail its self-test."""

import importlib.util
from pathlib import Path, PurePosixPath

import pytest

INSTALLER = Path(__file__).resolve().parents[2] / "installer"
# The spec's list: what the bundle leaves out.
SPEC_EXCLUDES = ["tkinter", "matplotlib", "pandas", "IPython", "jupyter", "notebook", "pytest", "pytestqt",
                 "tensorboard", "boto3", "botocore", "triton", "ray", "PyInstaller"]


@pytest.fixture(scope="module")
def bundle_data():
    spec = importlib.util.spec_from_file_location("bundle_data", INSTALLER / "bundle_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def collected(bundle_data) -> set[str]:
    """The paths inside the bundle of the data files the spec collects."""
    pytest.importorskip("PyInstaller", reason="PyInstaller is the installer extra: pip install -e '.[installer]'")
    datas = bundle_data.dependency_data_files("d2i-desktop", SPEC_EXCLUDES, left_to_hooks=["PySide6", "shiboken6"])
    return {PurePosixPath(Path(folder).as_posix(), Path(source).name).as_posix() for source, folder in datas}


def test_the_closure_follows_requirements_through_other_packages(bundle_data):
    closure = bundle_data.dependency_closure("d2i-desktop", SPEC_EXCLUDES)
    assert {"d2i-desktop", "diffusers", "transformers", "torch", "pyside6-essentials"} <= closure.keys()
    assert "kernels" in closure  # d2i-desktop needs it only through transformers
    assert closure["kernels"] == {"kernels"} and closure["pillow"] == {"PIL"}
    assert not {"pyinstaller", "pytest", "ray"} & closure.keys()


def test_an_excluded_package_takes_along_what_only_it_requires(bundle_data):
    closure = bundle_data.dependency_closure("d2i-desktop", [*SPEC_EXCLUDES, "transformers"])
    assert "transformers" not in closure and "kernels" not in closure
    assert "diffusers" in closure


def test_data_files_that_libraries_read_at_import_are_collected(collected):
    assert "kernels/_internals/python_depends.json" in collected  # transformers 5 fails to import without it
    assert "diffusers/utils/model_card_template.md" in collected
    assert "huggingface_hub/templates/modelcard_template.md" in collected
    assert "certifi/cacert.pem" in collected
    assert "d2i_desktop/resources/sd2_depth/model_index.json" in collected


def test_what_no_running_app_reads_is_left_out(collected):
    assert not [path for path in collected
                if path.endswith((".h", ".hpp", ".cpp", ".cu", ".pyi", ".so", ".py", ".pyc"))
                or path.startswith(("torch/include/", "torch/test/", "torch/share/cmake/", "torch/bin/test_"))]
    assert not [path for path in collected if path.startswith(("PySide6/", "shiboken6/"))]  # Qt's hook picks those
    assert "torch/bin/torch_shm_manager" in collected


@pytest.mark.parametrize(("path", "read"), [
    ("kernels/_internals/python_depends.json", True),
    ("torch/bin/torch_shm_manager", True),
    ("torch/include/ATen/ATen.h", False),
    ("torch/share/cmake/Torch/TorchConfig.cmake", False),
    ("torch/share/cmake/Caffe2/public/utils.cmake", False),
    ("torch/test/basic", False),
    ("torch/bin/test_api", False),
    ("scipy/io/tests/data/example.mat", False),
    ("numpy/__init__.pyi", False),
])
def test_paths_read_at_run_time(bundle_data, path, read):
    assert bundle_data.is_read_at_run_time(path) is read
