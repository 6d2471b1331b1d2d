"""One storage writer per room: a Redis lease with a fencing counter.

A lease alone cannot stop a writer that paused past its expiry (GC, a stopped VM) from
writing late (Kleppmann): the fence is checked by storage itself, through the snapshot's
``if_match`` etag and the CS3 lock id. The counter still tells logs and metrics which holder
wrote, and lets a holder see that it was replaced.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from collab_server.scaleout.keys import RoomKeys, as_bytes

# KEYS[1] = writer, ARGV[1] = our value, ARGV[2] = ttl ms: extend only a lease we still hold.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
# KEYS[1] = writer, ARGV[1] = our value: release only our own lease.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
# KEYS[1] = writer, KEYS[2] = fence, ARGV[1] = instance, ARGV[2] = ttl ms: take a free lease,
# atomically with its fence, so a failed SET never burns a fence number.
_ACQUIRE = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return false
end
local fence = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. fence, 'PX', ARGV[2])
return fence
"""


@dataclass(frozen=True, slots=True)
class Holder:
    instance: str
    fence: int


class WriterLease:
    def __init__(self, redis: Redis, keys: RoomKeys, instance: str, ttl_ms: int) -> None:
        self._redis = redis
        self._keys = keys
        self._instance = instance
        self._ttl_ms = ttl_ms
        self.fence: int | None = None  # ours while we hold it

    @property
    def _value(self) -> str:
        return f"{self._instance}:{self.fence}"

    async def acquire(self) -> bool:
        """Take the lease if nobody holds it; True if we hold it now."""
        if self.fence is not None and await self.renew():
            return True
        fence = await self._redis.eval(
            _ACQUIRE, 2, self._keys.writer, self._keys.fence, self._instance, self._ttl_ms
        )
        self.fence = None if fence is None else int(fence)
        return self.fence is not None

    async def renew(self) -> bool:
        """Extend our lease; False (and no longer ours) if it expired or someone else has it."""
        if self.fence is None:
            return False
        done = await self._redis.eval(_RENEW, 1, self._keys.writer, self._value, self._ttl_ms)
        if not done:
            self.fence = None
        return bool(done)

    async def release(self) -> None:
        if self.fence is None:
            return
        await self._redis.eval(_RELEASE, 1, self._keys.writer, self._value)
        self.fence = None

    async def holder(self) -> Holder | None:
        raw = await self._redis.get(self._keys.writer)
        if raw is None:
            return None
        instance, _, fence = as_bytes(raw).decode().rpartition(":")
        return Holder(instance, int(fence))
