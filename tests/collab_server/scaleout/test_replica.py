"""Replicas of one room on several instances, over a real redis-server, converge and never
apply anything twice: concurrent typing, a replayed XADD, a lost entry, Redis restarted empty,
a late joiner. The "room" is a bare pycrdt doc: the replica only needs apply and full state."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from pycrdt import Doc, Text, TransactionEvent
from redis.asyncio import Redis

from collab_server.scaleout.entries import Entry, EntryKind
from collab_server.scaleout.keys import RoomKeys
from collab_server.scaleout.reader import StreamReader
from collab_server.scaleout.replica import RoomReplica
from devkit.redisproc import RedisProcess

KEYS = RoomKeys("nb-1")


class TextRoom:
    """A room stand-in: local edits are published, remote ones applied (never re-published)."""

    def __init__(self) -> None:
        self.doc: Doc[Text] = Doc()
        self.text = self.doc.get("t", type=Text)
        self.replica: RoomReplica | None = None
        self.reader: StreamReader | None = None
        self._remote = False
        self.doc.observe(self._changed)

    def _changed(self, event: TransactionEvent) -> None:
        if not self._remote and self.replica is not None:
            self.replica.publish(event.update)

    def apply_remote(self, update: bytes) -> None:
        self._remote = True
        try:
            self.doc.apply_update(update)
        finally:
            self._remote = False

    def full_state(self) -> bytes:
        return self.doc.get_update()

    def type(self, s: str) -> None:
        self.text += s


@asynccontextmanager
async def instance(url: str, name: str, lineage: str = "L") -> AsyncIterator[TextRoom]:
    redis = Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=0.5)
    room = TextRoom()
    replicas: list[RoomReplica] = []

    def health(up: bool) -> None:
        if up:
            for replica in replicas:
                replica.republish()

    reader = StreamReader(redis, block_ms=100, on_health=health)
    task = asyncio.create_task(reader.run())
    replica = RoomReplica(
        redis=redis, reader=reader, keys=KEYS, instance=name, lineage=lineage, doc=room
    )
    assert await replica.join()
    replicas.append(replica)
    room.replica = replica
    room.reader = reader
    try:
        yield room
    finally:
        await replica.close()
        task.cancel()
        await redis.aclose()


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while True:
            if check():
                return
            await asyncio.sleep(0.01)


async def test_concurrent_typing_on_three_instances_converges(redis_server: RedisProcess) -> None:
    async with (
        instance(redis_server.url, "a") as a,
        instance(redis_server.url, "b") as b,
        instance(redis_server.url, "c") as c,
    ):
        for i in range(100):
            a.type(f"a{i};")
            b.type(f"b{i};")
            c.type(f"c{i};")
            if i % 10 == 0:
                await asyncio.sleep(0)
        await until(lambda: str(a.text) == str(b.text) == str(c.text) and len(str(a.text)) > 900)
        text = str(a.text)
        for who in "abc":
            for i in range(100):
                assert text.count(f"{who}{i};") == 1  # every edit once: none lost, none doubled


async def test_a_replayed_xadd_is_applied_once(redis_server: RedisProcess, redis: Redis) -> None:
    async with instance(redis_server.url, "a") as a, instance(redis_server.url, "b") as b:
        a.type("hello")
        await until(lambda: str(b.text) == "hello")
        assert a.replica is not None and b.replica is not None
        # Fault injection: what a redis-py retry does when the first XADD landed but its
        # reply was lost: the same entry a second time.
        other = TextRoom()
        other.doc.apply_update(a.full_state())
        other.text.insert(0, ">")
        replay = Entry("z", 1, "L", EntryKind.UPDATE, other.doc.get_update(a.doc.get_state()))
        await a.replica.stream.publish(replay)
        await a.replica.stream.publish(replay)
        await until(lambda: str(a.text) == str(b.text) == ">hello")
        assert b.replica.counters.duplicates == 1


async def test_a_lost_entry_is_seen_as_a_gap_and_healed_by_a_resync(
    redis_server: RedisProcess, redis: Redis
) -> None:
    async with instance(redis_server.url, "a") as a, instance(redis_server.url, "b") as b:
        assert a.replica is not None and b.replica is not None and b.reader is not None
        a.type("one;")
        await until(lambda: str(b.text) == "one;")
        # Fault injection: b lags, and the entry it has not read yet is trimmed away before
        # it gets to it (XREAD from a trimmed id silently skips to the next survivor).
        position = b.reader.position(KEYS.stream)
        assert position is not None
        b.reader.unfollow(KEYS.stream)
        a.type("lost;")
        await until(lambda: a.replica is not None and a.replica.counters.published == 2)
        entries = await redis.xrange(KEYS.stream, min=b"(" + position) or []
        assert len(entries) == 1
        entry_id = entries[0][0]
        assert entry_id is not None
        await redis.xdel(KEYS.stream, entry_id)
        b.reader.follow(KEYS.stream, position, b.replica.on_entries)
        a.type("after;")  # depends on the lost text: b cannot show it alone
        await until(lambda: b.replica is not None and b.replica.counters.gaps == 1)
        await until(lambda: str(b.text) == "one;lost;after;")
        assert a.replica.counters.resyncs_answered == 1


async def test_editing_goes_on_when_redis_dies_and_all_converge_after_it_returns_empty(
    redis_server: RedisProcess,
) -> None:
    async with instance(redis_server.url, "a") as a, instance(redis_server.url, "b") as b:
        a.type("before;")
        await until(lambda: str(b.text) == "before;")
        redis_server.kill9()
        a.type("a-offline;")
        b.type("b-offline;")
        await asyncio.sleep(0.3)
        assert "b-offline;" not in str(a.text)  # nothing crosses without Redis
        redis_server.wipe()  # Redis comes back with none of its data
        redis_server.start()
        await until(lambda: str(a.text) == str(b.text) and "b-offline;" in str(a.text), 15)
        text = str(a.text)
        assert all(text.count(s) == 1 for s in ("before;", "a-offline;", "b-offline;"))


async def test_a_late_joiner_reads_the_room_from_redis(redis_server: RedisProcess) -> None:
    async with instance(redis_server.url, "a") as a:
        for i in range(20):
            a.type(f"{i},")
        await until(lambda: a.replica is not None and a.replica.counters.published >= 20)
        async with instance(redis_server.url, "late") as late:
            assert str(late.text) == str(a.text)  # right after join, before any live entry
            late.type("late")
            await until(lambda: str(a.text).endswith("late"))


async def test_a_replica_of_another_lineage_is_refused(redis_server: RedisProcess) -> None:
    async with instance(redis_server.url, "a", lineage="L"):
        redis = Redis.from_url(redis_server.url)
        reader = StreamReader(redis)
        stale = RoomReplica(
            redis=redis, reader=reader, keys=KEYS, instance="s", lineage="OLD", doc=TextRoom()
        )
        assert not await stale.join()
        await redis.aclose()


async def test_a_closed_transport_during_a_reconnect_does_not_end_the_sender(
    redis_server: RedisProcess,
) -> None:
    # Fault injection (named): what redis-py under uvloop raised in CI when an XADD raced a
    # reconnect, a RuntimeError about the old, closed transport. It ended the room's sender.
    async with instance(redis_server.url, "a") as a, instance(redis_server.url, "b") as b:
        assert a.replica is not None
        real_xadd = a.replica._xadd
        failures = [RuntimeError("unable to perform operation on <TCPTransport closed=True>")]

        async def closed_transport_once(batch: list[Entry]) -> None:
            if failures:
                raise failures.pop()
            await real_xadd(batch)

        a.replica._xadd = closed_transport_once  # type: ignore[method-assign]
        a.type("after the reconnect")
        await until(lambda: str(b.text) == "after the reconnect")
        assert not failures and a.replica.counters.publish_failures == 1
