"""The Models dialog with real widgets, a real download thread and local stand-ins for the Hub and for a web site
that is not one (tests cannot reach the internet)."""

import socket
import threading

import pytest
from PySide6.QtCore import QObject, Qt, QTimer, Slot
from PySide6.QtWidgets import QFileDialog, QLabel, QPushButton

from d2i_desktop.core.depth.estimators import ESTIMATORS, estimator_folder
from d2i_desktop.core.models import registry as models
from d2i_desktop.core.models.catalogue import SD2_DEPTH_REPO, SD2_DEPTH_SOURCES
from d2i_desktop.core.models.demo import DEMO_LABEL
from d2i_desktop.core.models.hf_cache import cached_snapshot
from d2i_desktop.core.models.hub_endpoint import remembered_endpoint
from d2i_desktop.ui.models_dialog import ModelsDialog
from d2i_desktop.core.depth.tiny_estimators import save_tiny_estimator
from local_hub import HtmlSite

WITHDRAWN = SD2_DEPTH_SOURCES[-1].repo_id
UNET_WEIGHTS = "unet/diffusion_pytorch_model.safetensors"
SMALL = ESTIMATORS["depth-anything-v2-small"]


@pytest.fixture(scope="module")
def tiny_estimator(tmp_path_factory):
    return save_tiny_estimator(SMALL.name, tmp_path_factory.mktemp("estimators") / SMALL.name)


@pytest.fixture
def open_dialog(qtbot, cache_dir, mirror_hub):
    """Opens the dialog with the local Hub's address in its Hub field; its download thread is ended afterwards."""
    opened = []

    def open_it(**options):
        dlg = ModelsDialog(first_run=True, endpoint=mirror_hub.endpoint, **options)
        qtbot.addWidget(dlg)
        dlg.show()
        opened.append(dlg)
        return dlg

    yield open_it
    for dlg in opened:
        assert dlg.shutdown()


@pytest.fixture
def dialog(open_dialog):
    return open_dialog()


def wait_idle(qtbot, dialog, timeout=60_000):
    qtbot.waitUntil(lambda: not dialog.busy, timeout=timeout)


def test_first_run_offers_every_way_to_get_a_model_and_says_where_sd2_depth_lives_now(dialog):
    assert dialog.windowTitle() == "Welcome to d2i-desktop"
    assert [dialog.tabs.tabText(i) for i in range(dialog.tabs.count())] == ["Models", "Depth estimators"]
    names = {b.objectName() for b in dialog.findChildren(QPushButton) if b.objectName()}
    assert {"downloadButton", "folderButton", "fileButton", "demoButton", "testConnection", "downloadEstimator"} <= names
    texts = [label.text() for label in dialog.findChildren(QLabel)]
    download = next(t for t in texts if t.startswith(f"From {SD2_DEPTH_REPO}, the community mirror"))
    for fact in ("Stability AI withdrew the original in November 2025", "openrail++", "about 2.8 GB",
                 "Every file is checked", "an interrupted download resumes"):
        assert fact in download
    single_file = next(t for t in texts if "512-depth-ema.safetensors" in t)
    assert f"in the same repository ({SD2_DEPTH_REPO})" in single_file and "copied from another computer" in single_file
    assert not dialog.known_box.isVisible()  # no models set up yet
    assert not dialog.cache_list.isVisible()  # nothing cached yet


def test_the_hub_field_shows_the_remembered_mirror_or_hf_endpoint_else_the_hub_as_placeholder(
        qtbot, isolated_data_dir, monkeypatch):
    from d2i_desktop.core.models.hub_endpoint import remember_endpoint

    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    plain = ModelsDialog()
    qtbot.addWidget(plain)
    assert plain.mirror.edit.text() == ""
    assert "https://huggingface.co" in plain.mirror.edit.placeholderText()
    assert "https://hf-mirror.com" in plain.mirror.edit.placeholderText()
    monkeypatch.setenv("HF_ENDPOINT", "https://hf-mirror.com/")
    from_environment = ModelsDialog()
    qtbot.addWidget(from_environment)
    assert from_environment.mirror.edit.text() == "https://hf-mirror.com"
    remember_endpoint("https://mirror.example.org")
    remembered = ModelsDialog()
    qtbot.addWidget(remembered)
    assert remembered.mirror.edit.text() == "https://mirror.example.org"


