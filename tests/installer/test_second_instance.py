"""Two copies of the app running at once (a second start from the menu, the CLI beside the window)
never lose each other's changes to the model list or the library settings, nor damage them."""

import json
import os
import subprocess
import sys
import textwrap

WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from d2i_desktop.core.extras.library import Library
    from d2i_desktop.core.models.registry import ModelEntry, ModelRegistry

    who, count, folder = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    registry, library = ModelRegistry(), Library()
    (folder / who).touch()
    while len(list(folder.iterdir())) < 2:  # both copies write at the same moment
        time.sleep(0.01)
    for number in range(count):
        registry.save(ModelEntry(name=f"{who}-{number}", source=f"/models/{who}-{number}", kind="folder"))
        library.edit(f"{who}-{number}", default_weight=0.5)
""")


def test_two_running_copies_keep_every_change(isolated_data_dir, tmp_path):
    env = os.environ | {"D2I_DATA_DIR": str(isolated_data_dir)}
    ready = tmp_path / "ready"
    ready.mkdir()
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, who, "60", str(ready)], env=env,
                                stderr=subprocess.PIPE, text=True) for who in ("window", "cli")]
    for writer in writers:
        assert writer.wait(timeout=120) == 0, writer.stderr.read()
    expected = {f"{who}-{number}" for who in ("window", "cli") for number in range(60)}
    models = json.loads((isolated_data_dir / "models.json").read_text())
    assert {entry["name"] for entry in models} == expected
    library = json.loads((isolated_data_dir / "library.json").read_text())
    assert set(library["items"]) == expected
    assert not [path.name for path in isolated_data_dir.rglob("*corrupt*")]
