"""Cursors cross instances over a real redis-server, and vanish when their instance dies."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from pycrdt import Awareness, Doc
from redis.asyncio import Redis

from collab_server.awareness import parse_entries
from collab_server.scaleout.awareness_relay import AwarenessRelay
from collab_server.scaleout.keys import RoomKeys
from devkit.redisproc import RedisProcess

CHANNEL = RoomKeys("nb-1").awareness
REMOTE = object()


class AwareRoom:
    def __init__(self) -> None:
        self.awareness = Awareness(Doc())

    def apply_remote_awareness(self, payload: bytes) -> list[int]:
        self.awareness.apply_awareness_update(payload, REMOTE)
        return [entry.client for entry in parse_entries(payload)]

    def drop_awareness(self, client_ids: list[int]) -> None:
        self.awareness.remove_awareness_states(client_ids, REMOTE)

    def local(self, state: dict[str, Any]) -> bytes:
        self.awareness.set_local_state(state)
        return self.awareness.encode_awareness_update([self.awareness.client_id])


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while True:
            if check():
                return
            await asyncio.sleep(0.01)


async def test_a_cursor_crosses_instances_and_goes_when_its_instance_dies(
    redis_server: RedisProcess,
) -> None:
    clients = [Redis.from_url(redis_server.url, socket_timeout=3.0) for _ in range(2)]
    relays = [AwarenessRelay(c, f"hub-{n}", liveness_ttl_ms=600) for n, c in enumerate(clients)]
    rooms = [AwareRoom(), AwareRoom()]
    tasks = [asyncio.create_task(r.run()) for r in relays]
    for relay, room in zip(relays, rooms, strict=True):
        await relay.join(CHANNEL, room)
    a_id = rooms[0].awareness.client_id
    update = rooms[0].local({"user": {"name": "einstein"}, "cursor": 3})
    # Pub/sub drops what is sent before the subscription is in place; clients renew their
    # state (every 15 s in JupyterLab), here every 0.2 s until it arrives.
    async with asyncio.timeout(10):
        while rooms[1].awareness.states.get(a_id, {}).get("cursor") != 3:
            await relays[0].publish(CHANNEL, update)
            await asyncio.sleep(0.2)
    # hub-0 dies: no goodbye, its heartbeat key expires, hub-1 drops its clients' states.
    relays[0].stop()
    tasks[0].cancel()
    await until(lambda: a_id not in rooms[1].awareness.states, 5)
    assert relays[1].dropped_instances == 1
    relays[1].stop()
    tasks[1].cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for c in clients:
        await c.aclose()
