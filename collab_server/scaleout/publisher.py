"""Writing a room's stream and its metadata: XADD entries, the writer's persisted state, trims."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from collab_server.scaleout.entries import Entry, decode, encode
from collab_server.scaleout.keys import RoomKeys, as_bytes


@dataclass(frozen=True, slots=True)
class PersistedState:
    state: bytes  # a Y update holding the whole doc
    covers: bytes  # the stream id up to which entries are in it
    seen: dict[str, int]  # per origin, the last sequence number it contains


@dataclass(frozen=True, slots=True)
class JoinView:
    lineage: str | None  # None: no instance made this room's lineage yet (or Redis lost it)
    state: PersistedState | None
    entries: list[tuple[bytes, Entry]]  # after state.covers (or all)
    intact: bool  # False: entries between the state and the stream's first entry were trimmed


class RoomStream:
    def __init__(self, redis: Redis, keys: RoomKeys) -> None:
        self._redis = redis
        self.keys = keys

    async def publish(self, entry: Entry) -> bytes:
        fields: dict[Any, Any] = encode(entry)  # redis-py's FieldT is invariant over str | bytes
        return as_bytes(await self._redis.xadd(self.keys.stream, fields))

    async def claim_lineage(self, lineage: str) -> str:
        """Record ``lineage`` unless one is there; returns the room's lineage either way."""
        await self._redis.hsetnx(self.keys.meta, "lineage", lineage)
        return as_bytes(await self._redis.hget(self.keys.meta, "lineage")).decode()

    async def persist(self, state: PersistedState) -> None:
        """The writer's doc after a snapshot; then entries it covers may go (XTRIM MINID)."""
        seen = ",".join(f"{o}={s}" for o, s in sorted(state.seen.items()))
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                self.keys.state,
                mapping={"state": state.state, "covers": state.covers, "seen": seen},
            )
            # exact: "~" trims whole macro nodes only, and a joiner would re-read covered entries
            pipe.xtrim(self.keys.stream, minid=_after(state.covers), approximate=False)
            await pipe.execute()

    async def join(self) -> JoinView:
        raw_lineage = await self._redis.hget(self.keys.meta, "lineage")
        lineage = None if raw_lineage is None else as_bytes(raw_lineage).decode()
        raw = {
            as_bytes(k): as_bytes(v)
            for k, v in (await self._redis.hgetall(self.keys.state)).items()
        }
        state = None
        start = b"-"
        if raw:
            seen = {}
            for pair in raw[b"seen"].decode().split(","):
                if pair:
                    origin, _, seq = pair.rpartition("=")
                    seen[origin] = int(seq)
            state = PersistedState(raw[b"state"], raw[b"covers"], seen)
            start = b"(" + state.covers
        entries = [
            (
                as_bytes(entry_id),
                decode({as_bytes(k): as_bytes(v) for k, v in (fields or {}).items()}),
            )
            for entry_id, fields in await self._redis.xrange(self.keys.stream, min=start) or []
        ]
        intact = True
        if state is None and lineage is not None:
            # No persisted state: the stream must still hold the lineage's first entries.
            first = await self._first_id()
            intact = first is None or any(e.seq == 1 for _, e in entries) or not entries
        return JoinView(lineage, state, entries, intact)

    async def _first_id(self) -> bytes | None:
        items = await self._redis.xrange(self.keys.stream, count=1)
        return None if not items else as_bytes(items[0][0])


def _after(entry_id: bytes) -> bytes:
    """The smallest stream id greater than ``entry_id`` (MINID keeps ids >= it)."""
    ms, _, seq = entry_id.partition(b"-")
    return ms + b"-" + str(int(seq or b"0") + 1).encode()
