"""File primitives of the local backend: safe opens, atomic replacement, durable renames."""

from __future__ import annotations

import contextlib
import io
import os
import stat as stat_mod
import uuid

from storage_bridge.errors import AlreadyExists, InvalidArgument, NotFound

# Temp files of in-flight atomic writes; never listed.
TMP_PREFIX = ".~cs3collab-"


def open_regular(real: str, user_path: str) -> tuple[io.BufferedReader, os.stat_result]:
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


def stat_or_none(real: str) -> os.stat_result | None:
    try:
        return os.stat(real)
    except (FileNotFoundError, NotADirectoryError):
        return None


def fsync_dir(path: str) -> None:
    # Makes the rename itself durable; not every platform/filesystem can open a directory.
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_temp(parent: str, data: bytes, mode: int | None) -> str:
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


def replace_with(real: str, data: bytes, mode: int | None) -> None:
    """Atomically replace (or create) ``real`` with ``data``: readers see old or new bytes."""
    parent = os.path.dirname(real)
    tmp = write_temp(parent, data, mode)
    try:
        os.replace(tmp, real)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(parent)


def create_new(real: str, data: bytes, user_path: str) -> None:
    """Create ``real`` with ``data``; ``AlreadyExists`` if the name is taken meanwhile."""
    parent = os.path.dirname(real)
    tmp = write_temp(parent, data, None)
    try:
        # link() never replaces an existing name, unlike rename(): create stays
        # create-only even against a writer outside this process.
        os.link(tmp, real)
    except FileExistsError as exc:
        raise AlreadyExists(f"already exists: {user_path}") from exc
    except OSError:
        # Filesystems without hard links: the caller's lexists check has to do.
        os.replace(tmp, real)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    fsync_dir(parent)
