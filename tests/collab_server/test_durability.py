"""Crash safety and lineage: kill -9 loses nothing; a lost log changes the lineage."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Callable
from pathlib import Path

from devkit.hubproc import HubProcess, notebook, write_notebook
from devkit.yclient import YClient


def _src(cell: dict) -> str:
    s = cell["source"]
    return "".join(s) if isinstance(s, list) else str(s)


def _ids(client: YClient) -> list[str]:
    return [c["id"] for c in client.notebook()["cells"]]


async def test_kill9_loses_nothing_and_duplicates_nothing(
    tmp_path: Path, hubs: Callable[..., HubProcess]
) -> None:
    root = tmp_path / "root"
    data = tmp_path / "data"
    # a snapshot debounce far beyond the test: only the update log can save the edits
    env = {"CS3COLLAB_SNAPSHOT_DEBOUNCE": "600", "CS3COLLAB_SNAPSHOT_MAX_DEBOUNCE": "600"}
    hub = hubs(root=root, data_dir=data, env=env)
    write_notebook(root / "nb.ipynb", notebook("first", "second"))
    info = hub.open("nb.ipynb")
    writer = await YClient(hub.room_url(info)).connect()
    observer = await YClient(hub.room_url(info)).connect()
    for i in range(50):
        writer.append_source(i % 2, f"{i},")
    writer.view.ycells.append(
        writer.view.create_ycell(  # type: ignore[union-attr]
            {"cell_type": "markdown", "source": "new cell", "metadata": {}, "id": "new-cell"}
        )
    )
    # everything the observer has received must survive the crash
    await observer.wait_for(lambda: len(_ids(observer)) == 3 and "49," in observer.sources()[1])
    seen = observer.notebook()
    assert _src(json.loads((root / "nb.ipynb").read_text())["cells"][0]) == "first"
    hub.kill9()
    await writer.close()
    await observer.close()

    hub2 = hubs(root=root, data_dir=data, port=hub.port, env=env)
    try:
        # same lineage is offered again
        assert hub2.open("nb.ipynb")["sessionId"] == info["sessionId"]
        fresh = await YClient(hub2.room_url(info)).connect()
        assert fresh.notebook()["cells"] == seen["cells"]
        # the stale clients reconnect with their full history: no duplicates
        for old in (writer, observer):
            again = YClient(hub2.room_url(info))
            again.doc.apply_update(old.doc.get_update())
            await again.connect()
            await fresh.wait_for(lambda: True, 0.1)  # let its SyncStep2 land
            await again.close()
        await fresh.wait_for(lambda: len(_ids(fresh)) == 3)
        probe = await YClient(hub2.room_url(info)).connect()
        assert _ids(probe) == ["cell-0", "cell-1", "new-cell"]
        assert probe.notebook()["cells"] == seen["cells"]
        # the restarted hub adopts the lock its predecessor left: the room is writable at once
        probe.append_source(2, "!")
        assert (await probe.save(1))["status"] == "success"
        assert _src(json.loads((root / "nb.ipynb").read_text())["cells"][2]) == "new cell!"
        await probe.close()
        await fresh.close()
    finally:
        hub2.stop()


async def test_lost_log_changes_lineage_and_closes_1003(
    tmp_path: Path, hubs: Callable[..., HubProcess]
) -> None:
    root = tmp_path / "root"
    data = tmp_path / "data"
    hub = hubs(root=root, data_dir=data)
    write_notebook(root / "nb.ipynb", notebook("one"))
    info = hub.open("nb.ipynb")
    client = await YClient(hub.room_url(info)).connect()
    client.append_source(0, "!")
    await client.wait_for(lambda: "one!" in (root / "nb.ipynb").read_text())
    await client.close()
    hub.kill9()
    shutil.rmtree(data)

    hub2 = hubs(root=root, data_dir=data, port=hub.port)
    try:
        info2 = hub2.open("nb.ipynb")
        assert info2["sessionId"] != info["sessionId"]
        stale = YClient(hub2.room_url(info))  # old sessionId
        stale.doc.apply_update(client.doc.get_update())
        await stale.connect(wait_synced=False)
        assert await stale.wait_closed() == 1003
        reason = json.loads(stale.close_reason)
        assert reason["reason"] == "unknown_session"
        assert reason["reloadable"] is True
        # a reloaded client sees the file content once, nothing merged from the old history
        fresh = await YClient(hub2.room_url(info2)).connect()
        assert fresh.sources() == ["one!"]
        await fresh.close()
    finally:
        hub2.stop()


async def test_room_unloads_after_grace_with_final_snapshot(
    tmp_path: Path, hubs: Callable[..., HubProcess]
) -> None:
    root = tmp_path / "root"
    env = {
        "CS3COLLAB_UNLOAD_GRACE": "0.5",
        "CS3COLLAB_SNAPSHOT_DEBOUNCE": "600",
        "CS3COLLAB_SNAPSHOT_MAX_DEBOUNCE": "600",
    }
    hub = hubs(root=root, data_dir=tmp_path / "data", env=env)
    try:
        write_notebook(root / "nb.ipynb", notebook("u"))
        info = hub.open("nb.ipynb")
        client = await YClient(hub.room_url(info)).connect()
        client.append_source(0, "nload")
        await client.wait_for(lambda: client.view.ystate.get("dirty") is True)
        await client.close()
        import httpx

        def unloaded() -> bool:
            return "cs3collab_rooms 0.0" in httpx.get(f"{hub.http_url}/metrics").text

        probe = YClient("ws://unused")
        await probe.wait_for(unloaded, 15)
        # the final snapshot was written on unload
        assert _src(json.loads((root / "nb.ipynb").read_text())["cells"][0]) == "unload"
        # and the room reloads from its log with the same lineage
        again = await YClient(hub.room_url(info)).connect()
        assert again.sources() == ["unload"]
        await again.close()
    finally:
        hub.stop()


async def test_kill9_during_a_storm_of_20_clients(
    tmp_path: Path, hubs: Callable[..., HubProcess]
) -> None:
    """20 clients type, add cells and save while the hub is killed -9 (issue 11): after the
    restart every edit any client had received is there, once, and the stale clients
    reconnect without duplicating a cell."""
    root, data = tmp_path / "root", tmp_path / "data"
    hub = hubs(root=root, data_dir=data, env={"CS3COLLAB_SNAPSHOT_DEBOUNCE": "0.05"})
    write_notebook(root / "nb.ipynb", notebook("a", "b", "c"))
    info = hub.open("nb.ipynb")
    clients = [await YClient(hub.room_url(info)).connect() for _ in range(20)]
    typed = 0

    async def storm(rounds: int) -> None:
        nonlocal typed
        for _ in range(rounds):
            for n, client in enumerate(clients):
                if client.closed.is_set():
                    continue
                if typed % 17 == 0:
                    client.view.ycells.append(
                        client.view.create_ycell(  # type: ignore[union-attr]
                            {"cell_type": "code", "source": f"w{typed}", "metadata": {},
                             "id": f"c{typed}"}
                        )
                    )  # fmt: skip
                else:
                    client.append_source(n % 3, f" w{typed}")
                typed += 1
            await asyncio.sleep(0.005)  # paced like typing: 20 clients x 200 keys/s

    await storm(20)
    hub.kill9()  # in the middle of it: the storm goes on against a dead hub
    await storm(5)
    received = [set(" ".join(c.sources()).split()) for c in clients]
    # what some client saw from another was broadcast, hence logged
    acknowledged = {w for seen in received for w in seen if sum(w in r for r in received) > 1}
    assert len(acknowledged) > 100
    for c in clients:
        await c.close()

    hub2 = hubs(root=root, data_dir=data, port=hub.port)
    fresh = await YClient(hub2.room_url(info)).connect()
    words = " ".join(fresh.sources()).split()
    assert acknowledged <= set(words), sorted(acknowledged - set(words))[:10]
    assert len(words) == len(set(words)), "an edit came back twice"
    assert len(_ids(fresh)) == len(set(_ids(fresh)))
    for old in clients:  # reconnect with the full local history, as JupyterLab does
        again = YClient(hub2.room_url(info))
        again.doc.apply_update(old.doc.get_update())
        await again.connect()
        await again.close()
    final = await YClient(hub2.room_url(info)).connect()
    ids = _ids(final)
    assert len(ids) == len(set(ids)), "duplicated cells"
    words = " ".join(final.sources()).split()
    assert len(words) == len(set(words)), "duplicated edits"
    await fresh.close()
    await final.close()
