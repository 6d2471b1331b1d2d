"""What "Redis is away" looks like to a caller of redis-py (every scale-out path retries it)."""

from __future__ import annotations

from redis.exceptions import RedisError

# redis-py raises RedisError (ConnectionError, TimeoutError ...) and lets some OSErrors
# through. Under uvloop a command racing a reconnect can also meet the old, closed transport:
# RuntimeError("unable to perform operation on <TCPTransport closed=True ...>; the handler is
# closed"). Seen in CI: not caught, it ended a room's publish sender for good (supervised,
# logged and counted, but the room published nothing more). All three mean: try again later.
REDIS_UNAVAILABLE: tuple[type[Exception], ...] = (RedisError, OSError, RuntimeError)
