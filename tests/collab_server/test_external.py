"""External writers on the local backend: lock keeper, merge, conflict copies (ARCHITECTURE §5)."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import nbformat
import pytest

from devkit.hubproc import HubProcess, notebook, write_notebook
from devkit.yclient import YClient
from storage_bridge.errors import Locked
from storage_bridge.local import LocalStorage
from tests.fakes import ManualClock
from tests.inproc import running

FAST = {
    "CS3COLLAB_WATCH_INTERVAL": "0.2",
    "CS3COLLAB_LOCK_EXPIRY": "3",
    "CS3COLLAB_LOCK_REFRESH": "1",
    "CS3COLLAB_UNLOAD_GRACE": "0.5",
}
CONFLICT_NAME = re.compile(
    r"^nb\.ipynb\.external\.\d{4}-\d\d-\d\d_\d\d_\d\d_\d\d\.conflict\.ipynb$"
)


@pytest.fixture
def fast_hub(hubs: Callable[..., HubProcess], tmp_path: Path) -> HubProcess:
    root = tmp_path / "root"
    root.mkdir()
    return hubs(root=root, data_dir=tmp_path / "data", env=FAST)


@pytest.fixture
async def local(fast_hub: HubProcess):
    """The same folder and lock table the hub uses, opened by a second process (this one)."""
    storage = LocalStorage(fast_hub.root, fast_hub.data_dir)
    yield storage
    await storage.aclose()


def _sources(nb: dict) -> list[str]:
    return ["".join(c["source"]) if isinstance(c["source"], list) else c["source"]
            for c in nb["cells"]]  # fmt: skip


def _disk(path: Path) -> dict:
    return json.loads(path.read_text())


def _copy_file(hub: HubProcess, storage_path: str) -> Path:
    """Where a conflict copy reported by the hub (a storage path) is on disk."""
    in_root = hub.root / storage_path.lstrip("/")
    return in_root if in_root.exists() else Path(storage_path)  # the hub's fallback dir


def _conflict_files(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if ".conflict" in p.name)


async def _poll(cond: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met before the deadline"
        await asyncio.sleep(0.05)


async def test_lock_held_while_open_refreshed_and_released(
    fast_hub: HubProcess, local: LocalStorage
) -> None:
    path = fast_hub.root / "nb.ipynb"
    write_notebook(path, notebook("a"))
    info = fast_hub.open("nb.ipynb")
    client = await YClient(fast_hub.room_url(info)).connect()
    lock = await local.get_lock("", "nb.ipynb")
    assert lock is not None and lock.app_name == "cs3collab"
    # a writer that respects locks (anything writing through storage) is refused
    with pytest.raises(Locked):
        await local.write("", "nb.ipynb", b"{}")
    # (refreshed across several expiry periods: test_lock_refreshed_across_expiry_periods)
    await client.close()
    # after the last client leaves and the grace period ends, the lock is released
    await _poll(lambda: "cs3collab_rooms 0.0" in httpx.get(f"{fast_hub.http_url}/metrics").text)
    assert await local.get_lock("", "nb.ipynb") is None


async def test_lock_refreshed_across_expiry_periods(tmp_path: Path) -> None:
    """The hub's lock keeper, watcher and storage's lock expiry on one clock the test moves:
    8 s of lock life without waiting them (the end-to-end test above waited them)."""
    clock = ManualClock()
    root = tmp_path / "root"
    settings = {"watch_interval": 0.2, "lock_expiry": 3.0, "lock_refresh": 1.0}
    async with running(root, tmp_path / "data", clock=clock, **settings) as hub:
        root.mkdir()
        write_notebook(root / "nb.ipynb", notebook("a"))
        client = await hub.connect(await hub.session("nb.ipynb"))
        await client.wait_synced()
        storage = hub.hub.storage
        lock = await storage.get_lock("", "nb.ipynb")
        assert lock is not None and lock.app_name == "cs3collab"
        # refreshed across several expiry periods (3 s): never absent, expiration moves on
        seen = {lock.expiration}
        deadline = clock.time() + 8
        while clock.time() < deadline:
            current = await storage.get_lock("", "nb.ipynb")
            assert current is not None and current.lock_id == lock.lock_id
            seen.add(current.expiration)
            await clock.advance(0.25)
        assert len(seen) >= 4
        client.leave()


async def test_many_open_rooms_poll_storage_within_the_watch_budget(tmp_path: Path) -> None:
    """4 open rooms, a budget of 2 stats/s: each room polls every 2 s, not every 0.5 s; an
    external write is merged on the next (later) poll; never slower than lock_refresh."""
    clock = ManualClock()
    root = tmp_path / "root"
    settings = {"watch_interval": 0.5, "watch_budget": 2.0, "lock_refresh": 3.0}
    async with running(root, tmp_path / "data", clock=clock, **settings) as hub:
        root.mkdir()
        clients = []
        for i in range(4):
            write_notebook(root / f"nb{i}.ipynb", notebook(f"a{i}"))
            clients.append(await hub.connect(await hub.session(f"nb{i}.ipynb")))
            await clients[-1].wait_synced()
        assert hub.hub.watch_interval() == 2.0
        await clock.advance(2.1)  # every room has begun a 2 s wait
        polls = 0
        real_stat = hub.hub.storage.stat

        async def counted(*args: object, **kwargs: object) -> object:
            nonlocal polls
            polls += 1
            return await real_stat(*args, **kwargs)  # type: ignore[arg-type]

        hub.hub.storage.stat = counted  # type: ignore[method-assign]
        await clock.advance(4.0, step=0.1)
        assert 6 <= polls <= 10  # 2 s apart for each of 4 rooms (not 32 at 0.5 s)
        nb = json.loads((root / "nb0.ipynb").read_text())
        nb["cells"].append({"cell_type": "markdown", "id": "ext", "metadata": {}, "source": "x"})
        (root / "nb0.ipynb").write_text(json.dumps(nb))
        await clock.advance(2.1, step=0.1)
        await clients[0].wait_for(lambda: clients[0].sources()[-1:] == ["x"])
        # a budget that would space the polls beyond lock_refresh stops at it, and short of
        # the lock's expiry: half of what is left of it after a refresh is due
        hub.hub.settings.watch_budget = 0.1
        assert hub.hub.watch_interval() == 3.0
        hub.hub.settings.lock_expiry = 5.0
        assert hub.hub.watch_interval() == 1.0
        for client in clients:
            client.leave()


async def test_lock_expires_after_kill9(fast_hub: HubProcess, local: LocalStorage) -> None:
    write_notebook(fast_hub.root / "nb.ipynb", notebook("a"))
    client = await YClient(fast_hub.room_url(fast_hub.open("nb.ipynb"))).connect()
    assert await local.get_lock("", "nb.ipynb") is not None
    fast_hub.kill9()
    await client.close()
    deadline = time.monotonic() + 15
    while await local.get_lock("", "nb.ipynb") is not None:
        assert time.monotonic() < deadline, "lock never expired"
        await asyncio.sleep(0.2)


async def test_foreign_lock_makes_room_read_only_until_released(
    fast_hub: HubProcess, local: LocalStorage
) -> None:
    path = fast_hub.root / "nb.ipynb"
    write_notebook(path, notebook("a"))
    await local.set_lock("", "nb.ipynb", lock_id="wopi-1", app_name="wopi", expires_in=60)
    info = fast_hub.open("nb.ipynb")
    client = await YClient(fast_hub.room_url(info)).connect()
    locked = await client.wait_raw(lambda m: m.get("type") == "lock")
    assert locked["state"] == "foreign" and "wopi" in locked["holder"]
    await client.wait_for(lambda: "wopi" in str(client.view.ystate.get("locked_by", "")))
    client.append_source(0, "!")
    refused = await client.wait_raw(lambda m: m.get("type") == "refused")
    assert refused["reason"] == "locked"
    # the other application lets go: the room takes the lock and becomes writable
    await local.unlock("", "nb.ipynb", lock_id="wopi-1", app_name="wopi")
    await client.wait_raw(lambda m: m.get("type") == "lock" and m.get("state") == "held")
    assert client.view.ystate.get("locked_by") == ""
    # what the editor typed while it was locked stayed on its screen and comes in now (issue
    # 11: a reconnecting editor's offline work must not be taken back by a temporary lock)
    fresh = await YClient(fast_hub.room_url(info)).connect()
    await fresh.wait_for(lambda: fresh.sources() == ["a!"])
    fresh.append_source(0, "b")
    await _poll(lambda: _sources(_disk(path)) == ["a!b"])
    await client.wait_for(lambda: client.sources() == ["a!b"])
    await client.close()
    await fresh.close()


async def test_external_edit_of_another_cell_is_merged_live(fast_hub: HubProcess) -> None:
    path = fast_hub.root / "nb.ipynb"
    write_notebook(path, notebook("cell A", "cell B"))
    client = await YClient(fast_hub.room_url(fast_hub.open("nb.ipynb"))).connect()
    client.append_source(1, " + live edit")
    await _poll(lambda: _sources(_disk(path))[1] == "cell B + live edit")
    # a writer that ignores locks rewrites the file, changing cell A
    nb = _disk(path)
    nb["cells"][0]["source"] = "cell A changed on disk"
    path.write_text(json.dumps(nb, indent=1))
    client.append_source(1, "!")
    want = ["cell A changed on disk", "cell B + live edit!"]
    await client.wait_for(lambda: client.sources() == want)
    await _poll(lambda: _sources(_disk(path)) == want)
    assert _conflict_files(fast_hub.root) == []
    await client.close()


async def test_overlapping_edits_give_exactly_one_conflict_copy(
    hubs: Callable[..., HubProcess], tmp_path: Path
) -> None:
    # a long debounce keeps the live edit unsaved while the disk changes the same line
    slow_save = {
        **FAST,
        "CS3COLLAB_SNAPSHOT_DEBOUNCE": "600",
        "CS3COLLAB_SNAPSHOT_MAX_DEBOUNCE": "600",
    }
    fast_hub = hubs(root=tmp_path / "root", data_dir=tmp_path / "data", env=slow_save)
    path = fast_hub.root / "nb.ipynb"
    write_notebook(path, notebook("x = 1", "y = 2"))
    client = await YClient(fast_hub.room_url(fast_hub.open("nb.ipynb"))).connect()
    client.append_source(0, "0  # live")
    await client.wait_for(lambda: client.view.ystate.get("dirty") is True)
    nb = _disk(path)
    nb["cells"][0]["source"] = "x = 42  # disk"
    nb["cells"][1]["source"] = "y = 3"
    path.write_text(json.dumps(nb, indent=1))
    message = await client.wait_raw(lambda m: m.get("type") == "conflict_copy")
    copies = _conflict_files(fast_hub.root)
    assert len(copies) == 1 and CONFLICT_NAME.match(copies[0].name), copies
    assert message["path"].endswith(copies[0].name)
    assert _sources(_disk(copies[0]))[0] == "x = 42  # disk"  # theirs kept whole
    # the live doc keeps ours for the conflicting cell and takes theirs where it could
    await client.wait_for(lambda: client.sources() == ["x = 10  # live", "y = 3"])
    assert (await client.save(3))["status"] == "success"
    assert _sources(_disk(path)) == ["x = 10  # live", "y = 3"]
    assert len(_conflict_files(fast_hub.root)) == 1
    await client.close()


async def test_invalid_json_on_disk_goes_to_a_conflict_copy(fast_hub: HubProcess) -> None:
    path = fast_hub.root / "nb.ipynb"
    write_notebook(path, notebook("keep me"))
    client = await YClient(fast_hub.room_url(fast_hub.open("nb.ipynb"))).connect()
    path.write_text('{"cells": [ this is not json')
    await client.wait_raw(lambda m: m.get("type") == "conflict_copy")
    copies = _conflict_files(fast_hub.root)
    assert len(copies) == 1 and copies[0].read_text() == '{"cells": [ this is not json'
    assert client.sources() == ["keep me"]
    # and the file is a valid notebook again, with the live content
    await _poll(lambda: path.read_text().startswith("{\n"))
    nbformat.validate(nbformat.reads(path.read_text(), as_version=4))
    assert _sources(_disk(path)) == ["keep me"]
    await client.close()


def test_out_of_band_write_through_the_hub_merges(fast_hub: HubProcess) -> None:
    path = fast_hub.root / "nb.ipynb"
    write_notebook(path, notebook("first", "second"))
    info = fast_hub.open("nb.ipynb")

    async def scenario() -> None:
        client = await YClient(fast_hub.room_url(info)).connect()
        client.append_source(1, " (live)")
        await client.wait_for(lambda: client.sources()[1] == "second (live)")
        new = notebook("first (script)", "second")
        r = await asyncio.to_thread(
            httpx.put,
            f"{fast_hub.http_url}/api/collaboration/document/nb.ipynb",
            content=json.dumps(new).encode(),
            headers={"Authorization": f"Bearer {fast_hub.token}"},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "merged" and r.json()["conflictCopy"] is None
        want = ["first (script)", "second (live)"]
        await client.wait_for(lambda: client.sources() == want)
        assert _sources(_disk(path)) == want  # written before the response
        await client.close()

    asyncio.run(scenario())
    bad = httpx.put(f"{fast_hub.http_url}/api/collaboration/document/nb.ipynb", content=b"{}")
    assert bad.status_code == 401


async def test_randomized_interleavings_lose_nothing(
    hubs: Callable[..., HubProcess], tmp_path: Path
) -> None:
    """200 interleavings of live edits and external writes (through the hub and on disk).

    Both sides only add (lines, cells) so every change has a token that must survive: client
    tokens in the live doc (no silent overwrite), external tokens in the live doc or in a
    conflict copy. Cell ids never repeat.
    """
    import hashlib
    import random

    rng = random.Random(20261125)
    hub = hubs(root=tmp_path / "root", data_dir=tmp_path / "data", env=FAST)
    path = hub.root / "nb.ipynb"
    write_notebook(path, notebook(*[f"cell {i}" for i in range(4)]))
    client = await YClient(hub.room_url(hub.open("nb.ipynb"))).connect()
    client_tokens: list[str] = []
    external_tokens: list[str] = []
    copies: set[str] = set()
    headers = {"Authorization": f"Bearer {hub.token}"}
    async with httpx.AsyncClient(timeout=30) as http:
        for step in range(200):
            # a live edit: a new line at the end of a random cell
            cell = rng.randrange(len(client.view.ycells))  # type: ignore[union-attr]
            client_tokens.append(f"live{step}")
            client.append_source(cell, f"\nlive{step}")
            # an external writer's version, derived from what is in storage now
            current = path.read_bytes()
            nb = json.loads(current)
            token = f"ext{step}"
            external_tokens.append(token)
            if rng.random() < 0.5:
                target = nb["cells"][rng.randrange(len(nb["cells"]))]
                target["source"] = "".join(target["source"]) + f"\n{token}"
            else:
                nb["cells"].insert(
                    rng.randrange(len(nb["cells"]) + 1),
                    {"cell_type": "markdown", "id": f"ext-cell-{step}", "metadata": {},
                     "source": token},
                )  # fmt: skip
            new = json.dumps(nb, indent=1).encode()
            if step % 10 == 9:
                # a writer that ignores the hub and writes the file; wait for the merge
                path.write_bytes(new)
                await client.wait_for(
                    lambda token=token: token in "\n".join(client.sources())
                    or any(m.get("type") == "conflict_copy" and m["path"] not in copies
                           for m in client.raw),
                )  # fmt: skip
            else:
                r = await http.put(
                    f"{hub.http_url}/api/collaboration/document/nb.ipynb",
                    content=new,
                    headers={**headers, "If-Match": hashlib.sha256(current).hexdigest()},
                )
                assert r.status_code == 200, r.text
                if r.json()["conflictCopy"]:
                    copies.add(r.json()["conflictCopy"])
            copies.update(m["path"] for m in client.raw if m.get("type") == "conflict_copy")
    assert (await client.save(99))["status"] == "success"
    live = client.notebook()
    text = "\n".join(_sources(live))
    ids = [c["id"] for c in live["cells"]]
    assert len(ids) == len(set(ids)), "duplicated cell ids"
    assert [t for t in client_tokens if t not in text.split()] == [], "silent overwrite"
    copy_text = "\n".join(_copy_file(hub, p).read_text() for p in copies)
    lost = [t for t in external_tokens if t not in text.split() and t not in copy_text]
    assert lost == [], f"external changes neither merged nor in a conflict copy: {lost}"
    # storage ends up with exactly the live document
    assert _sources(_disk(path)) == _sources(live)
    print(f"\n{len(copies)} conflict copies for 200 interleavings")
    await client.close()


async def test_work_on_a_copy_while_locked_then_merge_back(
    fast_hub: HubProcess, local: LocalStorage
) -> None:
    path = fast_hub.root / "nb.ipynb"
    write_notebook(path, notebook("shared = 1", "other = 2"))
    await local.set_lock("", "nb.ipynb", lock_id="wopi-2", app_name="wopi", expires_in=60)
    info = fast_hub.open("nb.ipynb")
    original = await YClient(fast_hub.room_url(info)).connect()
    await original.wait_raw(lambda m: m.get("type") == "lock" and m["state"] == "foreign")
    # "work on a copy": the hub writes the copy beside the original and opens it as a room
    reply = await original.command({"type": "work_on_copy"})
    assert reply["status"] == "success", reply
    copy_path = fast_hub.root / reply["path"].lstrip("/")
    assert re.match(r"^nb\.ipynb\..+\.\d{4}-\d\d-\d\d_\d\d_\d\d_\d\d\.conflict\.ipynb$",
                    copy_path.name), copy_path.name  # fmt: skip
    copy_info = {"format": "json", "type": "notebook", "fileId": reply["fileId"],
                 "sessionId": reply["sessionId"]}  # fmt: skip
    work = await YClient(fast_hub.room_url(copy_info)).connect()
    assert work.sources() == ["shared = 1", "other = 2"]
    work.append_source(1, "  # edited on the copy")
    # nothing can go back while the original is locked
    refused = await work.command({"type": "merge_back"})
    assert refused["status"] == "failed" and "locked" in refused["message"]
    # the lock goes; the original becomes writable, then the copy is merged back live
    await local.unlock("", "nb.ipynb", lock_id="wopi-2", app_name="wopi")
    await original.wait_raw(lambda m: m.get("type") == "lock" and m["state"] == "held")
    merged = await work.command({"type": "merge_back"})
    assert merged["status"] == "merged", merged
    await original.wait_for(
        lambda: original.sources() == ["shared = 1", "other = 2  # edited on the copy"]
    )
    await _poll(lambda: _sources(_disk(path))[1] == "other = 2  # edited on the copy")
    await original.close()
    await work.close()


async def test_merge_base_survives_a_crash_without_copying_each_snapshot(
    hubs: Callable[..., HubProcess], tmp_path: Path
) -> None:
    """Snapshots record only etag + hash; after kill -9 the exact base comes back from storage.

    Without it the restarted room would hold the bytes of its first load as the base: it would
    rewrite storage for nothing, and merge the next external edit against the wrong base.
    """
    root, data = tmp_path / "root", tmp_path / "data"
    hub = hubs(root=root, data_dir=data, env=FAST)
    path = root / "nb.ipynb"
    write_notebook(path, notebook("x = 1", "y = 2"))
    info = hub.open("nb.ipynb")
    client = await YClient(hub.room_url(info)).connect()
    client.append_source(0, "0")
    await _poll(lambda: _sources(_disk(path)) == ["x = 10", "y = 2"])
    hub.kill9()
    await client.close()

    slow_save = {**FAST, "CS3COLLAB_SNAPSHOT_DEBOUNCE": "600",
                 "CS3COLLAB_SNAPSHOT_MAX_DEBOUNCE": "600"}  # fmt: skip
    hub2 = hubs(root=root, data_dir=data, port=hub.port, env=slow_save)
    again = await YClient(hub2.room_url(info)).connect()
    # nothing to rewrite: the base came back from storage (no redundant write after a crash)
    assert (await again.save(1))["status"] == "success"
    metrics = httpx.get(f"{hub2.http_url}/metrics").text
    assert "cs3collab_snapshots_total 0.0" in metrics
    again.append_source(0, "0")  # live only: x = 100
    await again.wait_for(lambda: again.view.ystate.get("dirty") is True)
    nb = _disk(path)
    nb["cells"][1]["source"] = "y = 3"
    path.write_text(json.dumps(nb, indent=1))
    await again.wait_for(lambda: again.sources() == ["x = 100", "y = 3"])
    # a save runs under the same lock as the merge: once it answers, any copy would exist
    assert (await again.save(9))["status"] == "success"
    assert _conflict_files(root) == []
    await again.close()
