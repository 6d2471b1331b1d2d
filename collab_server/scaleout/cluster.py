"""The hub's link to the other instances: one per hub process with ``--fanout redis`` (§10).

It owns the Redis client, the one stream reader, the awareness relay, and per open room a
replica (the document across instances) and a writer-lease loop (who writes storage).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from prometheus_client import Counter, Gauge
from redis.asyncio import Redis

from collab_server.logs import get_logger, kv
from collab_server.scaleout.awareness_relay import AwarenessRelay, AwarenessRoom, ChannelLink
from collab_server.scaleout.errors import REDIS_UNAVAILABLE
from collab_server.scaleout.keys import PRESENCE_CHANNEL, RoomKeys, as_bytes
from collab_server.scaleout.lease import WriterLease
from collab_server.scaleout.publisher import PersistedState, RoomStream
from collab_server.scaleout.reader import StreamReader
from collab_server.scaleout.replica import ReplicaDoc, RoomReplica
from collab_server.scaleout.writer_meta import WriterMeta
from collab_server.supervise import supervised

log = get_logger("scaleout.cluster")

P = TypeVar("P", bound=AwarenessRoom)


class ClusterRoom(ReplicaDoc, AwarenessRoom, Protocol):
    @property
    def cluster_id(self) -> str: ...  # the resource id: the same on every instance

    @property
    def lineage(self) -> str: ...

    def wants_to_write(self) -> bool: ...  # an editor's token is at hand (storage needs one)

    async def become_writer(self, meta: WriterMeta) -> None: ...

    def stop_writing(self) -> None: ...

    def task_failed(self, exc: BaseException) -> None: ...  # fail the room: clients reload it


def new_instance_id(name: str | None = None) -> str:
    # A new id per process start: a restarted instance's sequence numbers start at 1 again,
    # which under its old id would read as replays.
    return f"{name or socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class Cluster:
    def __init__(
        self,
        redis_url: str,
        *,
        lease_ttl: float,
        failures: Counter,
        redis_up: Gauge,
        instance: str | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.instance = instance or new_instance_id()
        # Below the socket timeout: redis-py raises for a BLOCK longer than it (#2807).
        self.redis = Redis.from_url(redis_url, socket_timeout=5.0, socket_connect_timeout=2.0)
        self.reader = StreamReader(self.redis, block_ms=250, on_health=self._health)
        self.relay = AwarenessRelay(self.redis, self.instance)
        self._lease_ttl_ms = int(lease_ttl * 1000)
        self._failures = failures
        self._redis_up = redis_up
        self._sleep = sleep
        self._replicas: dict[str, RoomReplica] = {}
        self._leases: dict[str, asyncio.Task[None]] = {}
        self._lease_of: dict[str, WriterLease] = {}
        self._tasks: list[asyncio.Task[None]] = []
        redis_up.set(1)

    @property
    def up(self) -> bool:
        return self.reader.up

    def start(self) -> None:
        for coro, name in (
            (self.reader.run(), "cluster.reader"),
            (self.relay.run(), "cluster.awareness"),
        ):
            self._tasks.append(supervised(coro, task=name, failures=self._failures))

    def _health(self, up: bool) -> None:
        self._redis_up.set(1 if up else 0)
        if up:  # Redis is back, maybe empty: everyone publishes what they have, once
            for replica in self._replicas.values():
                replica.republish()

    async def lineage_of(self, cluster_id: str) -> str | None:
        """The room's lineage across instances; None if none yet or Redis is away."""
        try:
            raw = await self.redis.hget(RoomKeys(cluster_id).meta, "lineage")
        except REDIS_UNAVAILABLE as exc:
            log.warning("redis unavailable for lineage", extra=kv(room=cluster_id, error=repr(exc)))
            return None
        return None if raw is None else as_bytes(raw).decode()

    async def claim_lineage(self, cluster_id: str, lineage: str) -> str:
        """The room's lineage across instances, ``lineage`` if it had none (a session call:
        every instance must hand out the same sessionId). Raises RedisError if Redis is away."""
        return await RoomStream(self.redis, RoomKeys(cluster_id)).claim_lineage(lineage)

    def _lease(self, cluster_id: str) -> WriterLease:
        lease = self._lease_of.get(cluster_id)
        if lease is None:
            lease = WriterLease(self.redis, RoomKeys(cluster_id), self.instance, self._lease_ttl_ms)
            self._lease_of[cluster_id] = lease
        return lease

    async def may_create(self, cluster_id: str) -> bool:
        """Whether this instance may build the room's doc from the file: only the writer may
        (two builds of one file are two sets of cells in one doc)."""
        return await self._lease(cluster_id).acquire()

    async def room_view(self, cluster_id: str) -> tuple[str | None, list[bytes]]:
        """The lineage and the Y updates that make the room's doc in Redis (state + entries)."""
        view = await RoomStream(self.redis, RoomKeys(cluster_id)).join()
        updates = [] if view.state is None else [view.state.state]
        updates += [e.payload for _, e in view.entries if e.lineage == view.lineage and e.payload]
        return view.lineage, updates

    async def attach(self, room: ClusterRoom) -> bool:
        """Join the room across instances; False: Redis holds another lineage for it."""
        keys = RoomKeys(room.cluster_id)
        replica = RoomReplica(
            redis=self.redis, reader=self.reader, keys=keys, instance=self.instance,
            lineage=room.lineage, doc=room,
            # A sender that ended unexpectedly fails the room (its clients reconnect and it
            # reloads), rather than leave it editing on without publishing to anyone.
            start=lambda coro, name: supervised(
                coro, task="cluster.publish", failures=self._failures, room=room.cluster_id,
                on_failure=room.task_failed,
            ),
        )  # fmt: skip
        if not await replica.join():
            return False
        self._replicas[room.cluster_id] = replica
        await self.relay.join(keys.awareness, room)
        lease = self._lease(room.cluster_id)
        self._leases[room.cluster_id] = supervised(
            self._lease_loop(room, lease), task="cluster.lease", failures=self._failures,
            room=room.cluster_id,
        )  # fmt: skip
        return True

    def share_presence(self, make: Callable[[ChannelLink], P]) -> P:
        """Online Collaborators across instances (before ``start``): the presence room ``make``
        builds offers its snapshots to the link it is given and gets the others'."""
        presence = make(self.relay.link(PRESENCE_CHANNEL))
        self.relay.register(PRESENCE_CHANNEL, presence, whole=True)
        return presence

    def replica(self, cluster_id: str) -> RoomReplica | None:
        return self._replicas.get(cluster_id)

    def publish_awareness(self, cluster_id: str, payload: bytes) -> None:
        if cluster_id in self._replicas:
            self.relay.offer(RoomKeys(cluster_id).awareness, payload)

    def snapshot_written(
        self, cluster_id: str, etag: str, digest: str, lock_id: str | None
    ) -> None:
        """The writer stored a snapshot: keep its Y state and base for joiners and successors
        (in the background: the snapshot is done; a failure is logged and the next one retries)."""
        replica = self._replicas.get(cluster_id)
        if replica is None:
            return
        state = replica.persisted_state()  # now, on the loop: consistent with the doc
        meta = WriterMeta(lock_id, etag, digest)
        supervised(self._persist(replica, meta, state), task="cluster.persist",
                   failures=self._failures, room=cluster_id)  # fmt: skip

    async def _persist(self, replica: RoomReplica, meta: WriterMeta, state: PersistedState) -> None:
        try:
            await replica.stream.persist(state)
            fields = {k: v for k, v in (("lock_id", meta.lock_id), ("base_etag", meta.base_etag),
                      ("base_hash", meta.base_hash)) if v is not None}  # fmt: skip
            if fields:
                await self.redis.hset(replica.keys.meta, mapping=fields)  # type: ignore[arg-type]
        except REDIS_UNAVAILABLE as exc:  # the next snapshot tries again
            log.warning(
                "persisting state to redis failed",
                extra=kv(room=replica.keys.room, error=repr(exc)),
            )

    async def detach(self, cluster_id: str) -> None:
        lease_task = self._leases.pop(cluster_id, None)
        if lease_task is not None:
            lease_task.cancel()
            await asyncio.gather(lease_task, return_exceptions=True)
        self._lease_of.pop(cluster_id, None)
        replica = self._replicas.pop(cluster_id, None)
        if replica is not None:
            await replica.close()
        await self.relay.leave(RoomKeys(cluster_id).awareness)

    async def _lease_loop(self, room: ClusterRoom, lease: WriterLease) -> None:
        writing = False
        try:
            while True:
                try:
                    held = await lease.acquire() if room.wants_to_write() else False
                    if not held and lease.fence is not None:
                        await lease.release()  # no editor here any more: let one that has write
                except REDIS_UNAVAILABLE as exc:
                    # Nobody can take the lease while Redis is away; storage's if_match fences
                    # a writer that was replaced anyway.
                    log.info("lease check failed", extra=kv(room=room.cluster_id, error=repr(exc)))
                    held = writing
                if held and not writing:
                    await room.become_writer(await self._writer_meta(room.cluster_id))
                elif writing and not held:
                    room.stop_writing()
                writing = held
                await self._sleep(self._lease_ttl_ms / 3000)
        finally:
            if writing:
                room.stop_writing()
                try:
                    await lease.release()
                except REDIS_UNAVAILABLE as exc:  # it expires on its own within the TTL
                    log.info(
                        "lease release failed", extra=kv(room=room.cluster_id, error=repr(exc))
                    )

    async def _writer_meta(self, cluster_id: str) -> WriterMeta:
        try:
            raw = await self.redis.hgetall(RoomKeys(cluster_id).meta)
        except REDIS_UNAVAILABLE:
            return WriterMeta(None, None, None)
        meta = {as_bytes(k).decode(): as_bytes(v).decode() for k, v in raw.items()}
        return WriterMeta(meta.get("lock_id"), meta.get("base_etag"), meta.get("base_hash"))

    async def aclose(self) -> None:
        self.relay.stop()
        self.reader.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        try:
            await self.relay.presence.leave()  # the others drop our cursors at once
        except REDIS_UNAVAILABLE as exc:
            log.info("leaving redis failed", extra=kv(error=repr(exc)))
        await self.redis.aclose()
