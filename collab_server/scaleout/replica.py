"""One room's replica on one instance: publish our updates, apply the others' (§10).

The room is behind a two-method protocol so this module knows nothing of sockets or logs:
``apply_remote`` applies under a remote origin (the room logs it locally and sends it to its
own clients, but never hands it back to ``publish``), ``full_state`` is the whole doc.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from redis.asyncio import Redis

from collab_server.logs import get_logger, kv
from collab_server.scaleout.entries import Entry, EntryKind, encode
from collab_server.scaleout.errors import REDIS_UNAVAILABLE
from collab_server.scaleout.keys import RoomKeys
from collab_server.scaleout.publisher import PersistedState, RoomStream
from collab_server.scaleout.reader import StreamReader
from collab_server.scaleout.sequence import OriginSequences, Verdict

log = get_logger("scaleout.replica")

PENDING_MAX_BYTES = 8 << 20  # unpublished updates beyond this collapse into one full state


class ReplicaDoc(Protocol):
    def apply_remote(self, update: bytes) -> None: ...

    def full_state(self) -> bytes: ...


@dataclass(slots=True)
class ReplicaCounters:
    published: int = 0
    applied: int = 0
    duplicates: int = 0
    foreign_lineage: int = 0
    gaps: int = 0
    resyncs_answered: int = 0
    publish_failures: int = 0


class RoomReplica:
    def __init__(
        self,
        *,
        redis: Redis,
        reader: StreamReader,
        keys: RoomKeys,
        instance: str,
        lineage: str,
        doc: ReplicaDoc,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        start: Callable[[Coroutine[Any, Any, None], str], asyncio.Task[None]] | None = None,
    ) -> None:
        self.keys = keys
        # How the sender task is started: the cluster passes ``supervised`` (an unexpected end
        # is logged and counted, never silent); a bare task by default (unit tests).
        self._start = start or (lambda coro, name: asyncio.create_task(coro, name=name))
        self.stream = RoomStream(redis, keys)
        self._redis = redis
        self._reader = reader
        self._doc = doc
        self._sleep = sleep
        self.sequences = OriginSequences(instance=instance, lineage=lineage)
        self.counters = ReplicaCounters()
        # Entries wait here in sequence order; ONE sender XADDs them, so a stream never holds
        # seq n+1 before n (a reader would take n as a replay and drop it).
        self._pending: list[Entry] = []
        self._pending_bytes = 0
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._sender: asyncio.Task[None] | None = None

    @property
    def instance(self) -> str:
        return self.sequences.instance

    @property
    def lineage(self) -> str:
        return self.sequences.lineage

    async def join(self) -> bool:
        """Bring the doc up to what Redis holds, then follow the stream.

        False when Redis holds another lineage for the room: this replica's doc must not meet
        it (the caller reopens the room from Redis's lineage instead)."""
        view = await self.stream.join()
        if view.lineage is not None and view.lineage != self.lineage:
            return False
        created = view.lineage is None
        if created and await self.stream.claim_lineage(self.lineage) != self.lineage:
            return False  # another instance made the room a moment ago
        seen: dict[str, int] = {}
        if view.state is not None:
            self._doc.apply_remote(view.state.state)
            seen.update(view.state.seen)
        last_id = view.state.covers if view.state is not None else b"0"
        for entry_id, entry in view.entries:
            last_id = entry_id
            if entry.lineage == self.lineage and entry.kind is not EntryKind.RESYNC:
                self._doc.apply_remote(entry.payload)
                seen[entry.origin] = max(seen.get(entry.origin, 0), entry.seq)
        self.sequences.joined_at(seen)
        self._reader.follow(self.keys.stream, last_id, self.on_entries)
        self._sender = self._start(self._send_loop(), f"replica:{self.keys.room}")
        if view.state is None and not view.entries:
            # Redis has none of the doc (its creator is us, or Redis lost its data): the first
            # entry carries all of it.
            self._queue(EntryKind.FULL_STATE, self._doc.full_state())
        if not view.intact:
            self._queue(EntryKind.RESYNC, b"")
        return True

    def persisted_state(self) -> PersistedState:
        """The doc as it is now, with what it covers: for the writer's ``state`` in Redis.

        Read in one go on the event loop: every entry up to the reader's position was applied
        (or was our own, already in the doc), and our own queued entries are in the doc too."""
        seen = dict(self.sequences.last_seen)
        seen[self.instance] = self.sequences.published
        covers = self._reader.position(self.keys.stream) or b"0-0"
        return PersistedState(self._doc.full_state(), covers, seen)

    def publish(self, update: bytes) -> None:
        """Queue a local update that is already in this instance's log; never raises."""
        self._queue(EntryKind.UPDATE, update)

    def republish(self) -> None:
        """After Redis came back (possibly empty): everything we have, once."""
        self._queue(EntryKind.FULL_STATE, self._doc.full_state())

    async def close(self) -> None:
        self._reader.unfollow(self.keys.stream)
        if self._sender is not None:
            await self._flush_then_stop()

    def _queue(self, kind: EntryKind, payload: bytes) -> None:
        if self._pending_bytes + len(payload) > PENDING_MAX_BYTES and kind is EntryKind.UPDATE:
            # Redis has been away long: one full state says it all and stays bounded.
            self._pending = [e for e in self._pending if e.kind is EntryKind.RESYNC]
            self._pending_bytes = 0
            kind, payload = EntryKind.FULL_STATE, self._doc.full_state()
        entry = Entry(self.instance, self.sequences.next_own(), self.lineage, kind, payload)
        self._pending.append(entry)
        self._pending_bytes += len(payload)
        self._drained.clear()
        self._wake.set()

    async def _send_loop(self) -> None:
        delay = 0.05
        while True:
            if not self._pending:
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = list(self._pending)
            try:
                await self._xadd(batch)
            except REDIS_UNAVAILABLE as exc:
                # Kept, same sequence numbers: a retried XADD that did land is a duplicate the
                # readers drop; one that did not is sent now.
                self.counters.publish_failures += 1
                log.warning("publish failed", extra=kv(room=self.keys.room, error=repr(exc)))
                await self._sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            delay = 0.05
            del self._pending[: len(batch)]
            self._pending_bytes = sum(len(e.payload) for e in self._pending)
            self.counters.published += len(batch)
            if not self._pending:
                self._drained.set()

    async def _xadd(self, batch: list[Entry]) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for entry in batch:
                fields: dict[Any, Any] = encode(entry)
                pipe.xadd(self.keys.stream, fields)
            await pipe.execute()

    async def _flush_then_stop(self) -> None:
        assert self._sender is not None
        try:
            async with asyncio.timeout(2.0):
                await self._drained.wait()
        except TimeoutError:
            log.warning("closing with unpublished entries", extra=kv(room=self.keys.room))
        self._sender.cancel()

    def on_entries(self, _stream: str, entries: list[tuple[bytes, Entry]]) -> None:
        """The reader's handler for this room's stream."""
        resync = False
        for _id, entry in entries:
            verdict = self.sequences.classify(entry)
            if verdict is Verdict.OWN:
                continue
            if verdict is Verdict.DUPLICATE:
                self.counters.duplicates += 1
                continue
            if verdict is Verdict.FOREIGN_LINEAGE:
                self.counters.foreign_lineage += 1
                continue
            if verdict is Verdict.GAP:
                self.counters.gaps += 1
                resync = True
            if entry.kind is EntryKind.RESYNC:
                self.counters.resyncs_answered += 1
                self.republish()
                continue
            self._doc.apply_remote(entry.payload)
            self.counters.applied += 1
        if resync:
            self._queue(EntryKind.RESYNC, b"")
