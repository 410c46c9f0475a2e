"""The library panel with qtbot: real widgets, real files, and the main window generating with a LoRA."""

import json
import os
import threading

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from d2i_desktop.core.extras.library import Library
from d2i_desktop.core.files.outputs import parse_parameters
from d2i_desktop.ui.library_panel import NAME, LibraryPanel
from d2i_desktop.ui.main_window import FRAME_ALLOWANCE
from library_samples import (
    embedding_vectors, lora_state, sd1_lora, write_a1111_embedding, write_diffusers_embedding, write_lora,
    write_pickle_payload,
)


@pytest.fixture(scope="module")
def pipe():
    from d2i_desktop.core.models.demo import build_demo_pipeline

    return build_demo_pipeline()


@pytest.fixture
def library(isolated_data_dir, pipe):
    library = Library()
    write_lora(library.root / "ink.safetensors", lora_state(pipe, "kohya", seed=1),
               {"ss_tag_frequency": json.dumps({"set": {"ink wash": 9, "brush": 3}})})
    write_lora(library.root / "grain.safetensors", lora_state(pipe, "peft", seed=2))
    Image.new("RGB", (32, 32), "orange").save(library.root / "grain.preview.png")
    write_a1111_embedding(library.root / "moody.pt", embedding_vectors())
    (library.root / "broken.safetensors").write_bytes(b"12345")
    return library


@pytest.fixture
def panel(qtbot, library):
    panel = LibraryPanel(library)
    qtbot.addWidget(panel)
    panel.show()
    qtbot.waitUntil(lambda: not panel.scanning, timeout=10_000)
    return panel


def names_shown(panel):
    rows = (panel.tree.topLevelItem(i) for i in range(panel.tree.topLevelItemCount()))
    return [row.text(NAME) for row in rows if not row.isHidden()]


def test_lists_name_kind_base_words_size_and_thumbnail(panel):
    rows = {panel.tree.topLevelItem(i).text(NAME): panel.tree.topLevelItem(i) for i in range(4)}

    assert sorted(rows) == ["broken", "grain", "ink", "moody"]
    assert [rows["ink"].text(c) for c in (2, 3, 4)] == ["LoRA", "a 32-wide model", "ink wash, brush"]
    assert rows["moody"].text(2) == "embedding"
    assert rows["broken"].text(2) == "unusable" and "is damaged" in rows["broken"].toolTip(NAME)
    assert not rows["grain"].icon(NAME).isNull() and rows["ink"].icon(NAME).isNull()
    assert rows["ink"].text(5).endswith("kB")


def test_search_filters_by_name_words_and_kind(panel, qtbot):
    qtbot.keyClicks(panel.search, "brush")
    assert names_shown(panel) == ["ink"]
    panel.search.setText("embedding")
    assert names_shown(panel) == ["moody"]
    panel.search.clear()
    assert len(names_shown(panel)) == 4


def test_ticked_loras_with_slider_weights_survive_a_rescan(panel):
    panel.row_of("grain").setCheckState(NAME, Qt.CheckState.Checked)
    panel.weight_slider("grain").slider.setValue(65)
    panel.row_of("ink").setCheckState(NAME, Qt.CheckState.Checked)

    before = panel.selected_loras()
    panel.refresh()

    assert before == (("grain", 0.65), ("ink", 1.0))
    assert panel.selected_loras() == before
    assert panel.weight_slider("grain").label.text() == "0.65"


def test_double_click_inserts_an_embedding_token_or_trigger_words(panel, qtbot):
    inserted = []
    panel.sig_insert_text.connect(inserted.append)

    for name in ("moody", "ink"):
        centre = panel.tree.visualRect(panel.tree.indexFromItem(panel.row_of(name), 2)).center()  # the Kind cell
        qtbot.mouseClick(panel.tree.viewport(), Qt.MouseButton.LeftButton, pos=centre)
        qtbot.mouseDClick(panel.tree.viewport(), Qt.MouseButton.LeftButton, pos=centre)

    assert inserted == ["moody", "ink wash, brush"]


def test_edits_are_saved_beside_the_library_not_in_the_file(panel, library, qtbot):
    before = (library.root / "ink.safetensors").read_bytes()
    panel.tree.setCurrentItem(panel.row_of("ink"))
    panel.words_edit.setText("inkwash, sumi")
    panel.default_weight.setValue(0.7)
    panel._save_edits()

    assert panel.row_of("ink").text(4) == "inkwash, sumi"
    assert library.find("ink", "LoRA").default_weight == 0.7
    assert (library.root / "ink.safetensors").read_bytes() == before
    assert json.loads(library.settings_path.read_text())["items"]["ink"]["trigger_words"] == ["inkwash", "sumi"]


