"""The history index: real SQLite files, real pictures in a real folder."""

import sqlite3
import time

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from d2i_desktop.core.files.app_data import take_notices
from d2i_desktop.core.history.index import SCHEMA_VERSION, History, HistoryError
from d2i_desktop.core.history.record import RECORD_KEY


def record(prompt: str, seed: int = 1, model: str = "demo", loras=(), record_id: str | None = None,
           created: str = "2026-01-02T03:04:05+0000") -> dict:
    return {"format": 1, "id": record_id or f"id-{prompt}-{seed}", "created": created, "model": {"name": model},
            "params": {"prompt": prompt, "negative_prompt": "blurry", "steps": 4},
            "loras": [{"name": name, "weight": weight, "sha256": "0" * 64} for name, weight in loras],
            "seed": seed, "image": {"width": 8, "height": 8}}


def picture(folder, name: str, chunk: dict | None = None, parameters: str | None = None):
    import json

    folder.mkdir(parents=True, exist_ok=True)
    info = PngInfo()
    if chunk is not None:
        info.add_text(RECORD_KEY, json.dumps(chunk))
    if parameters is not None:
        info.add_text("parameters", parameters)
    path = folder / name
    Image.new("RGB", (8, 8)).save(path, pnginfo=info)
    return path


@pytest.fixture(params=[True, False], ids=["fts5", "like"])
def history(request, tmp_path):
    index = History(tmp_path / "history.sqlite3", use_fts=request.param)
    yield index
    index.close()


def test_search_by_prompt_words_and_filters(history, tmp_path):
    out = tmp_path / "out"
    cat = history.add(picture(out, "1.png", record("a red cat on a boat", loras=[("ink", 0.8)])))
    dog = history.add(picture(out, "2.png", record("a dog in the harbour", model="sd2-depth", created="2026-03-01T00:00:00+0000")))
    history.add(picture(out, "3.png", record("red sky over the harbour")))
    assert [e.id for e in history.search("cat")] == [cat]
    assert [e.id for e in history.search("harb")] == [dog, 3]  # a word's beginning matches; newest first
    assert [e.id for e in history.search("red harbour")] == [3]  # every word must appear
    assert [e.id for e in history.search("blurry", model="sd2-depth")] == [dog]  # the negative prompt is searched too
    assert [e.id for e in history.search(lora="ink")] == [cat]
    assert history.get(cat).loras == (("ink", 0.8),)
    history.set_favourite(cat)
    history.set_tags(dog, ["print", " keep ", ""])
    assert [e.id for e in history.search(favourite=True)] == [cat]
    assert history.get(dog).tags == ("keep", "print")
    since = time.mktime((2026, 2, 1, 0, 0, 0, 0, 0, -1))
    assert [e.id for e in history.search(since=since)] == [dog]
    assert [e.id for e in history.search('"quoted" OR * (')] == []  # search syntax is never passed through
    with pytest.raises(HistoryError, match="There is no picture 99"):
        history.get(99)


def test_pictures_from_other_tools_are_indexed_from_their_automatic1111_text(history, tmp_path):
    path = picture(tmp_path, "a1111.png", parameters="a lighthouse\nNegative prompt: fog\n"
                                                    "Steps: 20, Sampler: Euler a, Seed: 42, Size: 512x768, Model: sd21")
    entry = history.get(history.add(path))
    assert (entry.prompt, entry.negative, entry.seed, entry.width, entry.height, entry.model, entry.record_id) == (
        "a lighthouse", "fog", 42, 512, 768, "sd21", None)
    with pytest.raises(HistoryError, match="carries no generation settings"):
        history.add(picture(tmp_path, "plain.png"))


def test_sync_notices_deleted_moved_and_dropped_pictures(history, tmp_path):
    out = tmp_path / "out"
    kept = history.add(picture(out, "kept.png", record("kept")))
    moved = history.add(picture(out, "moved.png", record("moved")))
    history.add(picture(out, "deleted.png", record("deleted")))
    history.set_favourite(moved)
    (out / "moved.png").rename(out / "renamed.png")
    (out / "deleted.png").unlink()
    picture(out, "dropped.png", record("dropped by hand"))
    picture(out, "dropped.depth.png")  # depth maps beside pictures are not pictures
    picture(out, "no-settings.png")
    report = history.sync([out])
    assert (report.added, report.moved, report.removed) == (1, 1, 1)
    assert history.get(moved).path.endswith("renamed.png") and history.get(moved).favourite
    assert history.get(kept).prompt == "kept"
    assert [e.prompt for e in history.search("dropped")] == ["dropped by hand"]
    assert history.count() == 3
    assert history.sync([out]) == type(report)(0, 0, 0)


