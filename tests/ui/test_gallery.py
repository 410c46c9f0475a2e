"""The gallery dock with qtbot: real pictures written by generation, a real SQLite index, real thumbnails."""

import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import send2trash.plat_other
from PIL import Image
from PySide6.QtCore import Qt

from d2i_desktop.core.history.index import History, picture_facts
from d2i_desktop.core.history.record import depth_path_for, levels_to_depth, read_depth_levels
from d2i_desktop.ui import gallery_loader, gallery_panel as gallery_module, worker as worker_module


@pytest.fixture
def photo(make_photo):
    return make_photo(64, 64, "meadow.png", seed=8)


@pytest.fixture
def trash(tmp_path, monkeypatch):
    """send2trash's home trash, inside this test's folder."""
    home = tmp_path / "xdg-data"
    home.mkdir()
    monkeypatch.setattr(send2trash.plat_other, "XDG_DATA_HOME", os.fsencode(home))
    monkeypatch.setattr(send2trash.plat_other, "HOMETRASH_B", os.fsencode(home / "Trash"))
    return home / "Trash" / "files"


def make(qtbot, window, prompt, seed):
    panel = window.params_panel
    panel.prompt.setPlainText(prompt)
    panel.steps.setValue(2)
    panel.strength.setValue(1.0)
    panel.seed.setValue(seed)
    previous = window.result
    window.generate()
    qtbot.waitUntil(lambda: window.result is not previous and not window.busy, timeout=60_000)
    return window.session.current_path()


@pytest.fixture
def two_pictures(qtbot, window, photo):
    with qtbot.waitSignal(window.worker_thread.worker.sig_depth_ready, timeout=30_000):
        assert window.open_image(photo)
    qtbot.waitUntil(lambda: window.depth is not None and not window.busy, timeout=10_000)
    return make(qtbot, window, "red barn in snow", 77), make(qtbot, window, "blue lake at noon", 78)


def shown(gallery):
    return [gallery.list.item(row).data(Qt.ItemDataRole.UserRole + 1) for row in range(gallery.list.count())]


def searched(qtbot, gallery, change):
    """Make `change` to the search or a filter and wait until its answer is listed (it is read in the background)."""
    with qtbot.waitSignal(gallery.sig_searched, timeout=10_000):
        change()


def has_thumbnail(gallery, row):
    icon = gallery.list.item(row).icon()
    return not icon.isNull() and icon.cacheKey() != gallery.placeholder.cacheKey()


def test_new_pictures_appear_with_thumbnails_and_are_found_by_prompt_words(qtbot, window, two_pictures):
    barn, lake = two_pictures
    gallery = window.gallery_panel
    assert shown(gallery) == [str(lake.resolve()), str(barn.resolve())]  # newest first
    qtbot.waitUntil(lambda: all(has_thumbnail(gallery, row) for row in range(2)), timeout=10_000)
    searched(qtbot, gallery, lambda: gallery.search.setText("barn sno"))  # every word, a prefix of a word matches
    assert shown(gallery) == [str(barn.resolve())]
    searched(qtbot, gallery, lambda: gallery.search.setText(""))
    assert len(shown(gallery)) == 2
    assert gallery.model.findText("demo model (random weights)") > 0


def test_favourites_filter_and_drag_out_as_files(qtbot, window, two_pictures):
    barn, _lake = two_pictures
    gallery = window.gallery_panel
    gallery.select(barn)
    qtbot.mouseClick(gallery.favourite_button, Qt.MouseButton.LeftButton)
    searched(qtbot, gallery, lambda: gallery.favourites_only.setChecked(True))
    assert shown(gallery) == [str(barn.resolve())] and gallery.list.item(0).text().startswith("★")
    mime = gallery.list.mimeData([gallery.list.item(0)])
    assert [url.toLocalFile() for url in mime.urls()] == [str(barn.resolve())]


def test_use_these_settings_brings_back_settings_input_and_depth(qtbot, window, two_pictures, make_photo):
    barn, _lake = two_pictures
    with qtbot.waitSignal(window.worker_thread.worker.sig_depth_ready, timeout=30_000):
        assert window.open_image(make_photo(64, 64, "other.png", seed=2))
    qtbot.waitUntil(lambda: window.depth is not None and not window.busy, timeout=10_000)
    window.params_panel.prompt.setPlainText("something else")
    gallery = window.gallery_panel
    gallery.select(barn)
    with qtbot.waitSignal(window.sig_settings_taken, timeout=30_000) as taken:
        qtbot.mouseClick(gallery.use_button, Qt.MouseButton.LeftButton)
    assert taken.args == [str(barn.resolve()), True]
    params = window.params_panel.params()
    assert (params.prompt, params.seed, params.steps) == ("red barn in snow", 77, 2)
    assert window.session.image_name == "meadow.png"
    np.testing.assert_allclose(window.depth, levels_to_depth(read_depth_levels(depth_path_for(barn))), atol=1e-6)
    qtbot.wait(500)
    assert not window.busy  # the recorded map is used: no estimate replaces it


