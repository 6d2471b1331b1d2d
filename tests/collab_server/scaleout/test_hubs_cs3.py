"""Two hubs over Redis on a real revad: one CS3 lock, one writer, a dead writer's successor
keeps the same lock and writes what the room got meanwhile (§10)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from devkit.hubproc import HubProcess
from devkit.redisproc import RedisProcess
from devkit.revad.launcher import RevadHandle
from devkit.yclient import YClient
from storage_bridge.cs3 import CS3Storage
from storage_bridge.errors import StorageError
from tests.revad.sharing import Shared, Tokens

pytestmark = [pytest.mark.revad, pytest.mark.timeout(180)]


def _hub(
    hubs: Callable[..., HubProcess], tmp: Path, revad: RevadHandle, redis: RedisProcess, name: str
) -> HubProcess:
    (tmp / "root").mkdir(exist_ok=True)
    return hubs(
        root=tmp / "root",
        data_dir=tmp / "data",
        args=["--storage", "cs3", "--gateway", revad.gateway, "--fanout", "redis",
              "--redis-url", redis.url, "--instance-name", name],
        env={"CS3COLLAB_WRITER_LEASE_TTL": "1.5", "CS3COLLAB_SNAPSHOT_RETRY_MAX": "1"},
    )  # fmt: skip


def _sources(data: bytes) -> list[str]:
    cells = json.loads(data)["cells"]
    return ["".join(c["source"]) if isinstance(c["source"], list) else c["source"] for c in cells]


async def _until_stored(storage: CS3Storage, token: str, path: str, word: str) -> None:
    async with asyncio.timeout(30):
        while True:
            try:
                data, _ = await storage.read(token, path)
            except StorageError:  # revad answers a download racing an upload with HTTP 500
                await asyncio.sleep(0.2)
                continue
            if json.loads(data)["cells"] and word in " ".join(_sources(data)):
                return
            await asyncio.sleep(0.2)


async def test_one_lock_one_writer_and_a_fail_over_that_keeps_the_lock(
    tmp_path: Path,
    hubs: Callable[..., HubProcess],
    revad: RevadHandle,
    redis_server: RedisProcess,
    cs3_storage: CS3Storage,
    cs3_tokens: Tokens,
    cs3_shared: Shared,
) -> None:
    t = cs3_tokens
    a = _hub(hubs, tmp_path, revad, redis_server, "a")
    b = _hub(hubs, tmp_path, revad, redis_server, "b")
    owner = a.session(cs3_shared.owner.path, token=t.einstein).json()
    sharee = b.session(cs3_shared.marie_path, token=t.marie).json()
    assert (owner["fileId"], owner["sessionId"]) == (sharee["fileId"], sharee["sessionId"])
    einstein = await YClient(a.room_url(owner, token=t.einstein)).connect()
    marie = await YClient(b.room_url(sharee, token=t.marie)).connect()
    einstein.append_source(0, "from-einstein ")
    marie.append_source(0, "from-marie ")
    await _until_stored(cs3_storage, t.einstein, cs3_shared.owner.path, "from-marie")
    lock = await cs3_storage.get_lock(t.einstein, cs3_shared.owner.id)
    assert lock is not None and lock.app_name == "cs3collab"
    # Only the writer took it: the other instance never saw the room as foreign-locked.
    for c in (einstein, marie):
        assert not [m for m in c.raw if m.get("type") == "lock" and m.get("state") == "foreign"]
    a.kill9()  # the writer (einstein's instance took the room first) dies
    marie.append_source(0, "after-fail-over ")
    await _until_stored(cs3_storage, t.marie, cs3_shared.marie_path, "after-fail-over")
    again = await cs3_storage.get_lock(t.einstein, cs3_shared.owner.id)
    assert again is not None and again.lock_id == lock.lock_id  # adopted, not a second lock
    await einstein.close()
    await marie.close()