def test_thumbnail_from_the_current_result(panel, library):
    panel.tree.setCurrentItem(panel.row_of("ink"))
    assert not panel.thumb_button.isEnabled()

    panel.set_current_result(Image.new("RGB", (64, 64), "purple"))
    panel.thumb_button.click()

    assert library.find("ink", "LoRA").thumbnail == library.thumbnail_dir / "ink.png"
    assert not panel.row_of("ink").icon(NAME).isNull()
    assert panel.thumbnail.pixmap() is not None and not panel.thumbnail.pixmap().isNull()


def test_drop_imports_files_and_reports_duplicates_and_refusals(panel, pipe, tmp_path, qtbot):
    messages = []
    panel.sig_message.connect(lambda *args: messages.append(args))
    fresh = write_diffusers_embedding(tmp_path / "dl" / "glow.safetensors", embedding_vectors(seed=5))
    same = tmp_path / "dl" / "ink-copy.safetensors"
    same.write_bytes((panel.library.root / "ink.safetensors").read_bytes())

    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(fresh)), QUrl.fromLocalFile(str(same))])
    drop = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
    panel.dropEvent(drop)
    qtbot.waitUntil(lambda: not panel.scanning, timeout=10_000)
    bad = tmp_path / "dl" / "half.safetensors"
    bad.write_bytes(fresh.read_bytes()[:40])
    panel.import_files([bad])
    qtbot.waitUntil(lambda: not panel.scanning, timeout=10_000)

    assert "glow" in names_shown(panel)
    assert messages[0] == ("Imported glow.", "ink-copy.safetensors is already in the library as 'ink'.", "info")
    assert messages[1][0].startswith("half.safetensors is damaged") and messages[1][2] == "error"
    assert not (panel.library.root / "half.safetensors").exists()


def test_remove_moves_to_the_trash(panel, library, tmp_path, monkeypatch, qtbot):
    from send2trash import plat_other

    monkeypatch.setattr(plat_other, "XDG_DATA_HOME", os.fsencode(tmp_path / "share"))
    monkeypatch.setattr(plat_other, "HOMETRASH_B", os.fsencode(tmp_path / "share" / "Trash"))
    panel.tree.setCurrentItem(panel.row_of("grain"))
    panel.remove_button.click()
    qtbot.waitUntil(lambda: not panel.scanning, timeout=10_000)

    assert "grain" not in names_shown(panel)
    assert sorted(p.name for p in (tmp_path / "share" / "Trash" / "files").iterdir()) == \
        ["grain.preview.png", "grain.safetensors"]


def test_an_import_runs_off_the_gui_thread_and_the_dock_says_so(panel, qtbot, tmp_path, monkeypatch):
    release, imported_in = threading.Event(), []
    real_import = Library.import_file

    def held_import(self, source):  # the real import, held back until the test lets it go
        imported_in.append(threading.current_thread())
        release.wait(10)
        return real_import(self, source)

    monkeypatch.setattr(Library, "import_file", held_import)
    files = [write_diffusers_embedding(tmp_path / "dl" / f"{name}.safetensors", embedding_vectors(seed=seed))
             for seed, name in enumerate(("glow", "haze", "mist"))]
    panel.import_files(files)  # returns while the import waits

    assert panel.scanning and panel.busy_label.isVisible() and panel.busy_label.text() == "Importing 3 files…"
    assert not panel.remove_button.isEnabled()
    release.set()
    qtbot.waitUntil(lambda: not panel.scanning, timeout=10_000)
    assert {"glow", "haze", "mist"} <= set(names_shown(panel)) and not panel.busy_label.isVisible()
    assert imported_in and threading.main_thread() not in imported_in


def test_a_file_that_holds_code_is_refused_in_the_notice_and_never_runs(panel, qtbot, tmp_path):
    messages = []
    panel.sig_message.connect(lambda *args: messages.append(args))
    marker = tmp_path / "payload-ran"
    panel.import_files([write_pickle_payload(tmp_path / "dl" / "evil.pt", marker)])
    qtbot.waitUntil(lambda: not panel.scanning, timeout=10_000)

    assert len(messages) == 1 and messages[0][2] == "error"
    assert messages[0][0].startswith("evil.pt holds code, not just weights")
    assert not marker.exists() and not (panel.library.root / "evil.pt").exists() and "evil" not in names_shown(panel)