def test_use_these_settings_when_the_input_is_gone_keeps_the_current_image(qtbot, window, two_pictures, photo):
    barn, _lake = two_pictures
    photo.unlink()
    window.params_panel.prompt.setPlainText("something else")
    with qtbot.waitSignal(window.sig_settings_taken, timeout=30_000) as taken:
        window.use_picture(barn)
    assert taken.args == [str(barn), True]
    assert window.params_panel.params().prompt == "red barn in snow"
    assert "is gone" in window.notice.message() and window.session.image is not None


def test_delete_moves_the_picture_and_its_depth_map_to_the_trash(qtbot, window, two_pictures, trash):
    barn, lake = two_pictures
    gallery = window.gallery_panel
    gallery.select(barn)
    qtbot.mouseClick(gallery.delete_button, Qt.MouseButton.LeftButton)
    assert not barn.exists() and not depth_path_for(barn).exists()
    assert sorted(p.name for p in trash.iterdir()) == sorted([barn.name, depth_path_for(barn).name])
    assert shown(gallery) == [str(lake.resolve())]
    history = History()
    try:
        assert [entry.path for entry in history.search()] == [str(lake.resolve())]
    finally:
        history.close()


def test_pictures_dropped_in_or_deleted_outside_the_app_are_noticed(qtbot, window, two_pictures, third_party_samples):
    barn, lake = two_pictures
    lake.unlink()
    dropped = shutil.copy(third_party_samples / "sdparsers_automatic1111_cropped.png", barn.parent / "from-a1111.png")
    with qtbot.waitSignal(window.gallery_panel.synced.sig_done, timeout=30_000):  # in the background
        window.gallery_panel.sync()
    assert sorted(shown(window.gallery_panel)) == sorted([str(barn.resolve()), str(dropped.resolve())])


def test_use_settings_from_a_fooocus_picture(qtbot, window, third_party_samples):
    with qtbot.waitSignal(window.sig_settings_taken, timeout=30_000) as taken:
        window.use_settings_from(third_party_samples / "sdparsers_fooocus1_cropped.png")
    assert taken.args[1] is True
    assert "Fooocus" in window.notice.message() and window.notice.level == "info"
    assert window.params_panel.params().prompt


def reproduce(qtbot, window, path):
    gallery = window.gallery_panel
    gallery.select(path)
    with qtbot.waitSignal(window.worker_thread.worker.sig_job_ended, timeout=60_000):
        qtbot.mouseClick(gallery.reproduce_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.busy, timeout=10_000)
    return window.notice.message()


def test_reproduce_from_the_gallery_says_identical_in_one_line(qtbot, window, two_pictures, monkeypatch):
    barn, _lake = two_pictures
    threads = []
    real = worker_module.reproduce
    monkeypatch.setattr(worker_module, "reproduce",
                        lambda *args, **kwargs: threads.append(threading.get_ident()) or real(*args, **kwargs))
    message = reproduce(qtbot, window, barn)
    assert threads and threading.get_ident() not in threads  # made again in the worker's thread
    assert f"{barn.name}: Identical to the recorded picture" in message and window.notice.level == "info"
    assert "<br>" not in message  # one line
    assert (barn.parent / "reproduced" / barn.name).is_file()


def test_reproduce_says_how_far_it_differs_and_what_changed(qtbot, window, two_pictures):
    barn, _lake = two_pictures
    levels = read_depth_levels(depth_path_for(barn))
    depth_path_for(barn).unlink()
    Image.fromarray((65535 - levels).astype(np.uint16)).save(depth_path_for(barn))  # an edited map under the same name
    message = reproduce(qtbot, window, barn)
    assert window.notice.level == "warning"
    assert "Differs from the recorded picture: largest channel difference" in message and "PSNR" in message
    assert "depth map: " in message and "then, " in message and "model weights" not in message


def test_reproduce_a_picture_made_elsewhere_says_why_not(qtbot, window, two_pictures, third_party_samples):
    barn, _lake = two_pictures
    dropped = shutil.copy(third_party_samples / "sdparsers_automatic1111_cropped.png", barn.parent / "from-a1111.png")
    with qtbot.waitSignal(window.gallery_panel.synced.sig_done, timeout=30_000):  # in the background
        window.gallery_panel.sync()
    message = reproduce(qtbot, window, dropped)
    assert "from-a1111.png was not made by this app" in message and window.notice.level == "error"