def test_known_models_are_listed_and_one_can_be_chosen(qtbot, dialog, demo_model_dir):
    models.add_model(demo_model_dir)
    dialog.refresh()
    item = dialog.model_list.topLevelItem(0)
    assert [item.text(i) for i in (0, 1, 3)] == ["demo", DEMO_LABEL, "never"] and item.text(2).endswith("MB")
    dialog.model_list.setCurrentItem(item)
    with qtbot.waitSignal(dialog.sig_use_model) as chosen:
        qtbot.mouseClick(dialog.use_button, Qt.MouseButton.LeftButton)
    assert chosen.args == [str(demo_model_dir)]


def test_download_tries_the_withdrawn_id_then_lands_on_the_mirror_and_uses_it(qtbot, open_dialog, mirror_hub):
    dialog = open_dialog(sources=tuple(reversed(SD2_DEPTH_SOURCES)))  # the withdrawn id first
    mirror_hub.delay_per_piece = 0.003
    used, texts = [], []
    dialog.sig_use_model.connect(used.append)
    qtbot.mouseClick(dialog.download_button, Qt.MouseButton.LeftButton)
    assert not dialog.download_button.isEnabled() and not dialog.mirror.test_button.isEnabled()

    def gui_thread_sees_progress():  # polled by the GUI thread's event loop while the download runs
        texts.append(dialog.progress_label.text())
        return bool(used)

    qtbot.waitUntil(gui_thread_sees_progress, timeout=60_000)
    assert used == [SD2_DEPTH_REPO]
    assert dialog.download_box.title() == "Downloading SD2-depth"
    assert not dialog.notes_label.isHidden() and dialog.notes_label.text() == (  # the dialog closed on use
        f"{WITHDRAWN} was not found (withdrawn in November 2025) on {mirror_hub.endpoint}; trying {SD2_DEPTH_REPO}.")
    assert [r for r in mirror_hub.requests if r[1].startswith(f"/api/models/{WITHDRAWN}")]
    assert any(" of " in t and "/s" in t for t in texts)
    assert dialog.progress.value() == 1000 and dialog.progress_label.text() == "Download complete."
    entry = models.ModelRegistry().get(SD2_DEPTH_REPO)
    assert entry.kind == "hub" and entry.size_bytes > 0
    assert models.ModelRegistry().get(WITHDRAWN) is None
    wait_idle(qtbot, dialog)
    assert remembered_endpoint() == mirror_hub.endpoint  # a download through it succeeded


def test_another_hub_repository_is_downloaded_by_its_id_and_a_bad_id_is_refused(qtbot, dialog, mirror_hub,
                                                                                 demo_model_dir):
    mirror_hub.add_repo("someone/sd2-depth-finetune", demo_model_dir)
    used = []
    dialog.sig_use_model.connect(used.append)
    assert dialog.download_repository(" someone/sd2-depth-finetune ")
    qtbot.waitUntil(lambda: bool(used), timeout=60_000)
    assert dialog.download_box.title() == "Downloading someone/sd2-depth-finetune"
    assert used == ["someone/sd2-depth-finetune"]
    assert models.ModelRegistry().get("someone/sd2-depth-finetune").kind == "hub"
    wait_idle(qtbot, dialog)
    dialog.show()  # it closed when the model was used
    assert not dialog.download_repository("not an id")
    assert "No model found at 'not an id'" in dialog.notice.message()