def test_two_imports_at_once_keep_both_files(library, pipe, tmp_path):
    """Two same-named files imported from two threads at once: each gets its own name, neither overwrites."""
    sources = [write_lora(tmp_path / f"from-{n}" / "style.safetensors", lora_state(pipe, "kohya", seed=10 + n))
               for n in range(2)]
    start, results = threading.Barrier(2), []

    def import_one(source):
        start.wait()
        results.append(library.import_file(source))

    threads = [threading.Thread(target=import_one, args=(source,)) for source in sources]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert sorted(item.name for item in results) == ["style", "style-2"]
    assert sorted(item.path.read_bytes() for item in results) == sorted(source.read_bytes() for source in sources)


def test_the_dock_shows_every_button_and_whole_columns_on_a_1280x720_screen(qtbot, window):
    window.resize(1280 - FRAME_ALLOWANCE.width(), 720 - FRAME_ALLOWANCE.height())
    window.reset_layout()
    window.library_dock.raise_()
    panel, scroller = window.library_panel, window.library_dock.widget()
    qtbot.waitUntil(lambda: panel.isVisible() and not panel.scanning, timeout=10_000)
    qtbot.wait(50)  # the dock area settles its sizes after the layout is reset

    room = scroller.viewport().width()
    assert panel.minimumSizeHint().width() <= room and not scroller.horizontalScrollBar().isVisible()
    for button in (panel.mix_button, panel.remove_button):
        assert button.isVisible() and button.sizeHint().width() <= button.width()
        assert button.mapTo(panel, QPoint(button.width(), 0)).x() <= panel.width() <= room  # its right edge shows
    header = panel.tree.header()
    assert header.length() <= panel.tree.viewport().width()  # no column cut at the right edge
    assert not header.isSectionHidden(NAME) and not header.isSectionHidden(2)  # name, weight and kind at least


def test_adding_a_folder_lists_its_files_in_place_and_a_missing_one_is_refused(panel, qtbot, tmp_path):
    messages = []
    panel.sig_message.connect(lambda *args: messages.append(args))
    dusk = write_diffusers_embedding(tmp_path / "extra" / "dusk.safetensors", embedding_vectors(seed=7))
    panel.add_folder(dusk.parent)
    assert panel.busy_label.text() == "Adding the folder extra…"
    qtbot.waitUntil(lambda: not panel.scanning, timeout=10_000)
    assert "dusk" in names_shown(panel) and panel.items["embedding:dusk"].path == dusk and messages == []

    panel.add_folder(tmp_path / "missing")
    qtbot.waitUntil(lambda: not panel.scanning, timeout=10_000)
    assert messages == [(f"{tmp_path / 'missing'} is not a folder.",
                         "Choose a folder that holds LoRA or embedding files.", "error")]


def test_a_wide_dock_shows_every_column_whole(panel, qtbot):
    panel.resize(1000, 600)
    qtbot.waitUntil(lambda: not panel.tree.header().isSectionHidden(5))
    header = panel.tree.header()
    assert not any(header.isSectionHidden(column) for column in range(6))
    assert header.length() <= panel.tree.viewport().width()
    assert header.sectionSize(4) >= panel.tree.sizeHintForColumn(4)  # "ink wash, brush" whole


# -- in the main window ---------------------------------------------------------------------
def open_photo(qtbot, window, tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(3).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)
    with qtbot.waitSignal(window.worker_thread.worker.sig_depth_ready, timeout=30_000):
        assert window.open_image(path)
    qtbot.waitUntil(lambda: window.depth is not None and not window.busy, timeout=10_000)


def generate(qtbot, window):
    """Generate and wait until the window has handled the outcome; returns the result or the failure message."""
    worker, outcomes = window.worker_thread.worker, []
    record_result, record_failure = outcomes.append, lambda message, _hint: outcomes.append(message)
    worker.sig_result.connect(record_result)
    worker.sig_failed.connect(record_failure)
    qtbot.waitUntil(lambda: not window.busy, timeout=30_000)
    window.generate()
    qtbot.waitUntil(lambda: bool(outcomes) and not window.busy, timeout=60_000)  # idle comes after the window saw the outcome
    worker.sig_result.disconnect(record_result)
    worker.sig_failed.disconnect(record_failure)
    return outcomes[0]