def test_filters_by_lora_and_by_date(qtbot, window, two_pictures):
    barn, lake = two_pictures
    old = shutil.copy(barn, barn.parent / "old-with-lora.png")
    history = History()
    try:
        facts = picture_facts(Path(old).resolve())
        facts |= {"loras": [("ink_wash", 0.8)], "created": time.time() - 10 * 86400, "record_id": "another"}
        history.add_many([(Path(old).resolve(), facts)])
    finally:
        history.close()
    gallery = window.gallery_panel
    gallery.refresh()
    assert [gallery.lora.itemText(index) for index in range(gallery.lora.count())] == ["All LoRAs", "ink_wash"]
    searched(qtbot, gallery, lambda: gallery.lora.setCurrentText("ink_wash"))
    assert shown(gallery) == [str(Path(old).resolve())]
    searched(qtbot, gallery, lambda: gallery.period.setCurrentText("Last 7 days"))
    assert shown(gallery) == []
    searched(qtbot, gallery, lambda: gallery.lora.setCurrentIndex(0))
    assert shown(gallery) == [str(lake.resolve()), str(barn.resolve())]
    searched(qtbot, gallery, lambda: gallery.period.setCurrentText("Last 30 days"))
    assert len(shown(gallery)) == 3
    searched(qtbot, gallery, lambda: gallery.period.setCurrentText("Today"))
    assert shown(gallery) == [str(lake.resolve()), str(barn.resolve())]