def test_cancel_stops_the_download_and_says_it_resumes(qtbot, dialog, mirror_hub, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 16384)
    mirror_hub.delay_per_piece = 0.01
    dialog.start_download()
    qtbot.waitUntil(lambda: dialog.progress.maximum() == 1000 and dialog.progress.value() > 0, timeout=30_000)
    qtbot.mouseClick(dialog.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "resume" in dialog.progress_label.text() and dialog.download_button.isEnabled(),
                    timeout=30_000)
    assert models.ModelRegistry().get(SD2_DEPTH_REPO) is None


def test_a_damaged_file_is_refused_with_its_message_and_nothing_is_registered(qtbot, dialog, mirror_hub, cache_dir):
    mirror_hub.first.wrong_checksums.add(UNET_WEIGHTS)
    used = []
    dialog.sig_use_model.connect(used.append)
    dialog.start_download()
    qtbot.waitUntil(lambda: "damaged or was changed" in dialog.notice.message(), timeout=30_000)
    assert f"The file {UNET_WEIGHTS} from {SD2_DEPTH_REPO} is damaged" in dialog.notice.message()
    assert "try another" in dialog.notice.message()  # the hint
    wait_idle(qtbot, dialog)
    assert dialog.download_button.isEnabled() and not dialog.download_box.isVisible()
    assert used == [] and models.ModelRegistry().entries() == []
    assert cached_snapshot(SD2_DEPTH_REPO, cache_dir=cache_dir) is None
    assert remembered_endpoint() is None  # nothing succeeded through it


def test_a_repository_that_needs_a_login_says_how_to_log_in(qtbot, dialog, mirror_hub):
    mirror_hub.first.gated = True
    dialog.start_download()
    qtbot.waitUntil(lambda: "needs a login" in dialog.notice.message(), timeout=30_000)
    assert "hf auth login" in dialog.notice.message()
    assert models.ModelRegistry().entries() == []


def test_an_address_that_is_no_web_address_is_refused_at_once(qtbot, dialog, mirror_hub):
    dialog.mirror.edit.setText("hf-mirror.com")
    qtbot.mouseClick(dialog.mirror.test_button, Qt.MouseButton.LeftButton)
    answer = dialog.mirror.answer
    assert answer.isVisible() and "'hf-mirror.com' is not a web address of a Hugging Face Hub." in answer.text()
    assert "https://hf-mirror.com" in answer.text()  # what to write instead
    qtbot.mouseClick(dialog.download_button, Qt.MouseButton.LeftButton)
    assert "'hf-mirror.com' is not a web address" in dialog.notice.message()
    assert not dialog.busy and dialog.download_button.isEnabled() and mirror_hub.requests == []


def test_the_connection_test_says_the_hub_is_reachable_and_remembers_it(qtbot, dialog, mirror_hub, demo_model_dir):
    models.add_model(demo_model_dir)
    dialog.refresh()
    dialog.model_list.setCurrentItem(dialog.model_list.topLevelItem(0))
    qtbot.keyClick(dialog.mirror.edit, Qt.Key.Key_Return)  # Enter in the field tests it, and presses no other button
    qtbot.waitUntil(lambda: "is reachable" in dialog.mirror.answer.text(), timeout=30_000)
    assert dialog.mirror.answer.text().endswith(f"and has {SD2_DEPTH_REPO}.")
    assert dialog.mirror.answer.text().startswith(f"✓ {mirror_hub.endpoint} is reachable (")
    wait_idle(qtbot, dialog)
    assert remembered_endpoint() == mirror_hub.endpoint and dialog.mirror.test_button.isEnabled()
    assert not dialog.download_box.isVisible()  # a test is no download
    assert models.ModelRegistry().get(str(demo_model_dir)) is not None and dialog.isVisible()


