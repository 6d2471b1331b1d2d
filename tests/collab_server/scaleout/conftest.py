from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from redis.asyncio import Redis

from devkit.redisproc import RedisProcess


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisProcess]:
    """A real redis-server of our own for one test (tests kill and restart it)."""
    server = RedisProcess(data_dir=tmp_path / "redis").start()
    try:
        yield server
    finally:
        server.stop()


@pytest_asyncio.fixture
async def redis(redis_server: RedisProcess) -> AsyncIterator[Redis]:
    # socket_timeout above the reader's BLOCK (redis-py raises for a longer BLOCK);
    # no retries: a test sees every failure (retries can also replay an XADD).
    client = Redis.from_url(redis_server.url, socket_timeout=2.0, socket_connect_timeout=1.0)
    try:
        yield client
    finally:
        await client.aclose()