def test_scrolling_to_the_end_lists_every_picture_and_thumbnails_never_hold_up_the_gui(qtbot, tmp_path, monkeypatch):
    total = 2500
    folder = tmp_path / "many"
    folder.mkdir()
    rows = []
    for number in range(total):
        path = folder / f"{number:05d}.png"
        Image.new("RGB", (8, 8), (number % 256, number // 256, 0)).save(path)
        rows.append((path, {"prompt": f"picture {number}", "negative": "", "params": {}, "model": "sd2-depth",
                            "loras": [], "seed": number, "width": 8, "height": 8, "created": 1.7e9 + number,
                            "record_id": f"{number:032x}"}))
    history = History()
    history.add_many(rows)
    newest_first = [entry.path for entry in history.search(limit=total)]
    history.close()
    release, threads = threading.Event(), []
    real = gallery_loader.thumbnail

    def held_back(path):  # no thumbnail is made until the test says so
        threads.append(threading.get_ident())
        release.wait(60)
        return real(path)

    monkeypatch.setattr(gallery_loader, "thumbnail", held_back)
    gallery = gallery_module.GalleryPanel(lambda: [folder])
    qtbot.addWidget(gallery)
    gallery.resize(360, 600)
    gallery.show()
    bar = gallery.list.verticalScrollBar()
    try:
        gallery.refresh()
        assert gallery.list.count() == gallery_module.PAGE and not gallery.complete
        while gallery.list.count() < total:
            listed = gallery.list.count()
            qtbot.waitUntil(lambda: bar.maximum() > bar.value())  # the new items are laid out
            gallery.list.scrollToBottom()
            assert gallery.list.count() == min(listed + gallery_module.PAGE, total)
        assert gallery.complete and shown(gallery) == newest_first
        gallery.list.scrollToTop()
        gallery.list.scrollToBottom()
        assert gallery.list.count() == total  # nothing read twice
        assert gallery.icons == {}  # every thumbnail is still being made: the listing never waited for one
        assert not has_thumbnail(gallery, 0) and not gallery.list.item(0).icon().isNull()  # a placeholder meanwhile
    finally:
        release.set()
    qtbot.waitUntil(lambda: len(gallery.icons) == total, timeout=60_000)
    assert threading.get_ident() not in threads and len(threads) == total
    assert has_thumbnail(gallery, total - 1)
    gallery.refresh()  # a new picture or a favourite: as many listed as before, scrolled where they were
    assert gallery.list.count() == total and 0 < bar.value() == bar.maximum()
    searched(qtbot, gallery, lambda: gallery.search.setText("picture"))  # a new search starts at the first page
    assert gallery.list.count() == gallery_module.PAGE
    gallery.shutdown()


def test_a_new_picture_a_favourite_or_a_delete_touches_only_that_entry(qtbot, tmp_path, monkeypatch, trash):
    total = 2 * gallery_module.PAGE + 50
    folder = tmp_path / "many"
    folder.mkdir()

    def row(number):
        path = folder / f"{number:05d}.png"
        Image.new("RGB", (8, 8), (number % 256, 0, 0)).save(path)
        return path.resolve(), {"prompt": f"picture {number}", "negative": "", "params": {}, "model": "sd2-depth",
                                "loras": [], "seed": number, "width": 8, "height": 8, "created": 1.7e9 + number,
                                "record_id": f"{number:032x}"}

    history = History()
    history.add_many([row(number) for number in range(total)])
    newest_first = [entry.path for entry in history.search(limit=total)]
    gallery = gallery_module.GalleryPanel(lambda: [folder])
    qtbot.addWidget(gallery)
    gallery.resize(360, 600)
    gallery.show()
    bar = gallery.list.verticalScrollBar()
    gallery.refresh()
    while not gallery.complete:
        qtbot.waitUntil(lambda: bar.maximum() > bar.value())
        gallery.list.scrollToBottom()
    assert shown(gallery) == newest_first
    reads = []
    search = History.search
    monkeypatch.setattr(gallery.history, "search", lambda *args, **kwargs:
                        reads.append((kwargs["offset"], kwargs["limit"])) or search(gallery.history, *args, **kwargs))
    oldest, scrolled = gallery.list.item(total - 1), bar.value()

    newest, facts = row(total)
    history.add_many([(newest, facts)])  # as a finished picture is indexed
    gallery.refresh()
    assert reads == [(0, gallery_module.PAGE)]  # the first page alone
    assert shown(gallery) == [str(newest), *newest_first]
    assert gallery.list.item(total) is oldest and bar.value() == scrolled  # the rest is left as listed

    gallery.list.clearSelection()
    oldest.setSelected(True)
    gallery.toggle_favourite()
    assert oldest.text() == "★ 0" and history.search(favourite=True)[0].path == newest_first[-1]
    gallery.delete_selected()
    assert not Path(newest_first[-1]).exists() and history.count() == total
    assert shown(gallery) == [str(newest), *newest_first[:-1]]
    assert reads == [(0, gallery_module.PAGE)]  # neither read the index again
    history.close()
    gallery.shutdown()


def test_bringing_the_index_in_step_runs_off_the_gui_thread(qtbot, window, two_pictures, monkeypatch):
    import threading

    from d2i_desktop.core.history import index

    threads = []
    real_sync = index.History.sync
    monkeypatch.setattr(index.History, "sync", lambda self, folders: threads.append(threading.get_ident())
                        or real_sync(self, folders))
    with qtbot.waitSignal(window.gallery_panel.synced.sig_done, timeout=30_000):
        window.gallery_panel.sync()
    assert threads and threading.get_ident() not in threads


@pytest.fixture
def indexed(tmp_path):
    """A folder of small pictures, indexed: 'picture 0' .. 'picture 29', newest last."""
    folder = tmp_path / "few"
    folder.mkdir()
    rows = []
    for number in range(30):
        path = folder / f"{number:02d}.png"
        Image.new("RGB", (8, 8), (number * 8, 0, 0)).save(path)
        rows.append((path.resolve(), {"prompt": f"picture {number}", "negative": "", "params": {}, "model": "sd2-depth",
                                      "loras": [], "seed": number, "width": 8, "height": 8, "created": 1.7e9 + number,
                                      "record_id": f"{number:032x}"}))
    history = History()
    history.add_many(rows)
    history.close()
    return folder


def test_typing_searches_once_it_pauses_and_off_the_gui_thread(qtbot, indexed, monkeypatch):
    threads = []
    real = gallery_loader.run_query
    monkeypatch.setattr(gallery_loader, "run_query",
                        lambda *args: threads.append(threading.get_ident()) or real(*args))
    gallery = gallery_module.GalleryPanel(lambda: [indexed])
    qtbot.addWidget(gallery)
    gallery.refresh()
    assert gallery.list.count() == 30
    with qtbot.waitSignal(gallery.sig_searched, timeout=10_000):
        for typed in ("2", "29"):  # keys faster than the pause: one search, for the whole text
            gallery.search.setText(typed)
        assert gallery.list.count() == 30 and threads == []  # nothing read yet: typing never waits on the index
    assert shown(gallery) == [str((indexed / "29.png").resolve())]
    assert len(threads) == 1 and threading.get_ident() not in threads
    gallery.shutdown()


def test_a_search_overtaken_by_a_newer_one_is_never_listed(qtbot, indexed, monkeypatch):
    release, started = threading.Event(), threading.Event()
    real = gallery_loader.run_query

    def first_held_back(history, query):
        if query.words == "picture 12":
            started.set()
            release.wait(30)
        return real(history, query)

    monkeypatch.setattr(gallery_loader, "run_query", first_held_back)
    gallery = gallery_module.GalleryPanel(lambda: [indexed])
    qtbot.addWidget(gallery)
    listed = []
    gallery.sig_searched.connect(lambda: listed.append(shown(gallery)))
    gallery.search.setText("picture 12")
    gallery.start_search()
    assert started.wait(10)
    gallery.search.setText("picture 25")
    gallery.start_search()  # while the first is still being read
    release.set()
    qtbot.waitUntil(lambda: bool(listed), timeout=10_000)
    gallery.search_pool.waitForDone(10_000)
    qtbot.wait(50)  # any answer still on its way is delivered
    assert listed == [[str((indexed / "25.png").resolve())]]
    gallery.shutdown()