def test_a_new_picture_under_the_name_of_a_deleted_one_replaces_its_entry(history, tmp_path):
    old = history.add(picture(tmp_path, "x.png", record("an old harbour", loras=[("ink", 0.5)])))
    history.set_favourite(old)
    (tmp_path / "x.png").unlink()
    new = history.add(picture(tmp_path, "x.png", record("a new lighthouse")))
    assert [e.id for e in history.search()] == [new]
    assert history.get(new).prompt == "a new lighthouse" and not history.get(new).favourite
    assert history.search("harbour") == [] and history.search(lora="ink") == []


def test_the_schema_is_versioned_and_a_newer_one_refused(tmp_path):
    path = tmp_path / "history.sqlite3"
    History(path).close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(HistoryError, match="newer version of d2i-desktop"):
        History(path)


def test_a_damaged_database_is_kept_aside_and_a_new_one_started(tmp_path):
    path = tmp_path / "history.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    take_notices()
    history = History(path)
    assert history.count() == 0
    assert [p.name for p in tmp_path.glob("history.sqlite3.corrupt-*")]
    assert any("history index was damaged" in notice for notice in take_notices())
    history.close()


def test_sync_reads_files_outside_any_transaction_so_other_writers_never_wait(tmp_path, monkeypatch):
    """A sync over many dropped-in pictures in a thread, while another connection adds a picture (the very one
    the sync is reading) and marks a favourite: both go through at once, and the sync indexes each picture once."""
    import threading

    from d2i_desktop.core.history import index

    out = tmp_path / "out"
    database = tmp_path / "history.sqlite3"
    writer = History(database)
    favourite = writer.add(picture(out, "first.png", record("first")))
    dropped = [picture(out, f"dropped-{number:03d}.png", record(f"dropped {number}"))
               for number in range(3 * index.SYNC_BATCH)]
    writer.db.execute("PRAGMA busy_timeout=1000")  # a second's patience is more than enough for a short write
    reading, written = threading.Event(), threading.Event()
    real_facts = index.picture_facts

    def facts_while_others_write(path, record=None):
        syncing = threading.current_thread() is not threading.main_thread()
        if syncing and path == dropped[index.SYNC_BATCH + 1].resolve():
            reading.set()
            assert written.wait(30), "the other connection's writes never went through"
        return real_facts(path, record)

    monkeypatch.setattr(index, "picture_facts", facts_while_others_write)
    results = []

    def run_sync():
        syncing = History(database)
        try:
            results.append(syncing.sync([out]))
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            results.append(exc)
        finally:
            syncing.close()

    thread = threading.Thread(target=run_sync)
    thread.start()
    assert reading.wait(30)
    try:
        added = writer.add(dropped[index.SYNC_BATCH + 1])  # as the worker indexes a picture it just saved
        writer.set_favourite(favourite)
    finally:
        written.set()
        thread.join(60)
    assert not thread.is_alive() and not isinstance(results[0], BaseException), results
    assert results[0] == index.SyncReport(len(dropped) - 1, 0, 0)
    assert writer.count() == len(dropped) + 1 and writer.get(favourite).favourite
    assert writer.get(added).prompt == f"dropped {index.SYNC_BATCH + 1}"
    assert sorted(entry.path for entry in writer.search(limit=1000)) == sorted(
        str(path.resolve()) for path in [out / "first.png", *dropped])
    writer.close()


def test_sync_writes_in_short_batches(history, tmp_path, monkeypatch):
    from d2i_desktop.core.history import index

    out = tmp_path / "out"
    for number in range(2 * index.SYNC_BATCH + 3):
        picture(out, f"{number}.png", record(f"picture {number}"))
    statements = []
    history.db.set_trace_callback(statements.append)
    assert history.sync([out]).added == 2 * index.SYNC_BATCH + 3
    history.db.set_trace_callback(None)
    assert statements.count("BEGIN IMMEDIATE") == 3