def test_the_connection_test_names_a_web_site_that_is_not_a_hub(qtbot, dialog):
    site = HtmlSite().start()
    try:
        dialog.mirror.edit.setText(site.endpoint)
        qtbot.mouseClick(dialog.mirror.test_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: "not a Hugging Face Hub" in dialog.mirror.answer.text(), timeout=30_000)
    finally:
        site.stop()
    assert dialog.mirror.answer.text() == (f"✗ {site.endpoint} answers, but it is not a Hugging Face Hub "
                                           "(no Hub API there).")
    wait_idle(qtbot, dialog)
    assert remembered_endpoint() is None


@pytest.fixture
def slow_site():
    """A server that takes each connection and answers with a web page only once `answer` is set."""
    answer = threading.Event()
    server = socket.create_server(("127.0.0.1", 0))

    def serve():
        connection, _ = server.accept()
        with connection:
            connection.recv(65536)
            answer.wait(30)
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 13\r\n"
                               b"Connection: close\r\n\r\n<html></html>")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}", answer
    answer.set()
    thread.join(10)
    server.close()


def test_the_window_stays_responsive_while_the_connection_test_waits(qtbot, dialog, slow_site):
    endpoint, answer = slow_site
    dialog.mirror.edit.setText(endpoint)
    ticks = []
    timer = QTimer(interval=10, timeout=lambda: ticks.append(1))
    timer.start()
    qtbot.mouseClick(dialog.mirror.test_button, Qt.MouseButton.LeftButton)
    assert dialog.mirror.answer.text() == f"Testing {endpoint}…"
    qtbot.wait(300)  # the GUI thread's event loop runs while the Hub has not answered
    assert len(ticks) >= 10 and dialog.mirror.answer.text() == f"Testing {endpoint}…" and dialog.busy
    answer.set()
    qtbot.waitUntil(lambda: "not a Hugging Face Hub" in dialog.mirror.answer.text(), timeout=30_000)
    timer.stop()
    wait_idle(qtbot, dialog)


def test_a_depth_estimator_downloaded_from_the_list_shows_as_downloaded(qtbot, dialog, mirror_hub, tiny_estimator):
    mirror_hub.add_repo(SMALL.repo_id, tiny_estimator)
    box = dialog.estimators
    assert box.tree.topLevelItemCount() == len(ESTIMATORS)
    base = ESTIMATORS["depth-anything-v2-base"]
    assert box.row(base.name).text(1) == f"{base.licence} · non-commercial"
    assert box.row(SMALL.name).text(1) == SMALL.licence and box.row(SMALL.name).text(2) == "99.2 MB"
    assert box.row(SMALL.name).toolTip(0).startswith(SMALL.note)
    assert box.row(SMALL.name).text(3) == "not downloaded"
    dialog.tabs.setCurrentIndex(1)
    box.tree.setCurrentItem(box.row(SMALL.name))
    assert box.download_button.isEnabled()
    qtbot.mouseClick(box.download_button, Qt.MouseButton.LeftButton)
    assert not box.download_button.isEnabled()  # one download at a time
    qtbot.waitUntil(lambda: box.row(SMALL.name).text(3) == "✓ downloaded", timeout=60_000)
    assert dialog.download_box.title() == f"Downloading {SMALL.label}"
    assert estimator_folder(SMALL.name) is not None
    wait_idle(qtbot, dialog)
    assert not box.download_button.isEnabled()  # it is there now
    assert models.ModelRegistry().entries() == []  # an estimator is no model to generate with


