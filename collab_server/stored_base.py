"""What storage holds for one room: its etag, its hash and its bytes, in one owner.

The three-way merge of an external version needs the bytes the room last read or wrote (the
merge base); the snapshotter skips a write whose hash equals it; every write names its etag
(``if_match``); and after a crash the room's metadata must name the same version. This object
is the only place those move, and it moves them together: the merge-base cache
(``StoredVersions``) and the metadata are updated in the same call as etag and hash.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from collab_server.room_metadata import RoomMetadata
from collab_server.versions import StoredVersions
from crdt.documents import content_hash


class StoredBase:
    def __init__(
        self,
        *,
        room: str,
        etag: str,
        digest: str,
        content: bytes | None,  # None: the log lost it (then external versions are copies)
        versions: StoredVersions,
        meta: RoomMetadata,
    ) -> None:
        self._room = room
        self._etag = etag
        self._hash = digest
        self._versions = versions
        self._meta = meta
        # The loaded version is remembered at once; a big one reaches its file while the
        # first client syncs.
        if content is not None:
            versions.remember(etag, content)

    @property
    def etag(self) -> str:
        return self._etag

    @property
    def hash(self) -> str:
        return self._hash

    async def writing(self, digest: str, data: bytes) -> None:
        """A snapshot is about to write ``data``: durable first, so that a restarted room
        recognises these bytes in storage as its own snapshot if the hub dies mid-write."""
        await self._meta.remember_base(self._room, digest, data)

    async def refused(self, digest: str) -> None:
        """Storage refused the write ``writing`` announced: those bytes never landed."""
        if digest != self._hash:
            await self._meta.forget_base(self._room, digest)

    async def written(self, etag: str, digest: str, data: bytes) -> None:
        """Our snapshot is in storage as ``etag`` (its bytes were given to ``writing``)."""
        self._etag, self._hash = etag, digest
        await self._versions.put(etag, data)
        await self._meta.set_base(self._room, etag, digest)

    async def adopt(self, etag: str, data: bytes, digest: str | None = None) -> None:
        """Storage holds ``data`` as ``etag`` (someone else's version, or ours again)."""
        digest = content_hash(data) if digest is None else digest
        self._etag, self._hash = etag, digest
        await self._versions.put(etag, data)
        await self._meta.set_base(self._room, etag, digest, data)

    async def content(self, read: Callable[[], Awaitable[tuple[bytes, str]]]) -> bytes | None:
        """The bytes of the current version; None if unknown. ``read`` reads storage."""
        data = await self._versions.get(self._etag)
        if data is not None:
            return data
        # Not kept (a log from before durable bases): storage has it unless someone wrote.
        data, etag = await read()
        if etag == self._etag or content_hash(data) == self._hash:
            return data
        return None

    async def version(self, etag: str) -> bytes | None:
        """An earlier version by etag (HTTP may have stripped the quotes of reva's etags)."""
        return await self._versions.get(etag) or await self._versions.get(f'"{etag}"')

    async def forget(self) -> None:
        """The room closes: drop the cached versions (the metadata keeps the base's bytes)."""
        await self._versions.remove_all()