def test_window_generates_with_the_ticked_lora_and_records_it(qtbot, window, library, tmp_path):
    panel = window.library_panel
    panel.refresh()
    open_photo(qtbot, window, tmp_path)
    window.params_panel.prompt.setPlainText("a harbour")
    window.params_panel.steps.setValue(2)
    window.params_panel.seed.setValue(4)
    panel.row_of("ink").setCheckState(NAME, Qt.CheckState.Checked)
    panel.weight_slider("ink").set_weight(0.6)

    result = generate(qtbot, window)
    fields = parse_parameters(result.parameters_text(0))

    assert fields["prompt"] == "a harbour <lora:ink:0.6>"
    assert fields["Lora hashes"] == f"ink: {library.find('ink', 'LoRA').short_hash}"
    assert window.notice.level != "error"


def test_window_shows_a_refused_lora_in_the_notice_bar_and_keeps_working(qtbot, window, library, tmp_path):
    write_lora(library.root / "old.safetensors", sd1_lora())
    panel = window.library_panel
    panel.refresh()
    open_photo(qtbot, window, tmp_path)
    window.params_panel.steps.setValue(2)
    window.params_panel.prompt.setPlainText("a harbour <lora:old:1>")

    failure = generate(qtbot, window)
    shown = window.notice.message()
    window.params_panel.prompt.setPlainText("a harbour")
    result = generate(qtbot, window)

    assert failure == "old is a LoRA for SD 1.x; the loaded model is demo model (random weights)."
    assert failure in shown and window.notice.level == "error"
    assert result.params.prompt == "a harbour" and window.result is result


def test_double_clicked_embedding_lands_in_the_prompt(qtbot, window, library):
    window.library_panel.refresh()
    window.params_panel.prompt.setPlainText("a harbour,")
    window.params_panel.prompt.moveCursor(window.params_panel.prompt.textCursor().MoveOperation.End)

    window.library_panel.sig_insert_text.emit("moody")

    assert window.params_panel.prompt.toPlainText() == "a harbour, moody "


def test_an_empty_library_says_how_to_fill_it(qtbot, isolated_data_dir):
    empty = LibraryPanel(Library())
    qtbot.addWidget(empty)
    empty.show()
    qtbot.waitUntil(lambda: not empty.scanning, timeout=10_000)
    assert empty.empty_hint.isVisible() and "Import" in empty.empty_hint.text()


def test_the_hint_goes_once_the_library_has_files(panel):
    assert not panel.empty_hint.isVisible()


def test_the_library_is_scanned_off_the_gui_thread(qtbot, library, monkeypatch):
    release, scanned_in = threading.Event(), []
    real_items = Library.items

    def slow_items(self):  # the real scan, held back until the test lets it go
        scanned_in.append(threading.current_thread())
        release.wait(10)
        return real_items(self)

    monkeypatch.setattr(Library, "items", slow_items)
    panel = LibraryPanel(library)  # returns while the scan waits
    qtbot.addWidget(panel)
    assert panel.scanning and names_shown(panel) == []
    release.set()
    qtbot.waitUntil(lambda: not panel.scanning, timeout=10_000)
    assert sorted(names_shown(panel)) == ["broken", "grain", "ink", "moody"]
    assert scanned_in and threading.main_thread() not in scanned_in


def test_export_mix_button_saves_the_ticked_loras_into_the_library(qtbot, window, library, monkeypatch):
    panel = window.library_panel
    panel.refresh()
    target = library.root / "blend.safetensors"
    monkeypatch.setattr("d2i_desktop.ui.library_panel.QFileDialog.getSaveFileName", lambda *a, **k: (str(target), ""))
    panel.mix_button.click()
    assert window.notice.level == "warning" and not target.exists()  # nothing ticked yet

    for name, weight in (("ink", 0.6), ("grain", 0.4)):
        panel.row_of(name).setCheckState(NAME, Qt.CheckState.Checked)
        panel.weight_slider(name).set_weight(weight)
    with qtbot.waitSignal(window.worker_thread.worker.sig_mix_exported, timeout=60_000):
        panel.mix_button.click()
    qtbot.waitUntil(lambda: panel.row_of("blend") is not None and not window.busy, timeout=10_000)
    sources = json.loads(library.find("blend", "LoRA").metadata["d2i.mix"])
    assert sorted((source["name"], source["weight"]) for source in sources) == [("grain", 0.4), ("ink", 0.6)]
    assert window.notice.level == "info"
