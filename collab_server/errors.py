"""Errors the hub answers with: an HTTP status and a websocket close code for each."""

from __future__ import annotations

from collab_server.protocol import CloseCode
from storage_bridge.errors import (
    InvalidArgument,
    NotFound,
    PermissionDenied,
    PreconditionFailed,
    StorageError,
    Unauthenticated,
)


class HubError(Exception):
    """An error with an HTTP status and a websocket close code."""

    def __init__(self, status: int, close_code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.close_code = close_code
        self.message = message


def storage_error(exc: StorageError) -> HubError:
    """A storage error as the hub answers it (404, 403, 412, 401, else 503)."""
    if isinstance(exc, NotFound | InvalidArgument):
        return HubError(404, CloseCode.NOT_FOUND, exc.message or "not found")
    if isinstance(exc, PermissionDenied):
        return HubError(403, CloseCode.FORBIDDEN, exc.message or "forbidden")
    if isinstance(exc, PreconditionFailed):
        return HubError(412, CloseCode.BAD_REQUEST, exc.message or "precondition failed")
    if isinstance(exc, Unauthenticated):
        return HubError(401, CloseCode.UNAUTHENTICATED, exc.message or "unauthenticated")
    return HubError(503, CloseCode.INTERNAL, f"storage unavailable: {exc.message}")
