"""The history index: an SQLite database of every finished picture, searchable by prompt words.

WAL mode (the window reads while a job writes), a schema version in `PRAGMA user_version` with
migrations, FTS5 for prompt search (LIKE where SQLite was built without it). A damaged database
is kept aside as `NAME.corrupt-<time>` and a new one is started; the pictures themselves carry
their records, so `sync` indexes them again.
"""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Iterable

from ..files.app_data import keep_aside
from ..errors import D2IError
from ..files.outputs import parse_parameters, read_parameters
from ..paths import data_dir
from .record import DEPTH_SUFFIX, MASK_SUFFIX, RecordError, read_record

_COLUMNS = ("id", "path", "prompt", "negative", "params", "model", "loras", "seed", "width", "height", "created",
            "favourite", "tags", "record_id")
_WORD = re.compile(r"\w+", re.UNICODE)
SYNC_BATCH = 50  # pictures written to the index a transaction at a time by sync
BUSY_TIMEOUT_S = 10  # how long a connection waits for another's write to end


class HistoryError(D2IError):
    """The history index cannot be used."""


@dataclass(frozen=True)
class Entry:
    id: int
    path: str
    prompt: str
    negative: str
    params: dict
    model: str
    loras: tuple[tuple[str, float], ...]
    seed: int | None
    width: int
    height: int
    created: float  # seconds since the epoch
    favourite: bool
    tags: tuple[str, ...]
    record_id: str | None  # the record's id; None for pictures made elsewhere

    def to_dict(self) -> dict:
        return {name: getattr(self, name) for name in _COLUMNS}


@dataclass(frozen=True)
class SyncReport:
    added: int
    moved: int
    removed: int


def _create(db: sqlite3.Connection, fts: bool) -> None:
    statements = [
        "CREATE TABLE pictures (id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, prompt TEXT NOT NULL,"
        " negative TEXT NOT NULL, params TEXT NOT NULL, model TEXT NOT NULL, seed INTEGER, width INTEGER, height INTEGER,"
        " created REAL NOT NULL, favourite INTEGER NOT NULL DEFAULT 0, tags TEXT NOT NULL DEFAULT '', record_id TEXT,"
        " file_size INTEGER, file_mtime_ns INTEGER)",
        "CREATE TABLE picture_loras (picture_id INTEGER NOT NULL REFERENCES pictures(id) ON DELETE CASCADE,"
        " name TEXT NOT NULL, weight REAL NOT NULL)",
        "CREATE INDEX pictures_created ON pictures(created)",
        "CREATE INDEX pictures_model ON pictures(model, created)",
        "CREATE INDEX pictures_record ON pictures(record_id)",
        "CREATE INDEX picture_loras_name ON picture_loras(name, picture_id)",
        "CREATE INDEX picture_loras_picture ON picture_loras(picture_id)",
    ]
    if fts:
        statements += [
            "CREATE VIRTUAL TABLE pictures_fts USING fts5(prompt, negative, content='pictures', content_rowid='id')",
            "CREATE TRIGGER pictures_ai AFTER INSERT ON pictures BEGIN INSERT INTO pictures_fts(rowid, prompt, negative)"
            " VALUES (new.id, new.prompt, new.negative); END",
            "CREATE TRIGGER pictures_ad AFTER DELETE ON pictures BEGIN INSERT INTO pictures_fts(pictures_fts, rowid, prompt,"
            " negative) VALUES ('delete', old.id, old.prompt, old.negative); END",
        ]
    for statement in statements:  # one by one: executescript would commit the migration's transaction half-way
        db.execute(statement)


# Migration i brings the schema from version i to i + 1; add new ones at the end, never change old ones.
MIGRATIONS = (_create,)
SCHEMA_VERSION = len(MIGRATIONS)


def fts5_available() -> bool:
    try:
        sqlite3.connect(":memory:").execute("CREATE VIRTUAL TABLE probe USING fts5(text)")
        return True
    except sqlite3.OperationalError:
        return False


