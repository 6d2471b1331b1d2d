"""Awareness across instances: pub/sub per room, and instance liveness that cleans up (§10).

Pub/sub may drop a message; that is fine for awareness (not for documents), because every
client renews its state every 15 s. What pub/sub cannot tell is that an instance died with
its clients' states still shown everywhere: each instance heartbeats a TTL key, and the
others drop the states that came from an instance whose key expired.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from collab_server.logs import get_logger, kv
from collab_server.scaleout.errors import REDIS_UNAVAILABLE
from collab_server.scaleout.keys import as_bytes
from collab_server.scaleout.presence import InstancePresence, publish_awareness, split_awareness

log = get_logger("scaleout.awareness")


class AwarenessRoom(Protocol):
    def apply_remote_awareness(self, payload: bytes) -> list[int]:
        """Apply an awareness update from another instance; the client ids it carried."""
        ...

    def drop_awareness(self, client_ids: list[int]) -> None: ...


class AwarenessRelay:
    """One per instance: one pub/sub connection for all its rooms."""

    def __init__(
        self,
        redis: Redis,
        instance: str,
        *,
        liveness_ttl_ms: int = 15_000,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._redis = redis
        self.presence = InstancePresence(redis, instance, liveness_ttl_ms)
        self._ttl_s = liveness_ttl_ms / 1000
        self._sleep = sleep
        self._rooms: dict[str, AwarenessRoom] = {}
        self._from: dict[str, dict[str, set[int]]] = {}  # channel -> instance -> client ids
        self._whole: set[str] = set()  # channels whose rooms answer with all of an instance's ids
        self._pubsub: PubSub | None = None
        self._outgoing: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(maxsize=10_000)
        self.dropped_instances = 0
        self.dropped_messages = 0
        # A flag, not only cancellation: redis-py may swallow a CancelledError that lands in a
        # blocked pub/sub read (it drops the connection and returns), and the loop went on.
        self._stopping = False

    @property
    def instance(self) -> str:
        return self.presence.instance

    async def join(self, channel: str, room: AwarenessRoom) -> None:
        self._rooms[channel] = room
        self._from.setdefault(channel, {})
        if self._pubsub is not None:
            await self._pubsub.subscribe(channel)

    def register(self, channel: str, room: AwarenessRoom, *, whole: bool = False) -> None:
        """``join`` before ``run`` (nothing to subscribe yet: ``run`` subscribes to all).
        ``whole``: the room answers each message with *every* id it holds from the sender's
        instance (not only the message's), so a channel that lives as long as the process
        does not collect the ids of every tab that ever came and went."""
        self._rooms[channel] = room
        self._from.setdefault(channel, {})
        if whole:
            self._whole.add(channel)

    def link(self, channel: str) -> ChannelLink:
        return ChannelLink(self, channel)

    async def leave(self, channel: str) -> None:
        self._rooms.pop(channel, None)
        self._from.pop(channel, None)
        if self._pubsub is not None:
            await self._pubsub.unsubscribe(channel)

    async def publish(self, channel: str, payload: bytes) -> None:
        """A local client's awareness update; lost while Redis is down (renewed in 15 s)."""
        try:
            await publish_awareness(self._redis, channel, self.instance, payload)
        except REDIS_UNAVAILABLE as exc:
            log.debug("awareness publish failed", extra=kv(error=repr(exc)))

    def offer(self, channel: str, payload: bytes) -> None:
        """Queue a local awareness update for the others (from sync code: a room's handler).
        Dropped when the queue is full: awareness heals itself within 15 s."""
        try:
            self._outgoing.put_nowait((channel, payload))
        except asyncio.QueueFull:
            self.dropped_messages += 1

    async def _send_loop(self) -> None:
        while True:
            channel, payload = await self._outgoing.get()
            await self.publish(channel, payload)

    async def run(self) -> None:
        """Receive, send, heartbeat and clean up until stopped; survives Redis going away.

        The three loops run in one task group: anything but Redis being away (which each one
        survives) ends them all and ``run`` with it, so the caller's supervisor logs and counts
        it instead of a helper task dying unseen."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self._heartbeat(), name="awareness-heartbeat")
            sender = group.create_task(self._send_loop(), name="awareness-sender")
            while not self._stopping:
                try:
                    await self._listen()
                except REDIS_UNAVAILABLE as exc:
                    log.warning("awareness relay lost redis", extra=kv(error=repr(exc)))
                    self._pubsub = None
                    await self._sleep(0.5)
            sender.cancel()  # waits on its queue: the other two end on the stop flag

    async def _listen(self) -> None:
        self._pubsub = self._redis.pubsub()
        if self._rooms:
            await self._pubsub.subscribe(*self._rooms)
        while not self._stopping:
            if not self._rooms:
                await self._sleep(0.05)
                continue
            message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is not None and message.get("type") == "message":
                self._received(as_bytes(message["channel"]).decode(), as_bytes(message["data"]))

    def _received(self, channel: str, data: bytes) -> None:
        room = self._rooms.get(channel)
        if room is None:
            return
        try:
            instance, payload = split_awareness(data)
        except ValueError:
            log.warning("bad awareness message", extra=kv(channel=channel))
            return
        if instance == self.instance:
            return
        ids = room.apply_remote_awareness(payload)
        if channel in self._whole:
            self._from[channel][instance] = set(ids)
        else:
            self._from[channel].setdefault(instance, set()).update(ids)

    def stop(self) -> None:
        """End ``run`` (within a second): no more heartbeats, the others drop our cursors."""
        self._stopping = True

    async def _heartbeat(self) -> None:
        while not self._stopping:
            try:
                await self.presence.beat()
                await self._drop_dead()
            except REDIS_UNAVAILABLE as exc:
                log.debug("heartbeat failed", extra=kv(error=repr(exc)))
            await self._sleep(self._ttl_s / 3)

    async def _drop_dead(self) -> None:
        known = sorted({i for by in self._from.values() for i in by})
        if not known:
            return
        alive = await self.presence.alive(known)
        for channel, by in self._from.items():
            for instance in [i for i in by if i not in alive]:
                ids = by.pop(instance)
                self.dropped_instances += 1
                room = self._rooms.get(channel)
                if room is not None and ids:
                    room.drop_awareness(sorted(ids))


class ChannelLink:
    """Publishes to one channel of a relay (the hub's presence room uses one)."""

    def __init__(self, relay: AwarenessRelay, channel: str) -> None:
        self._relay = relay
        self._channel = channel

    def offer(self, payload: bytes) -> None:
        self._relay.offer(self._channel, payload)
