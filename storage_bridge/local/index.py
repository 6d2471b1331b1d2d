"""The local backend's sidecar SQLite index: stable resource ids of paths, and the locks table.

Every call here runs on the backend's single worker thread (``SQLiteExecutor``), inside a
``BEGIN IMMEDIATE`` transaction where it reads state that a later step relies on.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import uuid
from collections.abc import Iterator

INDEX_NAME = "local-index.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    id   TEXT PRIMARY KEY,
    path TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS locks (
    file_id    TEXT PRIMARY KEY,
    lock_id    TEXT NOT NULL,
    app_name   TEXT NOT NULL,
    user       TEXT NOT NULL,
    expiration REAL NOT NULL
);
"""

# A path and everything under it, as an index-friendly range: children of "/a" are the
# strings in ["/a/", "/a0") because "0" is the character right after "/".
SUBTREE = "(path = ? OR (path >= ? AND path < ?))"


def subtree_args(path: str) -> tuple[str, str, str]:
    return (path, path + "/", path + "0")


def open_index(data_real: str) -> sqlite3.Connection:
    # isolation_level=None: we issue BEGIN IMMEDIATE ourselves (see transaction).
    conn = sqlite3.connect(os.path.join(data_real, INDEX_NAME), timeout=30.0, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(_SCHEMA)
    except BaseException:
        conn.close()
        raise
    return conn


@contextlib.contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A write transaction; it also excludes other processes from the check-then-act."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def path_of(db: sqlite3.Connection, file_id: str) -> str | None:
    row = db.execute("SELECT path FROM files WHERE id = ?", (file_id,)).fetchone()
    return None if row is None else str(row[0])


def file_id(db: sqlite3.Connection, path: str) -> str:
    """The id of ``path``, assigned on first sight."""
    db.execute("INSERT OR IGNORE INTO files (id, path) VALUES (?, ?)", (str(uuid.uuid4()), path))
    row = db.execute("SELECT id FROM files WHERE path = ?", (path,)).fetchone()
    return str(row[0])


def forget(db: sqlite3.Connection, path: str) -> None:
    """Drop the ids (and locks) of a path and everything under it."""
    args = subtree_args(path)
    db.execute(f"DELETE FROM locks WHERE file_id IN (SELECT id FROM files WHERE {SUBTREE})", args)
    db.execute(f"DELETE FROM files WHERE {SUBTREE}", args)


def move_subtree(db: sqlite3.Connection, src: str, dst: str) -> None:
    """Re-key ``src`` and everything under it to ``dst``; ids (and so locks) follow."""
    db.execute(
        f"UPDATE files SET path = ? || substr(path, ?) WHERE {SUBTREE}",
        (dst, len(src) + 1, *subtree_args(src)),
    )
