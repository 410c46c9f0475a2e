"""The data files the frozen app takes from its dependencies, for `d2i-desktop.spec`.

Libraries read json, txt and other files next to their modules at import (transformers needs kernels'
`_internals/python_depends.json`, for one). Rather than naming such files one by one, the spec takes every
non-Python file of every distribution the app depends on, less what no running app reads (headers, sources
to compile, type stubs, tests, shared libraries, which PyInstaller's binary analysis and hooks collect).
"""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase
from importlib import metadata
from pathlib import PurePath

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

# What no running app reads: compiler input, object files, type stubs, build files, tests and test programs.
BUILD_ONLY = ("*.h", "*.hh", "*.hpp", "*.hxx", "*.cuh", "*.inl", "*.c", "*.cc", "*.cpp", "*.cxx", "*.cu", "*.o",
              "*.obj", "*.lib", "*.a", "*.pyi", "*.pyx", "*.pxd", "*.pxi", "*.cmake", "*.pc",
              "*/include/*", "*/share/cmake/*", "*/test/*", "*/tests/*",
              "torch/bin/test_*", "torch/bin/*Test", "torch/bin/protoc*")
# Shared libraries are binaries, not data: PyInstaller's binary analysis and hooks put them where the loader looks.
SHARED_LIBRARIES = ("*.so", "*.so.*", "*.dylib", "*.dll", "*.pyd")


def is_read_at_run_time(destination: str | PurePath) -> bool:
    """Whether a data file, by its path inside the bundle, may be read by the running app."""
    path = PurePath(destination).as_posix()
    return not any(fnmatchcase(path, pattern) for pattern in BUILD_ONLY)


def _is_data(destination: str | PurePath) -> bool:
    path = PurePath(destination).as_posix()
    return is_read_at_run_time(path) and not any(fnmatchcase(path, pattern) for pattern in SHARED_LIBRARIES)


def import_names() -> dict[str, set[str]]:
    """Each installed distribution's top-level import names, by its normalised name."""
    names: dict[str, set[str]] = {}
    for module, distributions in metadata.packages_distributions().items():
        for distribution in distributions:
            names.setdefault(canonicalize_name(distribution), set()).add(module)
    return names


def dependency_closure(root: str, excludes: Iterable[str] = ()) -> dict[str, set[str]]:
    """The installed distributions `root` needs (itself included), walked through their requirements as the
    environment's markers select them, each with its top-level import names. A distribution whose import names
    are all in `excludes` (the spec's excluded modules) is left out, with what only it requires."""
    excluded = set(excludes)
    names = import_names()
    closure: dict[str, set[str]] = {}
    pending: list[tuple[str, frozenset[str]]] = [(root, frozenset())]
    while pending:
        name, extras = pending.pop()
        key = canonicalize_name(name)
        if key in closure:
            continue
        try:
            distribution = metadata.distribution(name)
        except metadata.PackageNotFoundError:  # a requirement the environment's markers select but nobody installed
            continue
        modules = names.get(key) or set((distribution.read_text("top_level.txt") or "").split())
        if modules and modules <= excluded:
            continue
        closure[key] = modules
        for line in distribution.requires or []:
            requirement = Requirement(line)
            if requirement.marker is None or any(requirement.marker.evaluate({"extra": extra})
                                                 for extra in extras or {""}):
                pending.append((requirement.name, frozenset(requirement.extras)))
    return closure


def dependency_data_files(root: str, excludes: Iterable[str] = (),
                          left_to_hooks: Iterable[str] = ()) -> list[tuple[str, str]]:
    """PyInstaller `datas` entries (source file, destination folder) for the data files of `root`'s dependency
    closure. Packages named in `left_to_hooks` are skipped: their PyInstaller hook picks their files itself."""
    from PyInstaller.utils.hooks import collect_data_files, is_package

    skipped = set(excludes) | set(left_to_hooks)
    packages = {module for modules in dependency_closure(root, excludes).values() for module in modules}
    return [(source, folder)
            for package in sorted(packages - skipped) if is_package(package)
            for source, folder in collect_data_files(package)
            if _is_data(PurePath(folder, PurePath(source).name))]