class History:
    """The index in `history.sqlite3` in the app-data folder (or `path`). One connection per thread."""

    def __init__(self, path: str | Path | None = None, use_fts: bool | None = None, check: bool = True):
        """`check`: verify the database and start a new one if it is damaged; a second connection to an index
        already opened elsewhere (a search in the background) leaves that to the first."""
        self.path = Path(path) if path else data_dir() / "history.sqlite3"
        self._use_fts = fts5_available() if use_fts is None else use_fts
        self._check = check
        try:
            self.db = self._open()
        except sqlite3.DatabaseError as exc:  # not a database, or damaged pages
            if not check or not self.path.exists():
                raise HistoryError(f"The history index {self.path} cannot be opened: {exc}.", "Check the folder's permissions.") from exc
            keep_aside(self.path, "The history index", str(exc))
            for suffix in ("-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            self.db = self._open()

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA foreign_keys=ON")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise HistoryError(f"The history index {self.path.name} was written by a newer version of d2i-desktop.",
                                   "Update the app.")
            if version < SCHEMA_VERSION:
                with db:
                    db.execute("BEGIN IMMEDIATE")
                    for migrate in MIGRATIONS[version:]:
                        migrate(db, self._use_fts)
                    db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            if self._check and db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise sqlite3.DatabaseError("the integrity check failed")
            self.fts = db.execute("SELECT 1 FROM sqlite_master WHERE name='pictures_fts'").fetchone() is not None
        except BaseException:
            db.close()
            raise
        return db

    def close(self) -> None:
        self.db.close()

    # -- adding ---------------------------------------------------------------------------------
    def add(self, path: str | Path, record: dict | None = None) -> int:
        """Index a picture file (its record, else the AUTOMATIC1111 text it carries); returns its id.

        A picture already indexed under this path was deleted since (files are never overwritten): its entry goes.
        """
        path = Path(path).resolve()
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("DELETE FROM pictures WHERE path = ?", (str(path),))
            return self._insert(path, picture_facts(path, record))

    def add_many(self, rows: Iterable[tuple[str | Path, dict]]) -> int:
        """Index many pictures in one transaction (`(path, facts)` as `picture_facts` gives them); returns how many."""
        count = 0
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            for path, facts in rows:
                self._insert(Path(path), facts)
                count += 1
        return count

    def _insert(self, path: Path, facts: dict) -> int:
        cursor = self.db.execute(
            "INSERT INTO pictures (path, prompt, negative, params, model, seed, width, height, created, record_id,"
            " file_size, file_mtime_ns) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (str(path), facts["prompt"], facts["negative"], json.dumps(facts["params"]), facts["model"], facts["seed"],
             facts["width"], facts["height"], facts["created"], facts["record_id"], facts.get("file_size"),
             facts.get("file_mtime_ns")))
        picture_id = cursor.lastrowid
        self.db.executemany("INSERT INTO picture_loras (picture_id, name, weight) VALUES (?,?,?)",
                            [(picture_id, name, weight) for name, weight in facts["loras"]])
        return picture_id

    # -- reading -----------------------------------------------------------------------------------
    def get(self, picture_id: int) -> Entry:
        rows = self._select("WHERE p.id = ?", [picture_id], limit=1)
        if not rows:
            raise HistoryError(f"There is no picture {picture_id} in the history.", "See 'd2i history list' for the ids.")
        return rows[0]

    def search(self, words: str = "", model: str | None = None, lora: str | None = None, favourite: bool = False,
               since: float | None = None, until: float | None = None, limit: int = 100, offset: int = 0) -> list[Entry]:
        """Newest first. `words`: every word must appear in the prompt or negative prompt (a prefix of a word matches)."""
        where, args = [], []
        tokens = _WORD.findall(words or "")
        if tokens and self.fts:
            where.append("p.id IN (SELECT rowid FROM pictures_fts WHERE pictures_fts MATCH ?)")
            args.append(" ".join(f'"{token}"*' for token in tokens))
        for token in tokens if not self.fts else ():
            where.append("(p.prompt LIKE ? ESCAPE '\\' OR p.negative LIKE ? ESCAPE '\\')")
            pattern = "%" + token.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            args += [pattern, pattern]
        if model:
            where.append("p.model = ?")
            args.append(model)
        if lora:
            where.append("p.id IN (SELECT picture_id FROM picture_loras WHERE name = ?)")
            args.append(lora)
        if favourite:
            where.append("p.favourite = 1")
        if since is not None:
            where.append("p.created >= ?")
            args.append(since)
        if until is not None:
            where.append("p.created < ?")
            args.append(until)
        return self._select(("WHERE " + " AND ".join(where)) if where else "", args, limit, offset)

    def count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM pictures").fetchone()[0]

    def models(self) -> list[str]:
        """The names of the models the indexed pictures were made with, sorted."""
        return [row[0] for row in self.db.execute("SELECT DISTINCT model FROM pictures WHERE model != '' ORDER BY model")]

    def loras(self) -> list[str]:
        """The names of the LoRAs the indexed pictures were made with, sorted."""
        return [row[0] for row in self.db.execute("SELECT DISTINCT name FROM picture_loras ORDER BY name")]

    def _select(self, where: str, args: list, limit: int, offset: int = 0) -> list[Entry]:
        rows = self.db.execute(
            "SELECT p.id, p.path, p.prompt, p.negative, p.params, p.model,"
            " (SELECT json_group_array(json_array(name, weight)) FROM picture_loras WHERE picture_id = p.id),"
            " p.seed, p.width, p.height, p.created, p.favourite, p.tags, p.record_id FROM pictures p"
            # The page's ids first: sorting whole rows would build every matching row, LoRAs and all.
            f" WHERE p.id IN (SELECT p.id FROM pictures p {where} ORDER BY p.created DESC, p.id DESC LIMIT ? OFFSET ?)"
            " ORDER BY p.created DESC, p.id DESC", [*args, limit, offset]).fetchall()
        return [Entry(row[0], row[1], row[2], row[3], json.loads(row[4]), row[5],
                      tuple((name, weight) for name, weight in json.loads(row[6])), row[7], row[8], row[9], row[10],
                      bool(row[11]), tuple(tag for tag in row[12].split("\n") if tag), row[13]) for row in rows]

    # -- changing --------------------------------------------------------------------------------
    def set_favourite(self, picture_id: int, favourite: bool = True) -> None:
        self._update(picture_id, "favourite = ?", int(favourite))

    def set_tags(self, picture_id: int, tags: Iterable[str]) -> None:
        clean = sorted({tag.strip() for tag in tags if tag.strip()})
        self._update(picture_id, "tags = ?", "\n".join(clean))

    def remove(self, picture_id: int) -> None:
        with self.db:
            self.db.execute("DELETE FROM pictures WHERE id = ?", (picture_id,))

    def _update(self, picture_id: int, assignment: str, value) -> None:
        with self.db:
            if self.db.execute(f"UPDATE pictures SET {assignment} WHERE id = ?", (value, picture_id)).rowcount == 0:
                raise HistoryError(f"There is no picture {picture_id} in the history.", "See 'd2i history list' for the ids.")

    # -- files and index in step -----------------------------------------------------------------
    def sync(self, folders: Iterable[str | Path]) -> SyncReport:
        """Notice pictures deleted or moved outside the app, and index pictures dropped into `folders`.

        A picture moved within the watched folders keeps its id, favourite and tags (it is found again by
        its record's id); one deleted or moved elsewhere leaves the index. Files are read outside any
        transaction and the index is written in short batches, so other connections never wait long.
        """
        known = {path: (picture_id, record_id) for picture_id, path, record_id in
                 self.db.execute("SELECT id, path, record_id FROM pictures")}
        gone = {picture_id: path for path, (picture_id, _record) in known.items() if not Path(path).is_file()}
        gone_by_record = {record_id: picture_id for path, (picture_id, record_id) in known.items()
                          if record_id and picture_id in gone}
        moves, additions = [], []
        for path, facts in self._dropped_in(folders, known):
            picture_id = gone_by_record.pop(facts["record_id"], None) if facts["record_id"] else None
            if picture_id is not None:
                moves.append((picture_id, gone.pop(picture_id), path))
            else:
                additions.append((path, facts))
        moved = sum(self._in_batches(moves, self._move))
        added = sum(self._in_batches(additions, self._add_new))
        removed = sum(self._in_batches(list(gone.items()), self._remove_gone))
        return SyncReport(added, moved, removed)

    @staticmethod
    def _dropped_in(folders: Iterable[str | Path], known: dict) -> Iterable[tuple[Path, dict]]:
        """The pictures in `folders` not indexed yet, with their facts (read from the files)."""
        for folder in folders:
            for path in sorted(Path(folder).glob("*.png")):
                path = path.resolve()
                if str(path) in known or path.name.endswith((DEPTH_SUFFIX, MASK_SUFFIX)) or path.name.startswith("."):
                    continue
                try:
                    yield path, picture_facts(path)
                except (D2IError, OSError):
                    continue  # not a picture this index can hold (damaged, no settings, or gone meanwhile)

    def _in_batches(self, rows: list, write) -> Iterable[int]:
        """`write(row)` for each row, SYNC_BATCH rows to a transaction; yields how many each batch changed."""
        for start in range(0, len(rows), SYNC_BATCH):
            with self.db:
                self.db.execute("BEGIN IMMEDIATE")
                yield sum(write(*row) for row in rows[start:start + SYNC_BATCH])

    # Each checks again what the index holds now: another connection may have changed it since the files were read.
    def _move(self, picture_id: int, old_path: str, path: Path) -> bool:
        if self._indexed(path):
            return False
        return self.db.execute("UPDATE pictures SET path = ? WHERE id = ? AND path = ?",
                               (str(path), picture_id, old_path)).rowcount > 0

    def _add_new(self, path: Path, facts: dict) -> bool:
        if self._indexed(path):
            return False
        self._insert(path, facts)
        return True

    def _remove_gone(self, picture_id: int, path: str) -> bool:
        if Path(path).is_file():  # put back meanwhile
            return False
        return self.db.execute("DELETE FROM pictures WHERE id = ? AND path = ?", (picture_id, path)).rowcount > 0

    def _indexed(self, path: Path) -> bool:
        return self.db.execute("SELECT 1 FROM pictures WHERE path = ?", (str(path),)).fetchone() is not None


