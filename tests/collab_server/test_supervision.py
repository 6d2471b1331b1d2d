"""A failing room task is logged, counted, and the room reloads from its log (issue 11).

Each test injects one failure a real part does not produce on demand (``inject_*``: a bug in
the fan-out, a watcher that raises something unexpected, a snapshot write that raises) and
checks that the room's clients are told to reconnect (1011), the failure is counted, and a
reconnecting client finds every edit it made, from the log.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from collab_server.room import Room
from devkit.hubproc import notebook, write_notebook
from tests.inproc import InprocHub, running


async def _room_with_edit(hub: InprocHub) -> tuple[dict[str, Any], Room]:
    write_notebook(hub.root / "nb.ipynb", notebook("a"))
    info = await hub.session("nb.ipynb")
    client = await hub.connect(info)
    await client.wait_synced()
    client.append(0, "b")
    room = hub.hub.rooms.rooms()[0]
    await client.wait_for(lambda: room.view.get()["cells"][0]["source"] == "ab")
    client.leave()
    return info, room


async def _fails_and_reloads(hub: InprocHub, info: dict[str, Any], task: str) -> None:
    watcher = await hub.connect(info)  # its SyncStep1 (or the watcher's tick) hits the fault
    await watcher.wait_for(lambda: watcher.closed.is_set(), timeout=10)
    assert watcher.sock.close_code == 1011
    assert hub.counter("cs3collab_task_failures_total", task=task) == 1
    assert hub.counter("cs3collab_room_failures_total") == 1
    # the room is gone; the next client loads it again from the log, edits and all
    again = await hub.connect(info)
    await again.wait_synced()
    assert again.sources() == ["ab"]
    again.append(0, "c")
    await again.wait_for(lambda: "abc" in (hub.root / "nb.ipynb").read_text())
    again.leave()


async def test_dispatcher_failure(tmp_path: Path) -> None:
    async with running(tmp_path / "root", tmp_path / "data") as hub:
        (tmp_path / "root").mkdir()
        info, room = await _room_with_edit(hub)

        def inject_fan_out_bug(items: Any) -> None:
            raise RuntimeError("injected fan-out bug")

        room._fan_out = inject_fan_out_bug  # type: ignore[method-assign]
        await _fails_and_reloads(hub, info, "room.dispatcher")


async def test_watcher_failure(tmp_path: Path) -> None:
    async with running(tmp_path / "root", tmp_path / "data", watch_interval=0.05) as hub:
        (tmp_path / "root").mkdir()
        info, room = await _room_with_edit(hub)

        async def inject_watcher_bug() -> None:
            raise RuntimeError("injected watcher bug")

        room.check_external = inject_watcher_bug  # type: ignore[method-assign]
        await _fails_and_reloads(hub, info, "room.watcher")


@pytest.mark.parametrize("error", [RuntimeError, KeyError])
async def test_snapshot_failure(tmp_path: Path, error: type[Exception]) -> None:
    async with running(tmp_path / "root", tmp_path / "data", watch_interval=60) as hub:
        (tmp_path / "root").mkdir()
        write_notebook(hub.root / "nb.ipynb", notebook("a"))
        info = await hub.session("nb.ipynb")
        storage = hub.hub.storage
        real_write = storage.write
        failed = False

        async def inject_write_bug(*args: Any, **kwargs: Any) -> Any:
            nonlocal failed
            if not failed:
                failed = True
                raise error("injected snapshot bug")
            return await real_write(*args, **kwargs)

        storage.write = inject_write_bug  # type: ignore[method-assign]
        client = await hub.connect(info)
        await client.wait_synced()
        client.append(0, "b")  # the debounced snapshot raises
        await client.wait_for(lambda: client.closed.is_set(), timeout=10)
        assert client.sock.close_code == 1011
        assert hub.counter("cs3collab_task_failures_total", task="room.snapshot") == 1
        again = await hub.connect(info)
        await again.wait_synced()
        assert again.sources() == ["ab"]  # from the log
        await again.wait_for(lambda: "ab" in (hub.root / "nb.ipynb").read_text())
        again.leave()


async def test_update_log_failure_tells_clients_and_loses_nothing(tmp_path: Path) -> None:
    """A full disk or a broken SQLite: the room closes its clients with 4500 and a reason;
    they keep their edits and resend them once the log works again."""
    async with running(tmp_path / "root", tmp_path / "data") as hub:
        (tmp_path / "root").mkdir()
        write_notebook(hub.root / "nb.ipynb", notebook("a"))
        info = await hub.session("nb.ipynb")
        client = await hub.connect(info)
        await client.wait_synced()
        log = hub.hub.update_log
        real_append = log.append
        broken = True

        async def inject_disk_full(room: str, updates: list[bytes]) -> int:
            if broken:
                raise sqlite3.OperationalError("database or disk is full")
            return await real_append(room, updates)

        log.append = inject_disk_full  # type: ignore[method-assign]
        client.append(0, "b")  # cannot be logged: never broadcast, never acknowledged
        await client.wait_for(lambda: client.closed.is_set(), timeout=15)
        assert client.sock.close_code == 4500
        assert "update log" in client.sock.close_reason
        assert client.sources() == ["ab"]  # still on the client's screen
        broken = False
        await hub.connect(info, again=client)  # JupyterLab reconnects to the same URL
        await client.wait_synced()
        probe = await hub.connect(info)
        await probe.wait_synced()
        await probe.wait_for(lambda: probe.sources() == ["ab"])
        await probe.wait_for(lambda: "ab" in (hub.root / "nb.ipynb").read_text())
