"""The room's CS3 lock against a real revad (decomposedfs enforces write locks)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from devkit.hubproc import HubProcess
from devkit.revad.launcher import RevadHandle
from devkit.yclient import YClient
from storage_bridge.cs3 import CS3Storage
from storage_bridge.errors import Locked
from tests.revad.sharing import Shared, Tokens

pytestmark = pytest.mark.revad

FAST = {
    "CS3COLLAB_WATCH_INTERVAL": "0.3",
    "CS3COLLAB_LOCK_EXPIRY": "4",
    "CS3COLLAB_LOCK_REFRESH": "1.5",
    "CS3COLLAB_UNLOAD_GRACE": "0.5",
}


@pytest.fixture
def hub(hubs: Callable[..., HubProcess], tmp_path: Path, revad: RevadHandle) -> HubProcess:
    return hubs(
        root=tmp_path / "root",
        data_dir=tmp_path / "data",
        args=["--storage", "cs3", "--gateway", revad.gateway],
        env=FAST,
    )


def _open(hub: HubProcess, path: str, token: str) -> dict[str, str]:
    r = hub.session(path, token=token)
    assert r.status_code in (200, 201), r.text
    return dict(r.json())


async def test_cs3_lock_while_open_refused_writers_release_on_unload(
    hub: HubProcess, cs3_storage: CS3Storage, cs3_tokens: Tokens, cs3_shared: Shared
) -> None:
    t, owner = cs3_tokens, cs3_shared.owner
    info = _open(hub, cs3_shared.marie_path, t.marie)
    marie = await YClient(hub.room_url(info, token=t.marie)).connect()
    lock = await cs3_storage.get_lock(t.einstein, owner.id)
    assert lock is not None and lock.app_name == "cs3collab"
    # a plain CS3 upload without the lock id is refused by reva, for the owner too
    with pytest.raises(Locked):
        await cs3_storage.write(t.einstein, owner.path, b"overwrite")
    # refreshed across more than two expiry periods (4 s)
    first_expiry = lock.expiration
    deadline = time.monotonic() + 9
    while time.monotonic() < deadline:
        current = await cs3_storage.get_lock(t.einstein, owner.id)
        assert current is not None and current.lock_id == lock.lock_id
        await asyncio.sleep(0.5)
    assert current.expiration > first_expiry + 4
    marie.append_source(0, "saved under the lock")
    # the hub has it once it reports a save (the room was fresh: no hash before)
    await marie.wait_for(lambda: bool(marie.view.ystate.get("hash")))
    await marie.close()
    # unload: final snapshot with the lock, then the lock is released
    deadline = time.monotonic() + 20
    while "cs3collab_rooms 0.0" not in httpx.get(f"{hub.http_url}/metrics").text:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.2)
    assert await cs3_storage.get_lock(t.einstein, owner.id) is None
    data, _ = await cs3_storage.read(t.einstein, owner.path)
    assert b"saved under the lock" in data


async def test_cs3_foreign_lock_opens_read_only(
    hub: HubProcess, cs3_storage: CS3Storage, cs3_tokens: Tokens, cs3_shared: Shared
) -> None:
    t, owner = cs3_tokens, cs3_shared.owner
    await cs3_storage.set_lock(
        t.einstein, owner.id, lock_id="wopi-lock", app_name="wopi", expires_in=60
    )
    info = _open(hub, owner.path, t.einstein)
    client = await YClient(hub.room_url(info, token=t.einstein)).connect()
    message = await client.wait_raw(lambda m: m.get("type") == "lock")
    assert message["state"] == "foreign" and "wopi" in message["holder"]
    client.append_source(0, "nope")
    assert (await client.wait_raw(lambda m: m.get("type") == "refused"))["reason"] == "locked"
    await cs3_storage.unlock(t.einstein, owner.id, lock_id="wopi-lock", app_name="wopi")
    await client.wait_raw(lambda m: m.get("type") == "lock" and m.get("state") == "held")
    lock = await cs3_storage.get_lock(t.einstein, owner.id)
    assert lock is not None and lock.app_name == "cs3collab"
    await client.close()


async def test_conflict_copy_lands_in_storage_when_a_sharee_is_first(
    hub: HubProcess, cs3_storage: CS3Storage, cs3_tokens: Tokens, cs3_shared: Shared
) -> None:
    """marie may edit einstein's file but not create files in his folder: the copy is made
    with einstein's token, never kept on the hub's disk, and each editor is told where it is
    as they see it (issue 11)."""
    t, owner = cs3_tokens, cs3_shared.owner
    marie_info = _open(hub, cs3_shared.marie_path, t.marie)
    marie = await YClient(hub.room_url(marie_info, token=t.marie)).connect()  # first editor
    einstein_info = _open(hub, owner.path, t.einstein)
    einstein = await YClient(hub.room_url(einstein_info, token=t.einstein)).connect()
    marie.append_source(0, "shared line")
    await marie.wait_for(lambda: bool(marie.view.ystate.get("hash")))
    await einstein.wait_for(lambda: einstein.sources() == ["shared line"])
    stored, etag = await cs3_storage.read(t.einstein, owner.path)
    theirs = json.loads(stored)
    theirs["cells"][0]["source"] = "shared line, theirs"
    einstein.append_source(0, ", ours")  # the same line, changed on both sides
    await marie.wait_for(lambda: marie.sources() == ["shared line, ours"])
    r = httpx.put(
        f"{hub.http_url}/api/collaboration/document/{cs3_shared.marie_path}",
        content=json.dumps(theirs).encode(),
        headers={"x-access-token": t.marie, "If-Match": etag},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "conflict"
    seen = await einstein.wait_raw(lambda m: m.get("type") == "conflict_copy")
    assert seen["path"].startswith(owner.path.rsplit("/", 1)[0] + "/")
    assert ".conflict" in seen["path"]
    copy, _ = await cs3_storage.read(t.einstein, seen["path"])
    assert b"theirs" in copy
    told = await marie.wait_raw(lambda m: m.get("type") == "conflict_copy")
    assert told["path"] is None or ".conflict" in told["path"]
    assert not (hub.data_dir / "conflicts").exists()
    assert str(hub.data_dir) not in json.dumps(einstein.raw + marie.raw)
    assert einstein.sources() == ["shared line, ours"]  # the live doc keeps ours
    for c in (marie, einstein):
        await c.close()
