"""``storage_bridge.errors`` as the Python exceptions file code expects (``OSError`` family)."""

from __future__ import annotations

import errno

from storage_bridge.errors import (
    AlreadyExists,
    InvalidArgument,
    Locked,
    NotFound,
    PermissionDenied,
    StorageError,
    Unauthenticated,
    Unavailable,
)

ROOM_APP = "cs3collab"  # the hub's lock app name (collab_server settings: rooms lock as this)
ROOM_LOCKED = "locked by cs3collab: open in the notebook, or write through the hub"


class LockedError(OSError):
    """The file is locked by an application (errno ``EBUSY``); ``app`` holds the lock."""

    def __init__(self, path: str, app: str, message: str) -> None:
        super().__init__(errno.EBUSY, message, path)
        self.app = app


def room_locked(path: str, detail: str = "") -> LockedError:
    """The file is open in a cs3collab room and the write could not go through the hub."""
    text = f"cs3://{path}: {ROOM_LOCKED}" + (f" ({detail})" if detail else "")
    return LockedError(path, ROOM_APP, text)


def to_oserror(exc: StorageError, path: str) -> OSError:
    """The ``OSError`` subclass for a storage refusal of an operation on ``path``."""
    what = exc.message or type(exc).__name__
    if isinstance(exc, NotFound):
        return FileNotFoundError(errno.ENOENT, f"No such file or directory: {what}", path)
    if isinstance(exc, PermissionDenied):
        return PermissionError(errno.EACCES, f"Permission denied: {what}", path)
    if isinstance(exc, Unauthenticated):
        return PermissionError(errno.EACCES, f"CS3 token refused (expired?): {what}", path)
    if isinstance(exc, AlreadyExists):
        return FileExistsError(errno.EEXIST, f"File exists: {what}", path)
    if isinstance(exc, Locked):
        return LockedError(path, "", f"Locked: {what}")
    if isinstance(exc, InvalidArgument):
        if "is a folder" in what:
            return IsADirectoryError(errno.EISDIR, what, path)
        return OSError(errno.EINVAL, what, path)
    if isinstance(exc, Unavailable):
        return ConnectionError(errno.ECONNREFUSED, f"CS3 unavailable: {what}", path)
    return OSError(errno.EIO, what, path)
