"""The stream building blocks against a real redis-server: publish, follow, join, trim."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from redis.asyncio import Redis

from collab_server.scaleout.entries import Entry, EntryKind
from collab_server.scaleout.keys import RoomKeys
from collab_server.scaleout.publisher import PersistedState, RoomStream
from collab_server.scaleout.reader import StreamReader
from devkit.redisproc import RedisProcess


async def until(check: Callable[[], bool], timeout: float) -> None:
    """Poll ``check`` until it holds (a test of real Redis I/O: no clock to advance)."""
    async with asyncio.timeout(timeout):
        while True:
            if check():
                return
            await asyncio.sleep(0.01)


def update(origin: str, seq: int, payload: bytes = b"u") -> Entry:
    return Entry(origin=origin, seq=seq, lineage="L", kind=EntryKind.UPDATE, payload=payload)


async def test_one_reader_follows_many_rooms_in_order(redis: Redis) -> None:
    rooms = [RoomStream(redis, RoomKeys(f"room-{i}")) for i in range(3)]
    got: dict[str, list[int]] = {}
    reader = StreamReader(redis, block_ms=100)

    def handler(stream: str, entries: list[tuple[bytes, Entry]]) -> None:
        got.setdefault(stream, []).extend(e.seq for _, e in entries)

    for room in rooms:
        reader.follow(room.keys.stream, b"$", handler)
    task = asyncio.create_task(reader.run())
    await asyncio.sleep(0.15)  # the reader's first XREAD is blocking from "$"
    for seq in range(1, 51):
        for room in rooms:
            await room.publish(update("b", seq))
    await until(lambda: sum(len(v) for v in got.values()) >= 150, 5)
    task.cancel()
    assert {s: v for s, v in got.items()} == {r.keys.stream: list(range(1, 51)) for r in rooms}


async def test_a_joiner_gets_the_persisted_state_and_only_newer_entries(redis: Redis) -> None:
    room = RoomStream(redis, RoomKeys("nb"))
    assert await room.claim_lineage("first") == "first"
    assert await room.claim_lineage("second") == "first"  # one lineage per room
    ids = [await room.publish(update("b", seq)) for seq in range(1, 6)]
    await room.persist(PersistedState(state=b"STATE", covers=ids[2], seen={"b": 3}))
    view = await room.join()
    assert view.lineage == "first"
    assert view.state is not None and view.state.state == b"STATE" and view.state.seen == {"b": 3}
    assert [e.seq for _, e in view.entries] == [4, 5]
    # XTRIM MINID dropped what the state covers
    assert [i for i, _ in await redis.xrange(room.keys.stream) or []] == ids[3:]
    assert view.intact


async def test_the_reader_survives_a_redis_restart_and_resumes(
    redis: Redis, redis_server: RedisProcess
) -> None:
    room = RoomStream(redis, RoomKeys("nb"))
    health: list[bool] = []
    got: list[int] = []
    reader = StreamReader(redis, block_ms=100, on_health=health.append)
    reader.follow(room.keys.stream, b"0", lambda _s, es: got.extend(e.seq for _, e in es))
    task = asyncio.create_task(reader.run())
    await room.publish(update("b", 1))
    await until(lambda: got == [1], 5)
    redis_server.kill9()
    await until(lambda: health == [False], 5)
    assert not task.done(), "the reader died with redis"
    redis_server.start()  # appendonly: the stream is back
    await room.publish(update("b", 2))
    await until(lambda: got == [1, 2], 10)
    assert health == [False, True]
    task.cancel()


async def test_bad_entries_are_counted_and_skipped(redis: Redis) -> None:
    room = RoomStream(redis, RoomKeys("nb"))
    await redis.xadd(room.keys.stream, {"hello": "world"})
    await room.publish(update("b", 1))
    got: list[int] = []
    reader = StreamReader(redis, block_ms=50)
    reader.follow(room.keys.stream, b"0", lambda _s, es: got.extend(e.seq for _, e in es))
    task = asyncio.create_task(reader.run())
    await until(lambda: got == [1], 5)
    task.cancel()
    assert reader.bad_entries == 1
