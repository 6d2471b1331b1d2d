"""The room registry: one live room per resource, loaded once, unloaded after a grace period."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from collab_server.logs import get_logger, kv
from collab_server.metrics import HubMetrics
from collab_server.room import Room
from collab_server.room_hooks import HookedRoom

log = get_logger("rooms")


class RoomRegistry:
    def __init__(
        self,
        *,
        grace: float,
        metrics: HubMetrics,
        on_unloaded: Callable[[], None] | None = None,
    ) -> None:
        self._on_unloaded = on_unloaded
        self._grace = grace
        self._metrics = metrics
        self._rooms: dict[str, Room] = {}
        self._loading: dict[str, asyncio.Task[Room]] = {}
        self._unloading: dict[str, asyncio.Task[None]] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}

    def get(self, key: str) -> Room | None:
        return self._rooms.get(key)

    def __len__(self) -> int:
        return len(self._rooms)

    def rooms(self) -> list[Room]:
        return list(self._rooms.values())

    async def acquire(self, key: str, load: Callable[[], Awaitable[Room]]) -> Room:
        """The live room for ``key``; concurrent callers share a single load."""
        while True:
            if key in self._unloading:
                await asyncio.shield(self._unloading[key])
                continue
            room = self._rooms.get(key)
            if room is not None:
                self._cancel_timer(key)
                return room
            task = self._loading.get(key)
            if task is None:
                task = asyncio.get_running_loop().create_task(self._load(key, load))
                self._loading[key] = task
            # shield: a client that gives up must not cancel the load others wait for
            return await asyncio.shield(task)

    async def _load(self, key: str, load: Callable[[], Awaitable[Room]]) -> Room:
        try:
            room = await load()
            self._rooms[key] = room
            self._metrics.rooms.set(len(self._rooms))
            return room
        finally:
            self._loading.pop(key, None)

    def release(self, room: Room) -> None:
        """A client left: start the unload countdown once the room is empty."""
        if room.client_count or self._rooms.get(room.key) is not room:
            return
        self._cancel_timer(room.key)
        loop = asyncio.get_running_loop()
        self._timers[room.key] = loop.call_later(self._grace, self._start_unload, room)

    def _cancel_timer(self, key: str) -> None:
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    def _start_unload(self, room: Room) -> None:
        self._timers.pop(room.key, None)
        if room.client_count or room.key in self._unloading:
            return
        task = asyncio.get_running_loop().create_task(self._unload(room))
        self._unloading[room.key] = task

    async def _unload(self, room: Room) -> None:
        try:
            await room.close()
            log.info("room unloaded", extra=kv(room=room.key))
        except Exception as exc:
            log.error("room unload failed", extra=kv(room=room.key, error=repr(exc)))
        finally:
            if self._rooms.get(room.key) is room:
                del self._rooms[room.key]
            self._unloading.pop(room.key, None)
            self._metrics.rooms.set(len(self._rooms))
            if self._on_unloaded is not None:
                self._on_unloaded()

    def drop(self, room: HookedRoom) -> None:
        """A failed room: forget it without a snapshot (its clients resend their edits)."""
        if self._rooms.get(room.key) is room:
            del self._rooms[room.key]
            self._metrics.rooms.set(len(self._rooms))

    async def close_all(self) -> None:
        for key in list(self._timers):
            self._cancel_timer(key)
        for room in list(self._rooms.values()):
            for client in room.connections():
                await client.close(1001, "hub shutting down")
            if room.key not in self._unloading:
                self._unloading[room.key] = asyncio.get_running_loop().create_task(
                    self._unload(room)
                )
        if self._unloading:
            await asyncio.gather(*self._unloading.values(), return_exceptions=True)
