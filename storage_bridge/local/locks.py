"""Write locks of the local backend, kept in the index database (table ``locks``).

Locks expire (a crashed hub must not hold a notebook forever, ARCHITECTURE §5) and are dropped
on read once expired, like reva's decomposedfs. ``clock`` is wall time, injected in tests.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable

from storage_bridge.errors import InvalidArgument, Locked
from storage_bridge.types import Lock

LOCAL_USER_ID = "local"

Clock = Callable[[], float]


def check_lock_args(lock_id: str, app_name: str, expires_in: float) -> None:
    if not lock_id:
        raise InvalidArgument("lock_id must not be empty")
    if not app_name:
        raise InvalidArgument("app_name must not be empty")
    # A lock without expiry would survive a crashed hub forever (ARCHITECTURE §5).
    if not (expires_in > 0 and math.isfinite(expires_in)):
        raise InvalidArgument(f"expires_in must be a positive number of seconds, not {expires_in}")


def live_lock(db: sqlite3.Connection, file_id: str, clock: Clock) -> Lock | None:
    row = db.execute(
        "SELECT lock_id, app_name, user, expiration FROM locks WHERE file_id = ?", (file_id,)
    ).fetchone()
    if row is None:
        return None
    lock = Lock(lock_id=row[0], app_name=row[1], user=row[2], expiration=float(row[3]))
    if lock.expiration != 0 and lock.expiration <= clock():
        # Expired locks are dropped on read, like reva's decomposedfs does.
        db.execute("DELETE FROM locks WHERE file_id = ?", (file_id,))
        return None
    return lock


def check_lock(db: sqlite3.Connection, file_id: str, lock_id: str | None, clock: Clock) -> None:
    """``Locked`` unless the file is unlocked or locked with ``lock_id``."""
    held = live_lock(db, file_id, clock)
    if held is not None and held.lock_id != lock_id:
        raise Locked(f"locked by {held.app_name or 'another app'}")


def live_lock_below(db: sqlite3.Connection, path: str, clock: Clock) -> bool:
    row = db.execute(
        "SELECT 1 FROM locks JOIN files ON files.id = locks.file_id"
        " WHERE files.path >= ? AND files.path < ?"
        " AND (locks.expiration = 0 OR locks.expiration > ?) LIMIT 1",
        (path + "/", path + "0", clock()),
    ).fetchone()
    return row is not None


def require_holder(
    db: sqlite3.Connection, path: str, file_id: str, lock_id: str, app_name: str, clock: Clock
) -> None:
    """``Locked`` unless the live lock of ``file_id`` is (lock_id, app_name)."""
    held = live_lock(db, file_id, clock)
    if held is None:
        raise Locked(f"{path} is not locked (the lock expired or was released)")
    if (held.lock_id, held.app_name) != (lock_id, app_name):
        raise Locked(f"{path} is locked by {held.app_name or 'another app'}")


def put_lock(
    db: sqlite3.Connection,
    file_id: str,
    lock_id: str,
    app_name: str,
    expires_in: float,
    clock: Clock,
) -> Lock:
    lock = Lock(
        lock_id=lock_id, app_name=app_name, user=LOCAL_USER_ID, expiration=clock() + expires_in
    )
    db.execute(
        "INSERT OR REPLACE INTO locks (file_id, lock_id, app_name, user, expiration)"
        " VALUES (?, ?, ?, ?, ?)",
        (file_id, lock.lock_id, lock.app_name, lock.user, lock.expiration),
    )
    return lock


def unlock(db: sqlite3.Connection, file_id: str) -> None:
    db.execute("DELETE FROM locks WHERE file_id = ?", (file_id,))
