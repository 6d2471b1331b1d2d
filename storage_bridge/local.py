"""The ``local`` backend: notebooks in a folder on this machine (ARCHITECTURE §8).

It keeps the CS3 contract so the hub cannot tell the difference:

- resource id = a uuid kept in a sidecar SQLite index (``<data_dir>/local-index.sqlite``), assigned
  on first sight of a path, carried along by ``move``, dropped by ``delete``;
- etag = hex sha256 of the bytes, so an external edit is always visible as a new etag;
- write locks live in the same database, expire, and are enforced on this backend's own write,
  move and delete paths.

Concurrency: every operation runs as ONE call on a single dedicated worker thread, and every
call that reads or changes state it later relies on runs inside ``BEGIN IMMEDIATE``. The single
worker serialises operations of this instance (so the compare-and-swap in ``write`` cannot
interleave with another write, and no per-file asyncio lock is needed); the SQLite write lock
serialises them against other ``LocalStorage`` instances or processes on the same data dir (the
hub and a Jupyter server can share one folder).

Paths: user paths are relative to the root ("/a/b.ipynb" == "a/b.ipynb"). ``..`` is refused,
symlinks are resolved and anything whose real path leaves the root is refused; the data dir is
invisible (``NotFound``) and never listed. Resources report their canonical (symlink-free) path.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import getpass
import hashlib
import io
import math
import os
import posixpath
import shutil
import sqlite3
import stat as stat_mod
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
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
from storage_bridge.types import Lock, Permissions, Ref, Resource, ResourceId, User

STORAGE_ID = "local"
LOCAL_USER_ID = "local"
INDEX_NAME = "local-index.sqlite"
DEFAULT_DATA_DIR_NAME = ".cs3collab"
# Temp files of in-flight atomic writes; never listed.
TMP_PREFIX = ".~cs3collab-"

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
_SUBTREE = "(path = ? OR (path >= ? AND path < ?))"

P = ParamSpec("P")
T = TypeVar("T")


def _subtree_args(path: str) -> tuple[str, str, str]:
    return (path, path + "/", path + "0")


@dataclass(frozen=True, slots=True)
class _Loc:
    """A validated location: the canonical user path and the real filesystem path."""

    path: str  # "/" or "/a/b", no trailing slash
    real: str  # absolute, symlink-free, inside the root

    @property
    def is_root(self) -> bool:
        return self.path == "/"

    @property
    def name(self) -> str:
        return posixpath.basename(self.path)


def _sha256_of(f: io.BufferedReader) -> str:
    return hashlib.file_digest(f, "sha256").hexdigest()


class _DigestCache:
    """sha256 of files by (device, inode, size, mtime, ctime), so a poll does not reread them.

    The watcher stats every open room each 1.5 s; hashing a 50 MB notebook each time cost
    ~100 ms of a worker per poll (measured). Any write changes ctime (user space cannot set
    it), but two writes within the clock's granularity may share one: like git's "racy"
    entries, a file changed less than ``RACY_SECONDS`` before it was hashed is not cached.
    """

    RACY_SECONDS = 2.0
    MAX_ENTRIES = 4096

    def __init__(self) -> None:
        self._entries: dict[str, tuple[tuple[int, int, int, int, int], str]] = {}

    def digest(self, real: str, f: io.BufferedReader, st: os.stat_result) -> str:
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        cached = self._entries.get(real)
        if cached is not None and cached[0] == key:
            return cached[1]
        digest = _sha256_of(f)
        newest = max(st.st_mtime_ns, st.st_ctime_ns) / 1e9
        if time.time() - newest >= self.RACY_SECONDS:
            if len(self._entries) >= self.MAX_ENTRIES:
                self._entries.pop(next(iter(self._entries)))
            self._entries[real] = (key, digest)
        else:
            self._entries.pop(real, None)
        return digest


def _open_regular(real: str, user_path: str) -> tuple[io.BufferedReader, os.stat_result]:
    """Open a regular file for reading, refusing symlinks swapped in after validation and FIFOs
    or devices (opening a FIFO would block the worker forever)."""
    try:
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise NotFound(f"no such file: {user_path}") from exc
    f = os.fdopen(fd, "rb")
    try:
        st = os.fstat(fd)
        if stat_mod.S_ISDIR(st.st_mode):
            raise InvalidArgument(f"is a folder: {user_path}")
        if not stat_mod.S_ISREG(st.st_mode):
            raise InvalidArgument(f"not a regular file: {user_path}")
    except BaseException:
        f.close()
        raise
    return f, st


def _stat_or_none(real: str) -> os.stat_result | None:
    try:
        return os.stat(real)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _fsync_dir(path: str) -> None:
    # Makes the rename itself durable; not every platform/filesystem can open a directory.
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_temp(parent: str, data: bytes, mode: int | None) -> str:
    """Write ``data`` to a new fsynced temp file in ``parent`` and return its path.

    Created with 0o666 so the process umask applies as for any new file (mkstemp would force
    0o600); ``mode`` restores the permissions of the file being replaced.
    """
    tmp = os.path.join(parent, f"{TMP_PREFIX}{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return tmp


def _check_lock_args(lock_id: str, app_name: str, expires_in: float) -> None:
    if not lock_id:
        raise InvalidArgument("lock_id must not be empty")
    if not app_name:
        raise InvalidArgument("app_name must not be empty")
    # A lock without expiry would survive a crashed hub forever (ARCHITECTURE §5).
    if not (expires_in > 0 and math.isfinite(expires_in)):
        raise InvalidArgument(f"expires_in must be a positive number of seconds, not {expires_in}")


class LocalStorage:
    """``Storage`` over a local folder; see the module docstring for the semantics."""

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
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cs3collab-local")
        self._digests = _DigestCache()  # used on the worker thread only
        self._conn: sqlite3.Connection | None = None
        self._root = ""
        self._root_prefix = ""
        self._data_real = ""
        self._closed = False
        try:
            display = getpass.getuser()
        except (OSError, KeyError):  # no USER env and no passwd entry (some containers)
            display = LOCAL_USER_ID
        self._user = User(id=LOCAL_USER_ID, username=LOCAL_USER_ID, display_name=display)

    # ---- plumbing -------------------------------------------------------------------------

    async def _run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        if self._closed:
            raise Unavailable("local storage is closed")
        loop = asyncio.get_running_loop()
        call = functools.partial(self._guarded, fn, *args, **kwargs)
        try:
            return await loop.run_in_executor(self._executor, call)
        except RuntimeError as exc:  # executor shut down by a concurrent aclose()
            if self._closed:
                raise Unavailable("local storage is closed") from exc
            raise

    @staticmethod
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

    def _db(self) -> sqlite3.Connection:
        if self._conn is not None:
            return self._conn
        root = os.path.realpath(self._root_arg)
        if not os.path.isdir(root):
            raise Unavailable(f"storage root is not a folder: {self._root_arg}")
        os.makedirs(self._data_arg, exist_ok=True)
        self._data_real = os.path.realpath(self._data_arg)
        self._root = root
        self._root_prefix = root if root.endswith(os.sep) else root + os.sep
        # isolation_level=None: we issue BEGIN IMMEDIATE ourselves (see _tx).
        conn = sqlite3.connect(
            os.path.join(self._data_real, INDEX_NAME), timeout=30.0, isolation_level=None
        )
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_SCHEMA)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction; it also excludes other processes from the check-then-act."""
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    # ---- locating -------------------------------------------------------------------------

    def _locate_path(self, path: str) -> _Loc:
        if not isinstance(path, str):
            raise InvalidArgument(f"not a path: {path!r}")
        if "\x00" in path:
            raise InvalidArgument("path contains a NUL byte")
        try:
            path.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidArgument("path is not valid UTF-8") from exc
        parts = [p for p in path.split("/") if p not in ("", ".")]
        # Refused outright rather than normalised: no legitimate client needs "..".
        if ".." in parts:
            raise PermissionDenied(f"path leaves the storage root: {path!r}")
        real = os.path.realpath(os.path.join(self._root, *parts))
        if real != self._root and not real.startswith(self._root_prefix):
            raise PermissionDenied(f"path leaves the storage root: {path!r}")
        data = self._data_real
        if real == data or real.startswith(data + os.sep):
            raise NotFound(f"no such file: {path!r}")
        rel = os.path.relpath(real, self._root)
        user_path = "/" if rel == "." else "/" + rel.replace(os.sep, "/")
        return _Loc(user_path, real)

    def _locate(self, db: sqlite3.Connection, ref: Ref) -> _Loc:
        if isinstance(ref, ResourceId):
            if ref.storage_id != STORAGE_ID:
                raise NotFound(f"not a resource of this storage: {ref.storage_id!r}")
            row = db.execute("SELECT path FROM files WHERE id = ?", (ref.opaque_id,)).fetchone()
            if row is None:
                raise NotFound(f"unknown resource id {ref.opaque_id!r}")
            return self._locate_path(str(row[0]))
        return self._locate_path(ref)

    def _contains_data_dir(self, loc: _Loc) -> bool:
        return self._data_real.startswith(loc.real.rstrip(os.sep) + os.sep)

    # ---- index and locks ------------------------------------------------------------------

    @staticmethod
    def _file_id(db: sqlite3.Connection, path: str) -> str:
        db.execute(
            "INSERT OR IGNORE INTO files (id, path) VALUES (?, ?)", (str(uuid.uuid4()), path)
        )
        row = db.execute("SELECT id FROM files WHERE path = ?", (path,)).fetchone()
        return str(row[0])

    def _live_lock(self, db: sqlite3.Connection, file_id: str) -> Lock | None:
        row = db.execute(
            "SELECT lock_id, app_name, user, expiration FROM locks WHERE file_id = ?", (file_id,)
        ).fetchone()
        if row is None:
            return None
        lock = Lock(lock_id=row[0], app_name=row[1], user=row[2], expiration=float(row[3]))
        if lock.expiration != 0 and lock.expiration <= self._clock():
            # Expired locks are dropped on read, like reva's decomposedfs does.
            db.execute("DELETE FROM locks WHERE file_id = ?", (file_id,))
            return None
        return lock

    def _check_lock(self, db: sqlite3.Connection, file_id: str, lock_id: str | None) -> None:
        held = self._live_lock(db, file_id)
        if held is not None and held.lock_id != lock_id:
            raise Locked(f"locked by {held.app_name or 'another app'}")

    def _live_lock_below(self, db: sqlite3.Connection, path: str) -> bool:
        row = db.execute(
            "SELECT 1 FROM locks JOIN files ON files.id = locks.file_id"
            " WHERE files.path >= ? AND files.path < ?"
            " AND (locks.expiration = 0 OR locks.expiration > ?) LIMIT 1",
            (path + "/", path + "0", self._clock()),
        ).fetchone()
        return row is not None

    @staticmethod
    def _forget(db: sqlite3.Connection, path: str) -> None:
        """Drop the ids (and locks) of a path and everything under it."""
        args = _subtree_args(path)
        db.execute(
            f"DELETE FROM locks WHERE file_id IN (SELECT id FROM files WHERE {_SUBTREE})", args
        )
        db.execute(f"DELETE FROM files WHERE {_SUBTREE}", args)

    # ---- resources ------------------------------------------------------------------------

    def _resource(self, db: sqlite3.Connection, loc: _Loc) -> Resource:
        st = _stat_or_none(loc.real)
        if st is None:
            raise NotFound(f"no such file: {loc.path}")
        if stat_mod.S_ISDIR(st.st_mode):
            etag, checksum, size = f"{st.st_mtime_ns:x}", "", 0
        else:
            f, st = _open_regular(loc.real, loc.path)
            with f:
                etag = self._digests.digest(loc.real, f, st)
            checksum, size = f"sha256:{etag}", st.st_size
        file_id = self._file_id(db, loc.path)
        return Resource(
            id=ResourceId(storage_id=STORAGE_ID, opaque_id=file_id),
            path=loc.path,
            name=loc.name,
            is_dir=stat_mod.S_ISDIR(st.st_mode),
            etag=etag,
            mtime=st.st_mtime,
            size=size,
            permissions=Permissions.owner(),
            lock=self._live_lock(db, file_id),
            checksum=checksum,
        )

    def _existing(self, loc: _Loc) -> os.stat_result:
        st = _stat_or_none(loc.real)
        if st is None:
            raise NotFound(f"no such file: {loc.path}")
        return st

    # ---- operations (worker thread) -------------------------------------------------------

    def _stat_sync(self, ref: Ref) -> Resource:
        with self._tx() as db:
            return self._resource(db, self._locate(db, ref))

    def _read_sync(self, ref: Ref) -> tuple[bytes, str]:
        # No transaction: writes replace the file atomically, so one read of one open file is a
        # consistent version, and the etag is computed from exactly those bytes.
        loc = self._locate(self._db(), ref)
        f, _ = _open_regular(loc.real, loc.path)
        with f:
            data = f.read()
        return data, hashlib.sha256(data).hexdigest()

    def _write_sync(self, ref: Ref, data: bytes, if_match: str | None, lock_id: str | None) -> str:
        with self._tx() as db:
            loc = self._locate(db, ref)
            st = _stat_or_none(loc.real)
            if st is None and (if_match is not None or isinstance(ref, ResourceId)):
                # Nothing to compare with / the resource is gone: never resurrect it.
                raise NotFound(f"no such file: {loc.path}")
            if st is not None and not stat_mod.S_ISREG(st.st_mode):
                raise InvalidArgument(f"not a regular file: {loc.path}")
            self._check_lock(db, self._file_id(db, loc.path), lock_id)
            if st is not None and if_match is not None:
                f, fst = _open_regular(loc.real, loc.path)
                with f:
                    current = self._digests.digest(loc.real, f, fst)
                if current != if_match:
                    raise PreconditionFailed(f"{loc.path} changed (etag {current})")
            parent = os.path.dirname(loc.real)
            mode = stat_mod.S_IMODE(st.st_mode) if st is not None else None
            tmp = _write_temp(parent, data, mode)
            try:
                os.replace(tmp, loc.real)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            _fsync_dir(parent)
        return hashlib.sha256(data).hexdigest()

    def _create_sync(self, ref: Ref, data: bytes) -> Resource:
        if not isinstance(ref, str):
            raise InvalidArgument("create needs a path, not a resource id")
        with self._tx() as db:
            loc = self._locate_path(ref)
            if os.path.lexists(loc.real):
                raise AlreadyExists(f"already exists: {loc.path}")
            parent = os.path.dirname(loc.real)
            tmp = _write_temp(parent, data, None)
            try:
                # link() never replaces an existing name, unlike rename(): create stays
                # create-only even against a writer outside this process.
                os.link(tmp, loc.real)
            except FileExistsError as exc:
                raise AlreadyExists(f"already exists: {loc.path}") from exc
            except OSError:
                # Filesystems without hard links: the lexists check above has to do.
                os.replace(tmp, loc.real)
            finally:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            _fsync_dir(parent)
            return self._resource(db, loc)

    def _list_sync(self, ref: Ref) -> list[Resource]:
        with self._tx() as db:
            loc = self._locate(db, ref)
            if not stat_mod.S_ISDIR(self._existing(loc).st_mode):
                raise InvalidArgument(f"not a folder: {loc.path}")
            out: list[Resource] = []
            with os.scandir(loc.real) as entries:
                names = sorted(e.name for e in entries if not e.name.startswith(TMP_PREFIX))
            for name in names:
                try:
                    child = self._locate_path(posixpath.join(loc.path, name))
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
            loc = self._locate_path(ref)
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
            self._existing(s)
            d = self._locate_path(dst)
            if d.is_root or os.path.lexists(d.real):
                raise AlreadyExists(f"already exists: {d.path}")
            if d.path.startswith(s.path + "/"):
                raise InvalidArgument(f"cannot move {s.path} into itself")
            if self._contains_data_dir(s):
                raise PermissionDenied(f"{s.path} holds the storage's data dir")
            self._check_lock(db, self._file_id(db, s.path), lock_id)
            # Index first, rename last: if the rename fails the transaction rolls back and
            # nothing changed; ids (and so locks) follow the files.
            self._forget(db, d.path)  # stale rows of files removed behind our back
            db.execute(
                f"UPDATE files SET path = ? || substr(path, ?) WHERE {_SUBTREE}",
                (d.path, len(s.path) + 1, *_subtree_args(s.path)),
            )
            try:
                os.rename(s.real, d.real)
            except (FileNotFoundError, NotADirectoryError) as exc:
                raise NotFound(f"destination folder missing: {d.path}") from exc
            _fsync_dir(os.path.dirname(d.real))
            return self._resource(db, d)

    def _delete_sync(self, ref: Ref, lock_id: str | None) -> None:
        with self._tx() as db:
            loc = self._locate(db, ref)
            if loc.is_root:
                raise PermissionDenied("cannot delete the storage root")
            st = self._existing(loc)
            self._check_lock(db, self._file_id(db, loc.path), lock_id)
            is_dir = stat_mod.S_ISDIR(st.st_mode)
            if is_dir:
                if self._contains_data_dir(loc):
                    raise PermissionDenied(f"{loc.path} holds the storage's data dir")
                # A live room may hold a lock on a notebook inside; do not pull the folder away.
                if self._live_lock_below(db, loc.path):
                    raise Locked(f"a file under {loc.path} is locked")
            self._forget(db, loc.path)
            if is_dir:
                shutil.rmtree(loc.real)
            else:
                os.unlink(loc.real)

    def _set_lock_sync(self, ref: Ref, lock_id: str, app_name: str, expires_in: float) -> Lock:
        _check_lock_args(lock_id, app_name, expires_in)
        with self._tx() as db:
            loc = self._locate(db, ref)
            self._existing(loc)
            file_id = self._file_id(db, loc.path)
            held = self._live_lock(db, file_id)
            # The same holder setting its lock again is a refresh, not a conflict.
            if held is not None and (held.lock_id, held.app_name) != (lock_id, app_name):
                raise Locked(f"{loc.path} is locked by {held.app_name or 'another app'}")
            return self._put_lock(db, file_id, lock_id, app_name, expires_in)

    def _refresh_lock_sync(self, ref: Ref, lock_id: str, app_name: str, expires_in: float) -> Lock:
        _check_lock_args(lock_id, app_name, expires_in)
        with self._tx() as db:
            file_id = self._held_by(db, ref, lock_id, app_name)
            return self._put_lock(db, file_id, lock_id, app_name, expires_in)

    def _unlock_sync(self, ref: Ref, lock_id: str, app_name: str) -> None:
        with self._tx() as db:
            file_id = self._held_by(db, ref, lock_id, app_name)
            db.execute("DELETE FROM locks WHERE file_id = ?", (file_id,))

    def _get_lock_sync(self, ref: Ref) -> Lock | None:
        with self._tx() as db:
            loc = self._locate(db, ref)
            self._existing(loc)
            return self._live_lock(db, self._file_id(db, loc.path))

    def _held_by(self, db: sqlite3.Connection, ref: Ref, lock_id: str, app_name: str) -> str:
        """The file id of ``ref`` if its live lock is (lock_id, app_name); else ``Locked``."""
        loc = self._locate(db, ref)
        self._existing(loc)
        file_id = self._file_id(db, loc.path)
        held = self._live_lock(db, file_id)
        if held is None:
            raise Locked(f"{loc.path} is not locked (the lock expired or was released)")
        if (held.lock_id, held.app_name) != (lock_id, app_name):
            raise Locked(f"{loc.path} is locked by {held.app_name or 'another app'}")
        return file_id

    def _put_lock(
        self, db: sqlite3.Connection, file_id: str, lock_id: str, app_name: str, expires_in: float
    ) -> Lock:
        lock = Lock(
            lock_id=lock_id,
            app_name=app_name,
            user=LOCAL_USER_ID,
            expiration=self._clock() + expires_in,
        )
        db.execute(
            "INSERT OR REPLACE INTO locks (file_id, lock_id, app_name, user, expiration)"
            " VALUES (?, ?, ?, ?, ?)",
            (file_id, lock.lock_id, lock.app_name, lock.user, lock.expiration),
        )
        return lock

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
        if self._closed:
            return
        self._closed = True
        # Queued after any operation already submitted, so those finish first.
        await asyncio.get_running_loop().run_in_executor(self._executor, self._close_sync)
        self._executor.shutdown(wait=False)