def test_ready_offline_lists_what_is_missing_then_gets_everything(qtbot, dialog, mirror_hub, tiny_estimator):
    mirror_hub.add_repo(SMALL.repo_id, tiny_estimator)
    dialog.set_default_estimator(SMALL.name)
    summary = dialog.summary
    assert summary.lines.text().split("<br>") == ["SD2-depth model: ✗ missing, 2.8 GB",
                                                  f"Depth estimator {SMALL.label}: ✗ missing, 99.2 MB"]
    assert summary.get_button.isVisible() and summary.get_button.text() == "Get everything for offline use (2.9 GB)"
    used = []
    dialog.sig_use_model.connect(used.append)
    titles = []

    class TitleSeen(QObject):  # lives in the GUI thread, so it sees each title after the dialog has set it
        @Slot(object, int, int)
        def record(self, *_):
            titles.append(dialog.download_box.title())

    seen = TitleSeen()
    dialog.download_worker.sig_started.connect(seen.record)
    qtbot.mouseClick(summary.get_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "Ready" in summary.lines.text(), timeout=60_000)
    assert summary.lines.text().split("<br>") == [
        "SD2-depth model: ✓ downloaded", f"Depth estimator {SMALL.label}: ✓ downloaded",
        "<b>Ready:</b> everything needed is on this computer; nothing touches the network now."]
    assert not summary.get_button.isVisible()
    assert titles == ["Downloading SD2-depth (1 of 2)", f"Downloading {SMALL.label} (2 of 2)"]
    assert models.ModelRegistry().get(SD2_DEPTH_REPO) is not None and used == []  # added; the user chooses when
    wait_idle(qtbot, dialog)


def test_ready_offline_counts_the_dpt_hybrid_inside_the_sd2_depth_model(qtbot, dialog, mirror_hub):
    summary = dialog.summary  # the default estimator: DPT-hybrid
    assert summary.lines.text().split("<br>")[1] == "Depth estimator DPT-Hybrid (MiDaS): ✗ missing, comes with the " \
                                                    "SD2-depth model"
    assert summary.get_button.text() == "Get everything for offline use (2.8 GB)"  # one download brings both
    qtbot.mouseClick(summary.get_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "Ready" in summary.lines.text(), timeout=60_000)
    assert summary.lines.text().split("<br>")[:2] == ["SD2-depth model: ✓ downloaded",
                                                      "Depth estimator DPT-Hybrid (MiDaS): ✓ inside the model"]
    assert dialog.estimators.row("dpt-hybrid").text(3) == "✓ inside the model"
    assert not [r for r in mirror_hub.requests if "dpt-hybrid-midas" in r[1]]
    wait_idle(qtbot, dialog)


def test_ready_offline_for_a_real_model_in_use_is_about_that_model(dialog, demo_model_dir):
    from d2i_desktop.core.generation.engine import ModelInfo

    dialog.set_model_in_use(ModelInfo("my-sd2-depth", "/models/my-sd2-depth", "cpu", "float32", False))
    assert dialog.summary.lines.text().split("<br>") == [
        "Model my-sd2-depth: ✓ in use, on this computer", "Depth estimator DPT-Hybrid (MiDaS): ✓ inside the model",
        "<b>Ready:</b> everything needed is on this computer; nothing touches the network now."]
    dialog.set_model_in_use(ModelInfo("a-single-file", "/models/a.safetensors", "cpu", "float32", False,
                                      own_depth_estimator=False))
    assert dialog.summary.lines.text().split("<br>")[1] == "Depth estimator DPT-Hybrid (MiDaS): ✗ missing, 490.0 MB"
    dialog.set_model_in_use(ModelInfo("demo", str(demo_model_dir), "cpu", "float32", True))
    assert dialog.summary.lines.text().startswith("SD2-depth model: ✗ missing")  # the demo model needs the real one


def test_models_in_the_hub_cache_are_offered(dialog, mirror_hub):
    from d2i_desktop.core.models.downloads import download_model

    download_model(SD2_DEPTH_REPO, endpoint=mirror_hub.endpoint)
    dialog.refresh()
    assert dialog.cache_list.isVisible() and SD2_DEPTH_REPO in dialog.cache_list.topLevelItem(0).text(0)


