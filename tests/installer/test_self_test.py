"""`--self-test` as a user runs it: both programs, in their own process, offline, with an empty home folder."""

import os
import subprocess
import sys

import pytest

from d2i_desktop.self_test import CHECKS, run_self_test


@pytest.mark.parametrize("module", ["d2i_desktop", "d2i_desktop.cli"])
def test_self_test_passes_offline_in_an_empty_home(module, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("D2I_", "XDG_"))}
    env |= {"HOME": str(home), "HF_HUB_OFFLINE": "1", "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run([sys.executable, "-m", module, "--self-test"], env=env, capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[1] for line in lines[:-1]] == [name.split()[0] for name, _ in CHECKS]
    assert all(line.startswith("ok ") for line in lines[:-1]) and lines[-1] == "self-test: all checks passed"
    assert done.stderr == ""
    data = home / ".local" / "share" / "d2i-desktop"
    assert sorted(path.name for path in data.iterdir()) == ["d2i-desktop.log"]  # nothing but the log is left


def test_a_failing_check_is_one_line_and_its_traceback_goes_to_the_log(isolated_data_dir, capsys):
    def broken(_context):
        raise ValueError("the weights are upside down\nsecond line")

    def fine(_context):
        return "fine"

    code = run_self_test(out=sys.stdout, checks=[("broken", broken), ("fine", fine)])
    printed = capsys.readouterr().out.splitlines()
    assert code == 1
    assert printed[0] == "FAIL  broken: ValueError: the weights are upside down"
    assert printed[1].startswith("ok    fine (") and printed[1].endswith("fine")
    assert printed[2].startswith("self-test: 1 of 2 checks failed; details in ")
    assert "Traceback" in (isolated_data_dir / "d2i-desktop.log").read_text()


def test_a_temporary_folder_that_cannot_be_made_is_one_line(isolated_data_dir, tmp_path, monkeypatch, capsys):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "missing"))  # as TMPDIR naming a folder that is gone
    assert run_self_test(out=sys.stdout) == 1
    assert capsys.readouterr().out.startswith("FAIL  temporary folder: ")
