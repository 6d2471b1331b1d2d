"""Work copies: a copy of the live document beside the original, edited as a room of its own,
and merged back into the original later (three-way, based on where the copy started)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from collab_server.auth import Access, Principal, access_for
from collab_server.connection import Connection
from collab_server.copies import create_copy_beside
from collab_server.errors import HubError
from collab_server.logs import get_logger, kv
from collab_server.protocol import CloseCode
from collab_server.room import Room
from collab_server.room_hooks import HookedRoom
from collab_server.room_key import RoomKey
from collab_server.room_metadata import RoomMetadata
from collab_server.rooms import RoomRegistry
from storage_bridge.base import Storage
from storage_bridge.types import ResourceId, User

log = get_logger("hub")

# (key, resource id, principal) -> the live room for an editor, loaded if need be
Acquire = Callable[[RoomKey, ResourceId, Principal], Awaitable[Room]]


class WorkCopies:
    def __init__(
        self, *, storage: Storage, meta: RoomMetadata, rooms: RoomRegistry, acquire: Acquire
    ) -> None:
        self._storage = storage
        self._meta = meta
        self._rooms = rooms
        self._acquire = acquire

    async def create(self, room: HookedRoom, conn: Connection) -> dict[str, Any]:
        """A copy of the live document beside the original, as its own room (to merge back)."""
        data = room.export()
        original = await self._storage.stat(conn.token, room.resource_id)
        copy = await create_copy_beside(
            self._storage, conn.token, original, conn.user.username, data
        )
        copy_key = room.room_key.of_file(copy.id.to_file_id())
        await self._meta.record_fork(copy_key.file_id, room.room_key.file_id, data)
        lineage, _ = await self._meta.ensure_lineage(str(copy_key))
        log.info("work copy created", extra=kv(room=room.key, path=copy.path))
        return {
            "path": copy.path,
            "format": copy_key.format,
            "docType": copy_key.type,
            "fileId": copy_key.file_id,
            "sessionId": lineage,
        }

    async def merge_back(self, copy_key: RoomKey, token: str, user: User) -> dict[str, Any]:
        """Three-way merge a work copy into its original (base: the copy's starting point)."""
        fork = await self._meta.fork_of(copy_key.file_id)
        if fork is None:
            raise HubError(400, CloseCode.BAD_REQUEST, "this document is not a work copy")
        origin_id, base = fork
        copy_room = self._rooms.get(str(copy_key))
        if copy_room is not None:
            theirs = copy_room.export()
        else:
            theirs, _ = await self._storage.read(token, copy_key.resource_id)
        origin_key = copy_key.of_file(origin_id)
        resource = await self._storage.stat(token, origin_key.resource_id)
        if access_for(resource) is not Access.EDIT:
            raise HubError(403, CloseCode.FORBIDDEN, "you may not write the original")
        origin = await self._acquire(origin_key, origin_key.resource_id, Principal(user, token))
        try:
            refusal = origin.read_only_message()
            if refusal is not None:
                return {"status": "failed", "message": refusal}
            result = await origin.merge_incoming(theirs, user.username, base=base)
        finally:
            self._rooms.release(origin)
        return {
            "status": "conflict" if result.conflicts else "merged",
            "conflicts": result.conflicts,
            "conflictCopy": result.copy,
            "path": resource.path,
        }