def test_a_folder_is_checked_in_the_download_thread_and_used(qtbot, dialog, demo_model_dir, monkeypatch):
    import threading

    from d2i_desktop.ui import download_worker

    checked_in = []
    real_add = download_worker.add_model
    monkeypatch.setattr(download_worker, "add_model",  # the real check, noting the thread it runs on
                        lambda *args, **kwargs: (checked_in.append(threading.current_thread()), real_add(*args, **kwargs))[1])
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *args, **kwargs: str(demo_model_dir))
    with qtbot.waitSignal(dialog.sig_use_model, timeout=30_000) as chosen:
        qtbot.mouseClick(dialog.findChild(QPushButton, "folderButton"), Qt.MouseButton.LeftButton)
    assert chosen.args == [str(demo_model_dir)]
    assert checked_in and checked_in[0] is not threading.main_thread()
    assert models.ModelRegistry().get(str(demo_model_dir)).kind == "demo"


def test_a_lora_picked_as_a_checkpoint_is_refused_before_any_depth_estimator_is_asked_for(
        qtbot, dialog, demo_model_dir, tmp_path, monkeypatch):
    from diffusers import StableDiffusionDepth2ImgPipeline

    from d2i_desktop.core.models.demo import write_demo_lora

    lora = write_demo_lora(StableDiffusionDepth2ImgPipeline.from_pretrained(demo_model_dir), tmp_path / "style.safetensors")
    asked = []
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *args, **kwargs: (str(lora), ""))
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *args, **kwargs: asked.append(args) or "")
    qtbot.mouseClick(dialog.findChild(QPushButton, "fileButton"), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(dialog.notice.message()), timeout=30_000)
    assert "LoRA" in dialog.notice.message() and asked == []
    assert models.ModelRegistry().entries() == [] and dialog.isVisible()
    wait_idle(qtbot, dialog)


def test_the_main_window_switches_models_from_the_dialog(qtbot, window, demo_model_dir, tmp_path):
    import shutil

    other = shutil.copytree(demo_model_dir, tmp_path / "another-model")
    models.add_model(other)
    from PySide6.QtGui import QAction

    window.findChild(QAction, "modelsAction").trigger()  # Model > Models…
    dlg = window.models_dialog
    assert dlg.isVisible() and dlg.windowTitle() == "Models"
    assert dlg.summary.lines.text().startswith("SD2-depth model:")  # the demo model is in use
    item = next(dlg.model_list.topLevelItem(i) for i in range(dlg.model_list.topLevelItemCount())
                if dlg.model_list.topLevelItem(i).data(0, Qt.ItemDataRole.UserRole) == str(other))
    dlg.model_list.setCurrentItem(item)
    with qtbot.waitSignal(window.worker_thread.worker.sig_model_loaded, timeout=60_000) as loaded:
        dlg.use_button.click()
    assert loaded.args[0].source == str(other)
    qtbot.waitUntil(lambda: window.model is not None and window.model.source == str(other), timeout=10_000)
    assert dlg.current_source == str(other)


def test_the_dialog_reads_the_default_estimator_from_the_settings(window, settings):
    from d2i_desktop.ui.settings_dialog import save_default_estimator

    save_default_estimator(settings, SMALL.name)
    dialog = window.show_models_dialog()
    assert f"Depth estimator {SMALL.label}: ✗ missing" in dialog.summary.lines.text()
    dialog.close()


def test_wrapped_explanations_stay_whole_when_the_dialog_grows(qtbot, window, demo_model_dir):
    dialog = window.show_models_dialog(first_run=True)
    qtbot.waitExposed(dialog)
    dialog.resize(dialog.minimumWidth(), 1)  # as small as the layout lets Qt make it
    dialog.download_box.show()  # contents change after it is shown, as when a download starts
    dialog.notes_label.setText("A note about the download that is long enough to wrap onto a second line at this "
                               "width of the dialog, as a skipped source's note does.")
    dialog.notes_label.show()
    qtbot.wait(50)
    wrapped = [label for label in dialog.findChildren(QLabel) if label.wordWrap() and label.isVisible() and label.text()]
    assert len(wrapped) >= 6
    for label in wrapped:
        assert label.height() >= label.heightForWidth(label.width()), label.text()
    assert dialog.frameGeometry().height() <= dialog.screen().availableGeometry().height()
