"""The ``Storage`` protocol: where notebook bytes live.

Every method takes the caller's ``token`` first: with CS3 it is the user's CS3 access token and
each call runs as that user; the local backend ignores it (local mode has one user).
All methods are async and raise only ``storage_bridge.errors`` exceptions.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from storage_bridge.types import Lock, Ref, Resource, User


@runtime_checkable
class Storage(Protocol):
    """What the hub and the Jupyter side need from a storage backend."""

    name: str  # "local" | "cs3"

    async def whoami(self, token: str) -> User:
        """The user the token belongs to; ``Unauthenticated`` if it is not valid."""
        ...

    async def stat(self, token: str, ref: Ref) -> Resource:
        """Metadata of one resource, including its current lock (if any)."""
        ...

    async def read(self, token: str, ref: Ref) -> tuple[bytes, str]:
        """The whole content and the etag of the version that was read."""
        ...

    async def write(
        self,
        token: str,
        ref: Ref,
        data: bytes,
        *,
        if_match: str | None = None,
        lock_id: str | None = None,
    ) -> str:
        """Replace the content; return the new etag.

        ``if_match``: only write if the current etag equals it (else ``PreconditionFailed``).
        ``lock_id``: the lock the writer holds; a locked file refuses writes without it
        (``Locked``).
        The write is atomic: readers see the old or the new bytes, never a mix.
        """
        ...

    async def create(self, token: str, ref: Ref, data: bytes) -> Resource:
        """Create a file that must not exist yet (``AlreadyExists`` otherwise)."""
        ...

    async def list(self, token: str, ref: Ref) -> list[Resource]:
        """Direct children of a container."""
        ...

    async def mkdir(self, token: str, ref: Ref) -> Resource:
        """Create a container (``AlreadyExists`` if it is there)."""
        ...

    async def move(self, token: str, src: Ref, dst: str, *, lock_id: str | None = None) -> Resource:
        """Rename/move; the resource id stays the same."""
        ...

    async def delete(self, token: str, ref: Ref, *, lock_id: str | None = None) -> None: ...

    async def set_lock(
        self, token: str, ref: Ref, *, lock_id: str, app_name: str, expires_in: float
    ) -> Lock:
        """Take a write lock; ``Locked`` if someone else holds one."""
        ...

    async def get_lock(self, token: str, ref: Ref) -> Lock | None: ...

    async def refresh_lock(
        self, token: str, ref: Ref, *, lock_id: str, app_name: str, expires_in: float
    ) -> Lock:
        """Extend our own lock; ``Locked`` if it is gone or held by another."""
        ...

    async def unlock(self, token: str, ref: Ref, *, lock_id: str, app_name: str) -> None: ...

    async def aclose(self) -> None:
        """Release connections/files."""
        ...
