"""Several real hubs (uvicorn subprocesses) share rooms over a real redis-server (§10)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from devkit.hubproc import HubProcess, notebook, write_notebook
from devkit.polling import poll_until
from devkit.redisproc import RedisProcess
from devkit.yclient import YClient
from storage_bridge.local import LocalStorage

pytestmark = pytest.mark.timeout(180)


def cluster(
    hubs: Callable[..., HubProcess], root: Path, data: Path, redis: RedisProcess, n: int = 2
) -> list[HubProcess]:
    return [
        hubs(
            root=root,
            data_dir=data,
            args=["--fanout", "redis", "--redis-url", redis.url, "--instance-name", f"hub{i}"],
            env={"CS3COLLAB_WRITER_LEASE_TTL": "1.5", "CS3COLLAB_SNAPSHOT_DEBOUNCE": "0.2"},
        )
        for i in range(n)
    ]


def metric(hub: HubProcess, name: str) -> float:
    text = httpx.get(f"{hub.http_url}/metrics", timeout=5).text
    found = re.search(rf"^{name}(?:_total)? ([0-9.e+]+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def stored(root: Path) -> dict[str, Any]:
    return dict(json.loads((root / "nb.ipynb").read_text()))


def text(cell: dict[str, Any]) -> str:
    source = cell["source"]
    return "".join(source) if isinstance(source, list) else str(source)


def cell_ids(client: YClient) -> list[str]:
    return [str(c.get("id")) for c in client.notebook()["cells"]]


async def test_clients_on_two_instances_coedit_with_cursors_in_one_lineage(
    tmp_path: Path, hubs: Callable[..., HubProcess], redis_server: RedisProcess
) -> None:
    root, data = tmp_path / "root", tmp_path / "data"
    write_notebook(root / "nb.ipynb", notebook("a", "b"))
    a, b = cluster(hubs, root, data, redis_server)
    info_a = a.open("nb.ipynb")
    ca = await YClient(a.room_url(info_a)).connect()
    info_b = b.open("nb.ipynb")
    assert info_b["sessionId"] == info_a["sessionId"]  # one lineage on every instance
    assert info_b["fileId"] == info_a["fileId"]
    cb = await YClient(b.room_url(info_b)).connect()
    assert cb.sources() == ["a", "b"]  # not a second build of the file: no duplicated cells
    assert cell_ids(cb) == cell_ids(ca)
    ca.append_source(0, " from-a")
    cb.append_source(1, " from-b")
    await ca.wait_for(lambda: ca.sources() == ["a from-a", "b from-b"])
    await cb.wait_for(lambda: cb.sources() == ["a from-a", "b from-b"])
    await ca.set_awareness({"user": {"name": "einstein"}, "cursor": 7})
    await cb.wait_for(
        lambda: any(
            s.get("cursor") == 7 for s in cb.awareness.states.values() if isinstance(s, dict)
        ),
        10,
    )
    # exactly one instance writes storage, and the file gets both edits
    await ca.wait_for(lambda: text(stored(root)["cells"][1]) == "b from-b", 15)
    writes = [metric(h, "cs3collab_snapshots") for h in (a, b)]
    assert min(writes) == 0 and max(writes) >= 1, writes
    await ca.close()
    await cb.close()


async def test_kill9_of_an_instance_in_a_storm_loses_and_duplicates_nothing(
    tmp_path: Path, hubs: Callable[..., HubProcess], redis_server: RedisProcess
) -> None:
    root, data = tmp_path / "root", tmp_path / "data"
    write_notebook(root / "nb.ipynb", notebook("a", "b", "c"))
    a, b = cluster(hubs, root, data, redis_server)
    info = a.open("nb.ipynb")
    on_a = [await YClient(a.room_url(info)).connect() for _ in range(10)]
    on_b = [await YClient(b.room_url(info)).connect() for _ in range(10)]
    clients = on_a + on_b
    typed = 0

    async def storm(rounds: int) -> None:
        nonlocal typed
        for _ in range(rounds):
            for n, client in enumerate(clients):
                if not client.closed.is_set():
                    client.append_source(n % 3, f" w{typed}")
                typed += 1
            await asyncio.sleep(0.01)

    await storm(15)
    a.kill9()  # the instance dies mid-storm; b and Redis live on
    await storm(5)
    await asyncio.sleep(1.0)
    received = [set(" ".join(c.sources()).split()) for c in clients]
    acknowledged = {w for seen in received for w in seen if sum(w in r for r in received) > 1}
    assert len(acknowledged) > 100
    for old in on_a:  # a's clients reconnect to b with their whole local history
        again = YClient(b.room_url(info))
        again.doc.apply_update(old.doc.get_update())
        await again.connect()
        await again.close()
    final = await YClient(b.room_url(info)).connect()
    words = " ".join(final.sources()).split()
    assert acknowledged <= set(words), sorted(acknowledged - set(words))[:10]
    assert len(words) == len(set(words)), "an edit came back twice"
    assert len(cell_ids(final)) == 3
    # b took the writer lease over and the file gets everything
    await final.wait_for(
        lambda: set(" ".join(text(c) for c in stored(root)["cells"]).split()) >= set(words), 20
    )
    for c in [*clients, final]:
        await c.close()


async def _readyz_becomes(hub: HubProcess, status: str, seconds: float = 10.0) -> bool:
    """/readyz answers ``status`` within ``seconds`` (the hub pushes no event for it; polled
    off the loop, so the test's clients keep running)."""

    def answers() -> bool:
        return httpx.get(f"{hub.http_url}/readyz", timeout=5).json()["status"] == status

    return await asyncio.to_thread(poll_until, answers, timeout=seconds, interval=0.1)


@pytest.mark.parametrize(
    "keep_data", [True, False], ids=["redis-restarted", "redis-restarted-empty"]
)
async def test_editing_goes_on_through_a_redis_restart_and_instances_converge(
    tmp_path: Path, hubs: Callable[..., HubProcess], redis_server: RedisProcess, keep_data: bool
) -> None:
    root, data = tmp_path / "root", tmp_path / "data"
    write_notebook(root / "nb.ipynb", notebook("x"))
    a, b = cluster(hubs, root, data, redis_server)
    info = a.open("nb.ipynb")
    ca = await YClient(a.room_url(info)).connect()
    ca2 = await YClient(a.room_url(info)).connect()
    cb = await YClient(b.room_url(info)).connect()
    redis_server.kill9()
    ca.append_source(0, " a-alone")
    await ca2.wait_for(lambda: "a-alone" in ca2.sources()[0])  # same instance: goes on
    cb.append_source(0, " b-alone")
    # within a few reader rounds (the reader notices on its next read; slower on a busy CI)
    assert await _readyz_becomes(a, "degraded")
    if not keep_data:
        redis_server.wipe()
    redis_server.start()

    def has_both(client: YClient) -> Callable[[], bool]:
        return lambda: {"a-alone", "b-alone"} <= set(client.sources()[0].split())

    for c in (ca, cb):
        await c.wait_for(has_both(c), 40)
    assert await _readyz_becomes(a, "ready")
    assert ca.sources() == cb.sources()
    for c in (ca, ca2, cb):
        await c.close()


async def test_a_foreign_lock_seen_by_the_writer_makes_every_instance_read_only(
    tmp_path: Path, hubs: Callable[..., HubProcess], redis_server: RedisProcess
) -> None:
    root, data = tmp_path / "root", tmp_path / "data"
    write_notebook(root / "nb.ipynb", notebook("a"))
    a, b = cluster(hubs, root, data, redis_server)
    local = LocalStorage(root, data)  # another application, on the same folder and index
    try:
        await local.set_lock("", "nb.ipynb", lock_id="wopi-1", app_name="wopi", expires_in=60)
        info = a.open("nb.ipynb")
        ca = await YClient(a.room_url(info)).connect()  # a loads the room first: a writes
        cb = await YClient(b.room_url(info)).connect()
        for c in (ca, cb):
            locked = await c.wait_raw(lambda m: m.get("type") == "lock" and m["state"] == "foreign")
            assert "wopi" in locked["holder"]
        cb.append_source(0, "!")
        refused = await cb.wait_raw(lambda m: m.get("type") == "refused")
        assert refused["reason"] == "locked"
        assert ca.sources() == ["a"]  # not taken in while the other application holds the lock
        await local.unlock("", "nb.ipynb", lock_id="wopi-1", app_name="wopi")
        await cb.wait_raw(lambda m: m.get("type") == "lock" and m.get("state") == "held")
        # what b's editor typed while locked comes in when the lock goes, on both instances
        await ca.wait_for(lambda: ca.sources() == ["a!"], 20)
        await ca.close()
        await cb.close()
    finally:
        await local.aclose()
