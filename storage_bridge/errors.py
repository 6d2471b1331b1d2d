"""Typed storage errors shared by every backend.

Backends translate their native failures (gRPC status codes, OS errors) into these, so the hub
reacts to one vocabulary. Every error carries the backend's own message.
"""

from __future__ import annotations


class StorageError(Exception):
    """Base class: something went wrong talking to storage."""

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message


class NotFound(StorageError):
    """The resource (or its parent) does not exist, or is outside the user's view."""


class AlreadyExists(StorageError):
    """A create-if-not-exists found the target already there."""


class PermissionDenied(StorageError):
    """The user may not do this to this resource."""


class Unauthenticated(StorageError):
    """The token is missing, malformed or expired."""


class Locked(StorageError):
    """A write was refused because of a lock.

    CS3 reports it as CODE_LOCKED, CODE_ABORTED or CODE_FAILED_PRECONDITION.
    """


class PreconditionFailed(Locked):
    """A conditional write's ``if_match`` etag no longer matches.

    Reva v2 reports both this and lock conflicts as FAILED_PRECONDITION, so it is a kind of
    ``Locked``; backends that can tell the two apart raise this subclass.
    """


class Unavailable(StorageError):
    """Storage could not be reached (network, server down, timeout). Worth retrying."""


class InvalidArgument(StorageError):
    """The request was malformed (bad path, bad reference)."""
