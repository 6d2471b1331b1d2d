"""One writer per room: the lease against a real redis-server."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from collab_server.scaleout.keys import RoomKeys
from collab_server.scaleout.lease import Holder, WriterLease


async def test_one_holder_at_a_time_and_each_holder_gets_a_new_fence(redis: Redis) -> None:
    keys = RoomKeys("nb")
    a = WriterLease(redis, keys, "hub-a", ttl_ms=60_000)
    b = WriterLease(redis, keys, "hub-b", ttl_ms=60_000)
    assert await a.acquire()
    assert not await b.acquire()
    assert await a.renew()
    assert await b.holder() == Holder("hub-a", 1)
    await b.release()  # not b's: nothing happens
    assert await b.holder() == Holder("hub-a", 1)
    await a.release()
    assert await b.acquire()
    assert b.fence == 2
    assert not await a.renew()  # a's old lease is gone


async def test_an_expired_lease_moves_and_the_old_holder_learns_it(redis: Redis) -> None:
    keys = RoomKeys("nb")
    a = WriterLease(redis, keys, "hub-a", ttl_ms=150)
    b = WriterLease(redis, keys, "hub-b", ttl_ms=60_000)
    assert await a.acquire()
    await asyncio.sleep(0.3)  # a stalls past its TTL (Redis's own clock expires it)
    assert await b.acquire()
    assert not await a.renew(), "a stalled holder must not extend a lease someone else holds"
    assert a.fence is None
    assert await a.holder() == Holder("hub-b", 2)
