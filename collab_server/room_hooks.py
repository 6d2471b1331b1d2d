"""What a room asks of its owner, as one typed protocol given when the room is built.

A room handles its own protocol; three things involve the rest of the hub: a JSON command that
touches other rooms (``work_on_copy``, ``merge_back``), a big one-off message whose bytes the
heap should give back once sent, and the room's own failure (the registry forgets it). The
payloads are dataclasses; the room they name is a ``HookedRoom``, the part of a room the hub
may use (this module imports no room: no import cycle).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from collab_server.connection import Connection
from collab_server.room_key import RoomKey
from storage_bridge.types import ResourceId


class HookedRoom(Protocol):
    """What the hub may use of a room it is told about."""

    @property
    def key(self) -> str: ...

    @property
    def room_key(self) -> RoomKey: ...

    @property
    def resource_id(self) -> ResourceId: ...

    def export(self) -> bytes: ...


@dataclass(frozen=True, slots=True)
class CommandRequest:
    """A client sent a JSON raw command; the answer is sent back to it alone."""

    room: HookedRoom
    conn: Connection
    command: dict[str, Any]


@dataclass(frozen=True, slots=True)
class LargeSend:
    """A message of ``size`` bytes (a full SyncStep2) was queued for one client."""

    room: HookedRoom
    size: int


@dataclass(frozen=True, slots=True)
class RoomFailed:
    """The room failed (its log, or a task of it): its clients are being closed."""

    room: HookedRoom
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class RoomClosedEvent:
    """The room closed after its final snapshot (it leaves the other instances' fan-out)."""

    room: HookedRoom


@dataclass(frozen=True, slots=True)
class SnapshotWritten:
    """The room wrote ``etag`` (content hash ``digest``) to storage."""

    room: HookedRoom
    etag: str
    digest: str
    lock_id: str | None


class RoomHooks(Protocol):
    async def command(self, request: CommandRequest) -> dict[str, Any]: ...

    def large_send(self, event: LargeSend) -> None: ...

    async def failed(self, event: RoomFailed) -> None: ...

    async def closed(self, event: RoomClosedEvent) -> None: ...

    def snapshot_written(self, event: SnapshotWritten) -> None: ...


class NoHooks:
    """Hooks of a room on its own (unit tests): commands are unknown, nothing else happens."""

    async def command(self, request: CommandRequest) -> dict[str, Any]:
        kind = request.command.get("type")
        return {"type": kind, "status": "failed", "message": f"unknown command {kind!r}"}

    def large_send(self, event: LargeSend) -> None:
        return None

    async def failed(self, event: RoomFailed) -> None:
        return None

    async def closed(self, event: RoomClosedEvent) -> None:
        return None

    def snapshot_written(self, event: SnapshotWritten) -> None:
        return None
