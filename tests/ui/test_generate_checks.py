"""What would fail a job is refused when Generate or Repaint a folder is pressed: one message, nothing queued."""

import pytest
from PySide6.QtCore import Qt

from d2i_desktop.core.extras.library import Library
from d2i_desktop.ui.library_panel import NAME
from library_samples import lora_state, write_lora


@pytest.fixture
def ink_ticked(qtbot, window, make_photo, isolated_data_dir):
    from d2i_desktop.core.models.demo import build_demo_pipeline

    write_lora(Library().root / "ink.safetensors", lora_state(build_demo_pipeline(), "kohya", seed=1))
    window.library_panel.refresh()
    with qtbot.waitSignal(window.worker_thread.worker.sig_depth_ready, timeout=30_000):
        assert window.open_image(make_photo(64, 64, "harbour.png", seed=2))
    qtbot.waitUntil(lambda: window.depth is not None and not window.busy, timeout=10_000)
    window.library_panel.row_of("ink").setCheckState(NAME, Qt.CheckState.Checked)
    window.library_panel.weight_slider("ink").set_weight(0.6)
    window.params_panel.steps.setValue(2)
    return window


def refused_at_once(window, press):
    """Press, and give the notice bar's message; fails when anything was queued or sent to the worker."""
    started = []
    window.worker_thread.worker.sig_job_started.connect(lambda job_id, _what: started.append(job_id))
    press()
    assert window.session.queue == [] and not window.busy and started == []
    assert window.notice.level == "error"
    return window.notice.message()


def test_a_lora_ticked_and_tagged_at_another_weight_is_refused_at_generate(ink_ticked):
    window = ink_ticked
    window.params_panel.prompt.setPlainText("a harbour <lora:ink:0.9>")
    window.params_panel.batch.setValue(3)
    message = refused_at_once(window, window.generate)
    assert message.count("LoRA 'ink' is asked for twice, with weights 0.9 and 0.6.") == 1


def test_an_unknown_lora_tag_is_refused_at_generate_and_at_repaint_a_folder(ink_ticked, make_photo, tmp_path):
    window = ink_ticked
    window.params_panel.prompt.setPlainText("a harbour <lora:nowhere:1>")
    assert "There is no LoRA named 'nowhere' in the library." in refused_at_once(window, window.generate)
    folder = tmp_path / "folder"
    folder.mkdir()
    make_photo(64, 64, "alley.png").rename(folder / "alley.png")
    assert "nowhere" in refused_at_once(window, lambda: window.repaint_folder(folder))


def test_the_same_lora_ticked_and_tagged_at_its_weight_still_runs(qtbot, ink_ticked):
    window = ink_ticked
    window.params_panel.prompt.setPlainText("a harbour <lora:ink:0.6>")
    window.generate()
    qtbot.waitUntil(lambda: window.result is not None and not window.busy, timeout=60_000)
    assert window.result.params.prompt == "a harbour <lora:ink:0.6>" and window.notice.level != "error"
