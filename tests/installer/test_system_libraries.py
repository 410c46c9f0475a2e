"""Naming the system packages Qt's window plugin lacks, before Qt aborts."""

import shutil
import sys

import pytest

from d2i_desktop import app, system_libraries
from d2i_desktop.system_libraries import install_advice, missing_libraries, uses_xcb, xcb_plugin_files

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux") or not shutil.which("ldd"), reason="ldd on Linux")


@pytest.mark.parametrize("environ, expected", [
    ({}, True),
    ({"QT_QPA_PLATFORM": "xcb"}, True),
    ({"QT_QPA_PLATFORM": "offscreen"}, False),
    ({"WAYLAND_DISPLAY": "wayland-0"}, False),
    ({"WAYLAND_DISPLAY": "wayland-0", "QT_QPA_PLATFORM": "xcb"}, True),
])
def test_the_check_runs_only_where_qt_uses_xcb(environ, expected, monkeypatch):
    monkeypatch.setattr(sys, "platform", "linux")
    assert uses_xcb(environ) is expected


@pytest.fixture
def plugin_without_its_library(tmp_path):
    """The real xcb plugin copied away from the Qt library it links to: a real missing library."""
    plugin = tmp_path / "plugins" / "platforms" / "libqxcb.so"
    plugin.parent.mkdir(parents=True)
    shutil.copy2(xcb_plugin_files()[0], plugin)
    return plugin


@linux_only
def test_a_missing_library_is_found_and_named(plugin_without_its_library):
    missing = missing_libraries([plugin_without_its_library])
    assert "libQt6XcbQpa.so.6" in missing


def test_advice_names_the_debian_packages():
    advice = install_advice(["libxcb-cursor.so.0", "libxcb-icccm.so.4", "libxcb-keysyms.so.1"])
    assert "sudo apt install libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1" in advice


@linux_only
def test_the_app_says_what_to_install_instead_of_starting_qt(plugin_without_its_library, monkeypatch, capsys):
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    monkeypatch.delenv("DISPLAY", raising=False)  # no desktop dialog tool can open one here
    monkeypatch.setattr(system_libraries, "xcb_plugin_files", lambda: [plugin_without_its_library])
    assert app.main([]) == 1
    err = capsys.readouterr().err
    assert "libQt6XcbQpa.so.6" in err and "sudo apt install" in err
    assert "Traceback" not in err
