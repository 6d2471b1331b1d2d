"""Instance liveness and awareness across instances (pub/sub: states are renewed every 15 s)."""

from __future__ import annotations

from redis.asyncio import Redis

from collab_server.scaleout.keys import instance_key


class InstancePresence:
    """A TTL key per instance, refreshed by its heartbeat: when it expires, the instance is gone
    and the others drop the awareness states that came from it."""

    def __init__(self, redis: Redis, instance: str, ttl_ms: int) -> None:
        self._redis = redis
        self.instance = instance
        self._ttl_ms = ttl_ms

    async def beat(self) -> None:
        await self._redis.set(instance_key(self.instance), b"1", px=self._ttl_ms)

    async def leave(self) -> None:
        await self._redis.delete(instance_key(self.instance))

    async def alive(self, instances: list[str]) -> set[str]:
        if not instances:
            return set()
        found = await self._redis.exists(*(instance_key(i) for i in instances))  # counts only
        if found == len(instances):
            return set(instances)
        flags = [await self._redis.exists(instance_key(i)) for i in instances]
        return {i for i, flag in zip(instances, flags, strict=True) if flag}


async def publish_awareness(redis: Redis, channel: str, instance: str, payload: bytes) -> None:
    # The instance id prefixes the payload so a subscriber skips its own messages and knows
    # whose clients the states belong to (dropped when that instance's liveness expires).
    await redis.publish(channel, instance.encode() + b"\n" + payload)


def split_awareness(message: bytes) -> tuple[str, bytes]:
    instance, sep, payload = message.partition(b"\n")
    if not sep:
        raise ValueError("awareness message without an instance id")
    return instance.decode(), payload