def picture_facts(path: Path, record: dict | None = None) -> dict:
    """The indexed columns of a picture: from its record (read from the file when not given), else from the
    AUTOMATIC1111 text it carries; HistoryError when it carries neither."""
    stat = path.stat()
    if record is None:
        try:
            record = read_record(path)
        except RecordError:
            record = None
    facts = {"file_size": stat.st_size, "file_mtime_ns": stat.st_mtime_ns, "created": stat.st_mtime}
    if record is None:
        text = read_parameters(path)
        if not text:
            raise HistoryError(f"{path.name} carries no generation settings.", "Only pictures with settings are indexed.")
        fields = parse_parameters(text)
        width, _, height = fields.get("Size", "").partition("x")
        seed = fields.get("Seed", "")
        return facts | {"prompt": fields.get("prompt", ""), "negative": fields.get("negative_prompt", ""), "params": fields,
                        "model": fields.get("Model", ""), "loras": [], "seed": int(seed) if seed.isdigit() else None,
                        "width": int(width) if width.isdigit() else None, "height": int(height) if height.isdigit() else None,
                        "record_id": None}
    params, image = record["params"], record.get("image", {})
    try:
        facts["created"] = datetime.strptime(record["created"], "%Y-%m-%dT%H:%M:%S%z").timestamp()
    except (KeyError, TypeError, ValueError):
        pass  # the file's time stands in
    return facts | {"prompt": params.get("prompt", ""), "negative": params.get("negative_prompt", ""), "params": params,
                    "model": record.get("model", {}).get("name", ""),
                    "loras": [(lora["name"], float(lora["weight"])) for lora in record.get("loras", [])],
                    "seed": record.get("seed"), "width": image.get("width"), "height": image.get("height"),
                    "record_id": record.get("id")}
