"""``LocalStorage``: the operations of the local backend (see the package docstring)."""

from __future__ import annotations

import functools
import getpass
import hashlib
import os
import posixpath
import shutil
import sqlite3
import stat as stat_mod
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import ParamSpec, TypeVar

from storage_bridge.errors import (
    AlreadyExists,
    InvalidArgument,
    Locked,
    NotFound,
    PermissionDenied,
    PreconditionFailed,
    StorageError,
    Unavailable,
)
from storage_bridge.local import index, locks
from storage_bridge.local.atomic import (
    TMP_PREFIX,
    create_new,
    fsync_dir,
    open_regular,
    replace_with,
    stat_or_none,
)
from storage_bridge.local.digests import DigestCache
from storage_bridge.local.locks import LOCAL_USER_ID
from storage_bridge.local.paths import Loc, Root
from storage_bridge.sqlite_executor import ExecutorClosed, SQLiteExecutor
from storage_bridge.types import Lock, Permissions, Ref, Resource, ResourceId, User

STORAGE_ID = "local"
DEFAULT_DATA_DIR_NAME = ".cs3collab"

P = ParamSpec("P")
T = TypeVar("T")


def _guarded(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Translate OS/SQLite failures into the shared error vocabulary."""
    try:
        return fn(*args, **kwargs)
    except StorageError:
        raise
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise NotFound(exc.strerror or str(exc)) from exc
    except FileExistsError as exc:
        raise AlreadyExists(exc.strerror or str(exc)) from exc
    except IsADirectoryError as exc:
        raise InvalidArgument(exc.strerror or str(exc)) from exc
    except PermissionError as exc:
        raise PermissionDenied(exc.strerror or str(exc)) from exc
    except sqlite3.OperationalError as exc:  # "database is locked" past the busy timeout
        raise Unavailable(f"local index: {exc}") from exc
    except (OSError, sqlite3.Error) as exc:
        raise StorageError(str(exc)) from exc


def _existing(loc: Loc) -> os.stat_result:
    st = stat_or_none(loc.real)
    if st is None:
        raise NotFound(f"no such file: {loc.path}")
    return st


class LocalStorage:
    """``Storage`` over a local folder; see the package docstring for the semantics."""

    name = "local"

    def __init__(
        self, root: Path, data_dir: Path | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._clock = clock  # wall time of lock expiry (injected in tests)
        self._root_arg = Path(root)
        if data_dir is None:
            data_dir = self._root_arg / DEFAULT_DATA_DIR_NAME
        self._data_arg = Path(data_dir)
        # Everything below is owned by the worker thread and set up lazily there, so that
        # constructing the backend does no blocking I/O on the event loop.
        self._executor = SQLiteExecutor("cs3collab-local")
        self._digests = DigestCache()  # used on the worker thread only
        self._conn: sqlite3.Connection | None = None
        self._where: Root | None = None
        try:
            display = getpass.getuser()
        except (OSError, KeyError):  # no USER env and no passwd entry (some containers)
            display = LOCAL_USER_ID
        self._user = User(id=LOCAL_USER_ID, username=LOCAL_USER_ID, display_name=display)

    # ---- plumbing -------------------------------------------------------------------------

    async def _run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await self._executor.run(functools.partial(_guarded, fn, *args, **kwargs))
        except ExecutorClosed as exc:  # closed before, or by a concurrent aclose()
            raise Unavailable("local storage is closed") from exc

    def _db(self) -> sqlite3.Connection:
        if self._conn is not None:
            return self._conn
        self._where = Root.resolve(self._root_arg, self._data_arg)
        self._conn = index.open_index(self._where.data_real)
        return self._conn

    @property
    def _root(self) -> Root:
        # Set by _db(), which every operation calls before locating anything.
        assert self._where is not None
        return self._where

    def _tx(self) -> AbstractContextManager[sqlite3.Connection]:
        return index.transaction(self._db())

    def _locate(self, db: sqlite3.Connection, ref: Ref) -> Loc:
        if isinstance(ref, ResourceId):
            if ref.storage_id != STORAGE_ID:
                raise NotFound(f"not a resource of this storage: {ref.storage_id!r}")
            path = index.path_of(db, ref.opaque_id)
            if path is None:
                raise NotFound(f"unknown resource id {ref.opaque_id!r}")
            return self._root.locate(path)
        return self._root.locate(ref)

    def _resource(self, db: sqlite3.Connection, loc: Loc) -> Resource:
        st = _existing(loc)
        if stat_mod.S_ISDIR(st.st_mode):
            etag, checksum, size = f"{st.st_mtime_ns:x}", "", 0
        else:
            f, st = open_regular(loc.real, loc.path)
            with f:
                etag = self._digests.digest(loc.real, f, st)
            checksum, size = f"sha256:{etag}", st.st_size
        file_id = index.file_id(db, loc.path)
        return Resource(
            id=ResourceId(storage_id=STORAGE_ID, opaque_id=file_id),
            path=loc.path,
            name=loc.name,
            is_dir=stat_mod.S_ISDIR(st.st_mode),
            etag=etag,
            mtime=st.st_mtime,
            size=size,
            permissions=Permissions.owner(),
            lock=locks.live_lock(db, file_id, self._clock),
            checksum=checksum,
        )

    def _held_by(self, db: sqlite3.Connection, ref: Ref, lock_id: str, app_name: str) -> str:
        """The file id of ``ref`` if its live lock is (lock_id, app_name); else ``Locked``."""
        loc = self._locate(db, ref)
        _existing(loc)
        file_id = index.file_id(db, loc.path)
        locks.require_holder(db, loc.path, file_id, lock_id, app_name, self._clock)
        return file_id

    # ---- operations (worker thread) -------------------------------------------------------

    def _stat_sync(self, ref: Ref) -> Resource:
        with self._tx() as db:
            return self._resource(db, self._locate(db, ref))

    def _read_sync(self, ref: Ref) -> tuple[bytes, str]:
        # No transaction: writes replace the file atomically, so one read of one open file is a
        # consistent version, and the etag is computed from exactly those bytes.
        loc = self._locate(self._db(), ref)
        f, _ = open_regular(loc.real, loc.path)
        with f:
            data = f.read()
        return data, hashlib.sha256(data).hexdigest()

    def _write_sync(self, ref: Ref, data: bytes, if_match: str | None, lock_id: str | None) -> str:
        with self._tx() as db:
            loc = self._locate(db, ref)
            st = stat_or_none(loc.real)
            if st is None and (if_match is not None or isinstance(ref, ResourceId)):
                # Nothing to compare with / the resource is gone: never resurrect it.
                raise NotFound(f"no such file: {loc.path}")
            if st is not None and not stat_mod.S_ISREG(st.st_mode):
                raise InvalidArgument(f"not a regular file: {loc.path}")
            locks.check_lock(db, index.file_id(db, loc.path), lock_id, self._clock)
            if st is not None and if_match is not None:
                f, fst = open_regular(loc.real, loc.path)
                with f:
                    current = self._digests.digest(loc.real, f, fst)
                if current != if_match:
                    raise PreconditionFailed(f"{loc.path} changed (etag {current})")
            replace_with(loc.real, data, stat_mod.S_IMODE(st.st_mode) if st is not None else None)
        return hashlib.sha256(data).hexdigest()

    def _create_sync(self, ref: Ref, data: bytes) -> Resource:
        if not isinstance(ref, str):
            raise InvalidArgument("create needs a path, not a resource id")
        with self._tx() as db:
            loc = self._root.locate(ref)
            if os.path.lexists(loc.real):
                raise AlreadyExists(f"already exists: {loc.path}")
            create_new(loc.real, data, loc.path)
            return self._resource(db, loc)

    def _list_sync(self, ref: Ref) -> list[Resource]:
        with self._tx() as db:
            loc = self._locate(db, ref)
            if not stat_mod.S_ISDIR(_existing(loc).st_mode):
                raise InvalidArgument(f"not a folder: {loc.path}")
            out: list[Resource] = []
            with os.scandir(loc.real) as entries:
                names = sorted(e.name for e in entries if not e.name.startswith(TMP_PREFIX))
            for name in names:
                try:
                    child = self._root.locate(posixpath.join(loc.path, name))
                    out.append(self._resource(db, child))
                except (StorageError, OSError):
                    # The data dir, symlinks leaving the root, special files, non-UTF-8 names
                    # and entries that vanished meanwhile are simply not part of the listing.
                    continue
            return out

    def _mkdir_sync(self, ref: Ref) -> Resource:
        if not isinstance(ref, str):
            raise InvalidArgument("mkdir needs a path, not a resource id")
        with self._tx() as db:
            loc = self._root.locate(ref)
            try:
                os.mkdir(loc.real)
            except FileExistsError as exc:
                raise AlreadyExists(f"already exists: {loc.path}") from exc
            except (FileNotFoundError, NotADirectoryError) as exc:
                raise NotFound(f"parent folder missing: {loc.path}") from exc
            return self._resource(db, loc)

    def _move_sync(self, src: Ref, dst: str, lock_id: str | None) -> Resource:
        if not isinstance(dst, str):
            raise InvalidArgument("move destination must be a path")
        with self._tx() as db:
            s = self._locate(db, src)
            if s.is_root:
                raise PermissionDenied("cannot move the storage root")
            _existing(s)
            d = self._root.locate(dst)
            if d.is_root or os.path.lexists(d.real):
                raise AlreadyExists(f"already exists: {d.path}")
            if d.path.startswith(s.path + "/"):
                raise InvalidArgument(f"cannot move {s.path} into itself")
            if self._root.contains_data_dir(s):
                raise PermissionDenied(f"{s.path} holds the storage's data dir")
            locks.check_lock(db, index.file_id(db, s.path), lock_id, self._clock)
            # Index first, rename last: if the rename fails the transaction rolls back and
            # nothing changed; ids (and so locks) follow the files.
            index.forget(db, d.path)  # stale rows of files removed behind our back
            index.move_subtree(db, s.path, d.path)
            try:
                os.rename(s.real, d.real)
            except (FileNotFoundError, NotADirectoryError) as exc:
                raise NotFound(f"destination folder missing: {d.path}") from exc
            fsync_dir(os.path.dirname(d.real))
            return self._resource(db, d)

    def _delete_sync(self, ref: Ref, lock_id: str | None) -> None:
        with self._tx() as db:
            loc = self._locate(db, ref)
            if loc.is_root:
                raise PermissionDenied("cannot delete the storage root")
            st = _existing(loc)
            locks.check_lock(db, index.file_id(db, loc.path), lock_id, self._clock)
            is_dir = stat_mod.S_ISDIR(st.st_mode)
            if is_dir:
                if self._root.contains_data_dir(loc):
                    raise PermissionDenied(f"{loc.path} holds the storage's data dir")
                # A live room may hold a lock on a notebook inside; do not pull the folder away.
                if locks.live_lock_below(db, loc.path, self._clock):
                    raise Locked(f"a file under {loc.path} is locked")
            index.forget(db, loc.path)
            if is_dir:
                shutil.rmtree(loc.real)
            else:
                os.unlink(loc.real)

    def _set_lock_sync(self, ref: Ref, lock_id: str, app_name: str, expires_in: float) -> Lock:
        locks.check_lock_args(lock_id, app_name, expires_in)
        with self._tx() as db:
            loc = self._locate(db, ref)
            _existing(loc)
            file_id = index.file_id(db, loc.path)
            held = locks.live_lock(db, file_id, self._clock)
            # The same holder setting its lock again is a refresh, not a conflict.
            if held is not None and (held.lock_id, held.app_name) != (lock_id, app_name):
                raise Locked(f"{loc.path} is locked by {held.app_name or 'another app'}")
            return locks.put_lock(db, file_id, lock_id, app_name, expires_in, self._clock)

    def _refresh_lock_sync(self, ref: Ref, lock_id: str, app_name: str, expires_in: float) -> Lock:
        locks.check_lock_args(lock_id, app_name, expires_in)
        with self._tx() as db:
            file_id = self._held_by(db, ref, lock_id, app_name)
            return locks.put_lock(db, file_id, lock_id, app_name, expires_in, self._clock)

    def _unlock_sync(self, ref: Ref, lock_id: str, app_name: str) -> None:
        with self._tx() as db:
            locks.unlock(db, self._held_by(db, ref, lock_id, app_name))

    def _get_lock_sync(self, ref: Ref) -> Lock | None:
        with self._tx() as db:
            loc = self._locate(db, ref)
            _existing(loc)
            return locks.live_lock(db, index.file_id(db, loc.path), self._clock)

    def _close_sync(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # ---- the Storage protocol -------------------------------------------------------------

    async def whoami(self, token: str) -> User:
        # Local mode has one user; the hub checks its own token before it gets here.
        return self._user

    async def stat(self, token: str, ref: Ref) -> Resource:
        return await self._run(self._stat_sync, ref)

    async def read(self, token: str, ref: Ref) -> tuple[bytes, str]:
        return await self._run(self._read_sync, ref)

    async def write(
        self,
        token: str,
        ref: Ref,
        data: bytes,
        *,
        if_match: str | None = None,
        lock_id: str | None = None,
    ) -> str:
        return await self._run(self._write_sync, ref, data, if_match, lock_id or None)

    async def create(self, token: str, ref: Ref, data: bytes) -> Resource:
        return await self._run(self._create_sync, ref, data)

    async def list(self, token: str, ref: Ref) -> list[Resource]:
        return await self._run(self._list_sync, ref)

    async def mkdir(self, token: str, ref: Ref) -> Resource:
        return await self._run(self._mkdir_sync, ref)

    async def move(self, token: str, src: Ref, dst: str, *, lock_id: str | None = None) -> Resource:
        return await self._run(self._move_sync, src, dst, lock_id or None)

    async def delete(self, token: str, ref: Ref, *, lock_id: str | None = None) -> None:
        await self._run(self._delete_sync, ref, lock_id or None)

    async def set_lock(
        self, token: str, ref: Ref, *, lock_id: str, app_name: str, expires_in: float
    ) -> Lock:
        return await self._run(self._set_lock_sync, ref, lock_id, app_name, expires_in)

    async def get_lock(self, token: str, ref: Ref) -> Lock | None:
        return await self._run(self._get_lock_sync, ref)

    async def refresh_lock(
        self, token: str, ref: Ref, *, lock_id: str, app_name: str, expires_in: float
    ) -> Lock:
        return await self._run(self._refresh_lock_sync, ref, lock_id, app_name, expires_in)

    async def unlock(self, token: str, ref: Ref, *, lock_id: str, app_name: str) -> None:
        await self._run(self._unlock_sync, ref, lock_id, app_name)

    async def aclose(self) -> None:
        # Queued after any operation already submitted, so those finish first.
        await self._executor.aclose(self._close_sync)
