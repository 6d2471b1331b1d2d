"""One blocking XREAD per process over every followed room stream (y-redis's fan-out shape).

A reader per room would cost a Redis connection per room; one multi-key XREAD serves all of
them, and returns as soon as any followed stream has data, so its BLOCK time only bounds how
late a newly followed stream is picked up, never the delivery of an update.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from collab_server.logs import get_logger, kv
from collab_server.scaleout.entries import BadEntry, Entry, decode
from collab_server.scaleout.errors import REDIS_UNAVAILABLE
from collab_server.scaleout.keys import as_bytes

log = get_logger("scaleout.reader")

Handler = Callable[[str, list[tuple[bytes, Entry]]], None]


@dataclass(slots=True)
class _Followed:
    last_id: bytes
    handler: Handler


class StreamReader:
    def __init__(
        self,
        redis: Redis,
        *,
        block_ms: int = 250,
        count: int = 5000,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        on_health: Callable[[bool], None] = lambda up: None,
    ) -> None:
        # block_ms must stay below the client's socket_timeout: redis-py raises a
        # TimeoutError for a BLOCK longer than it (redis-py #2807).
        self._redis = redis
        self._block_ms = block_ms
        self._count = count
        self._sleep = sleep
        self._on_health = on_health
        self._followed: dict[str, _Followed] = {}
        self._wake = asyncio.Event()
        self.up = True
        self.bad_entries = 0
        self._stopping = False  # as well as cancellation: redis-py may swallow it mid-read

    def follow(self, stream: str, after_id: bytes, handler: Handler) -> None:
        """Deliver entries of ``stream`` newer than ``after_id`` (b"0" for all) to ``handler``."""
        self._followed[stream] = _Followed(after_id, handler)
        self._wake.set()

    def unfollow(self, stream: str) -> None:
        self._followed.pop(stream, None)

    def stop(self) -> None:
        """End ``run`` after the read in flight (at most one BLOCK)."""
        self._stopping = True
        self._wake.set()

    def position(self, stream: str) -> bytes | None:
        followed = self._followed.get(stream)
        return None if followed is None else followed.last_id

    async def run(self) -> None:
        """Read until cancelled; Redis errors are survived (with backoff), never raised."""
        delay = 0.05
        while not self._stopping:
            if not self._followed:
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                replies = await self._redis.xread(
                    {name: f.last_id for name, f in self._followed.items()},
                    count=self._count,
                    block=self._block_ms,
                )
            except REDIS_UNAVAILABLE as exc:
                self._health(False, exc)
                await self._sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            delay = 0.05
            self._health(True)
            for name, items in _streams(replies):
                self._deliver(name, items)

    def _deliver(self, stream: str, items: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        followed = self._followed.get(stream)
        if followed is None or not items:
            return  # unfollowed while the read was in flight
        entries: list[tuple[bytes, Entry]] = []
        for entry_id, fields in items:
            try:
                entries.append((entry_id, decode(fields)))
            except BadEntry as exc:
                self.bad_entries += 1
                log.warning(
                    "bad stream entry", extra=kv(stream=stream, id=entry_id, error=str(exc))
                )
        followed.last_id = items[-1][0]
        if entries:
            followed.handler(stream, entries)

    def _health(self, up: bool, exc: BaseException | None = None) -> None:
        if up == self.up:
            return
        self.up = up
        if up:
            log.info("redis stream reader reconnected")
        else:
            log.error("redis stream reader lost redis", extra=kv(error=repr(exc)))
        self._on_health(up)


def _streams(replies: Any) -> list[tuple[str, list[tuple[bytes, dict[bytes, bytes]]]]]:
    """XREAD's reply as (stream, [(id, fields)]): RESP2 gives a list of pairs, RESP3 a map,
    and redis-py types it as a union of both (hence Any)."""
    pairs = replies.items() if isinstance(replies, dict) else (replies or [])
    return [
        (
            as_bytes(name).decode(),
            [
                (as_bytes(i), {as_bytes(k): as_bytes(v) for k, v in fields.items()})
                for i, fields in items
            ],
        )
        for name, items in pairs
    ]
