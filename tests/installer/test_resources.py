"""The app's icon, desktop entry and metainfo: present, consistent, and found by the app."""

import xml.etree.ElementTree as ET
from configparser import ConfigParser
from pathlib import Path

from PIL import Image

from d2i_desktop import __version__
from d2i_desktop.core.paths import APP_ID, app_resources_dir

RESOURCES = Path(__file__).resolve().parents[2] / "resources"


def test_the_app_finds_its_resources():
    assert app_resources_dir() == RESOURCES


def test_icon_pngs_have_the_size_their_name_says():
    pngs = sorted(RESOURCES.glob("icons/d2i-desktop-*.png"))
    assert len(pngs) >= 6
    for png in pngs:
        size = int(png.stem.rsplit("-", 1)[1])
        with Image.open(png) as image:
            assert image.size == (size, size) and image.mode == "RGBA"


def test_desktop_entry_launches_the_app_with_its_icon():
    entry = ConfigParser(interpolation=None)
    entry.optionxform = str
    entry.read(RESOURCES / f"{APP_ID}.desktop")
    section = entry["Desktop Entry"]
    assert section["Type"] == "Application" and section["Terminal"] == "false"
    assert section["Exec"].split()[0] == "d2i-desktop"
    assert section["Icon"] == APP_ID  # install.sh installs the icon under the app's id
    assert section["StartupWMClass"] == "d2i-desktop"  # X11's window class: the application name


def test_metainfo_names_the_desktop_entry_and_this_version():
    root = ET.parse(RESOURCES / f"{APP_ID}.metainfo.xml").getroot()
    assert root.find("id").text == APP_ID
    assert root.find("launchable").text == f"{APP_ID}.desktop"
    assert (RESOURCES / root.find("launchable").text).is_file()
    assert root.find("releases/release").get("version") == __version__
