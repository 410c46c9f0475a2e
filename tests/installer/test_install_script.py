"""installer/linux/install.sh on a real folder laid out like the unpacked archive, with a scratch home folder."""

import os
import shutil
import subprocess
from configparser import ConfigParser
from pathlib import Path

import pytest

from d2i_desktop.core.paths import APP_ID

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "installer" / "linux" / "install.sh"


@pytest.fixture
def home(tmp_path) -> Path:
    folder = tmp_path / "home"
    (folder / ".local" / "share" / "d2i-desktop").mkdir(parents=True)
    (folder / ".local" / "share" / "d2i-desktop" / "models.json").write_text('{"models": []}')
    (folder / "Pictures" / "d2i-desktop").mkdir(parents=True)
    (folder / "Pictures" / "d2i-desktop" / "harbour.png").write_bytes(b"picture")
    return folder


def unpacked(folder: Path, version: str) -> Path:
    """An unpacked archive: the two programs, the bundle's resources and install.sh."""
    bundle = folder / "d2i-desktop"
    shutil.copytree(ROOT / "resources", bundle / "_internal" / "resources")
    for name in ("d2i-desktop", "d2i"):
        (bundle / name).write_text(f"#!/bin/sh\necho {version}\n")
        (bundle / name).chmod(0o755)
    shutil.copy2(SCRIPT, bundle / "install.sh")
    return bundle


def install(bundle: Path, home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "XDG_DATA_HOME"} | {"HOME": str(home)}
    return subprocess.run(["sh", str(bundle / "install.sh"), *args], env=env, capture_output=True, text=True, timeout=60)


def share(home: Path) -> Path:
    return home / ".local" / "share"


def user_files_kept(home: Path) -> bool:
    return ((share(home) / "d2i-desktop" / "models.json").read_text() == '{"models": []}'
            and (home / "Pictures" / "d2i-desktop" / "harbour.png").read_bytes() == b"picture")


def test_install_puts_the_app_in_the_menu_with_its_icon(tmp_path, home):
    done = install(unpacked(tmp_path / "v1", "1"), home)
    assert done.returncode == 0, done.stderr
    app = share(home) / "d2i-desktop-app"
    assert subprocess.run([str(app / "d2i-desktop")], capture_output=True, text=True).stdout == "1\n"
    entry = ConfigParser(interpolation=None)
    entry.read(share(home) / "applications" / f"{APP_ID}.desktop")
    assert entry["Desktop Entry"]["Exec"] == f'"{app}/d2i-desktop" %f'
    assert entry["Desktop Entry"]["Icon"] == APP_ID
    assert (share(home) / "icons" / "hicolor" / "scalable" / "apps" / f"{APP_ID}.svg").is_file()
    for size in (16, 32, 48, 64, 128, 256, 512):
        assert (share(home) / "icons" / "hicolor" / f"{size}x{size}" / "apps" / f"{APP_ID}.png").is_file()
    assert (share(home) / "metainfo" / f"{APP_ID}.metainfo.xml").is_file()


def test_upgrade_replaces_the_app_and_keeps_the_users_files(tmp_path, home):
    assert install(unpacked(tmp_path / "v1", "1"), home).returncode == 0
    done = install(unpacked(tmp_path / "v2", "2"), home)
    assert done.returncode == 0, done.stderr
    app = share(home) / "d2i-desktop-app"
    assert subprocess.run([str(app / "d2i")], capture_output=True, text=True).stdout == "2\n"
    assert user_files_kept(home)
    assert [p.name for p in share(home).iterdir() if p.name.startswith(".d2i-desktop-app")] == []  # no staging left


def test_uninstall_removes_the_app_and_its_entry_but_never_the_users_files(tmp_path, home):
    assert install(unpacked(tmp_path / "v1", "1"), home).returncode == 0
    done = install(share(home) / "d2i-desktop-app", home, "--uninstall")  # the copy inside the installed app
    assert done.returncode == 0, done.stderr
    assert not (share(home) / "d2i-desktop-app").exists()
    assert not (share(home) / "applications" / f"{APP_ID}.desktop").exists()
    assert not list((share(home) / "icons").rglob(f"{APP_ID}.*"))
    assert user_files_kept(home)
    assert "are kept" in done.stdout


def test_a_folder_with_spaces_is_quoted_in_the_menu_entry(tmp_path, home):
    target = tmp_path / "My Apps" / "d2i"
    assert install(unpacked(tmp_path / "v1", "1"), home, str(target)).returncode == 0
    entry = (share(home) / "applications" / f"{APP_ID}.desktop").read_text()
    assert f'Exec="{target}/d2i-desktop" %f' in entry
    assert subprocess.run([str(target / "d2i-desktop")], capture_output=True, text=True).stdout == "1\n"


@pytest.mark.parametrize("mode", [(), ("--uninstall",)])
def test_a_folder_the_installer_did_not_make_is_never_replaced_or_removed(tmp_path, home, mode):
    foreign = tmp_path / "Documents"
    foreign.mkdir()
    (foreign / "thesis.odt").write_text("years of work")
    done = install(unpacked(tmp_path / "v1", "1"), home, *mode, str(foreign))
    assert done.returncode == 2
    assert "not installed by this script" in done.stderr
    assert (foreign / "thesis.odt").read_text() == "years of work"
    assert sorted(p.name for p in foreign.iterdir()) == ["thesis.odt"]


def test_install_from_a_folder_that_is_not_the_app_says_so(tmp_path, home):
    stray = tmp_path / "stray"
    stray.mkdir()
    shutil.copy2(SCRIPT, stray / "install.sh")
    done = install(stray, home)
    assert done.returncode == 2
    assert "unpacked d2i-desktop folder" in done.stderr
    assert not (share(home) / "d2i-desktop-app").exists()
