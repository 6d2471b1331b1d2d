"""Hostile and odd input against a real hub: each costs only the offending socket (issue 11)."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from pycrdt import Encoder, write_var_uint
from websockets.exceptions import InvalidStatus

from devkit.hubproc import HubProcess, notebook, write_notebook
from devkit.yclient import YClient
from tests.rawsock import masked_frame, read_until_closed, stalled_websocket, upgrade_request

# What yjs 13.6 + y-websocket 2.1 + y-protocols' Awareness send first: an awareness update for
# client 123456 with clock 0 and state {} (and the same with state null).
STOCK_FIRST_AWARENESS = bytes.fromhex("010801c0c40700027b7d")
STOCK_FIRST_AWARENESS_NULL = bytes.fromhex("010a01c0c40700046e756c6c")


def _metric(hub: HubProcess, name: str) -> float:
    text = httpx.get(f"{hub.http_url}/metrics").text
    return sum(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith(name) and not line.startswith("#")
    )


def _awareness_frame(entries: list[tuple[int, int, str]]) -> bytes:
    enc = Encoder()
    enc.write_var_uint(len(entries))
    for client, clock, state in entries:
        enc.write_var_uint(client)
        enc.write_var_uint(clock)
        enc.write_var_string(state)
    payload = enc.to_bytes()
    return b"\x01" + write_var_uint(len(payload)) + payload


@pytest.mark.parametrize("frame", [STOCK_FIRST_AWARENESS, STOCK_FIRST_AWARENESS_NULL])
async def test_stock_yjs_first_awareness_keeps_the_room_alive(
    tmp_path: Path, hubs: Callable[..., HubProcess], frame: bytes
) -> None:
    root = tmp_path / "root"
    write_notebook(root / "nb.ipynb", notebook("x"))
    hub = hubs(root=root, data_dir=tmp_path / "data")
    info = hub.open("nb.ipynb")
    stock = await YClient(hub.room_url(info)).connect()
    await stock.send_raw_bytes(frame)
    # a newcomer still gets SyncStep2, edits are still broadcast
    other = await YClient(hub.room_url(info)).connect(timeout=5)
    stock.append_source(0, "y")
    await other.wait_for(lambda: other.sources() == ["xy"], timeout=5)
    # ... and logged before they were broadcast: kill -9 loses nothing
    hub.kill9()
    hub.start()
    probe = await YClient(hub.room_url(info)).connect()
    assert probe.sources() == ["xy"]
    assert _metric(hub, "cs3collab_task_failures_total") == 0
    for c in (stock, other, probe):
        await c.close()


async def test_awareness_flood_and_spoofing_cost_only_the_sender(hub: HubProcess) -> None:
    write_notebook(hub.root / "nb.ipynb", notebook("x"))
    info = hub.open("nb.ipynb")
    alice = await YClient(hub.room_url(info)).connect()
    await alice.set_awareness({"user": {"name": "alice"}})
    bob = await YClient(hub.room_url(info)).connect()
    await bob.wait_for(lambda: alice.doc.client_id in bob.awareness.states)
    # mallory overwrites alice's state with a higher clock, and removes it: both dropped
    mallory = await YClient(hub.room_url(info)).connect()
    await mallory.send_raw_bytes(
        _awareness_frame([(alice.doc.client_id, 99, '{"user":{"name":"mallory"}}')])
    )
    await mallory.send_raw_bytes(_awareness_frame([(alice.doc.client_id, 100, "null")]))
    # one frame naming 100,000 clients: closed 4400, never broadcast
    flood = await YClient(hub.room_url(info)).connect()
    frames_before = bob.awareness_frames
    await flood.send_raw_bytes(_awareness_frame([(i, 1, "{}") for i in range(1, 100_001)]))
    assert await flood.wait_closed() == 4400
    assert "awareness" in flood.close_reason
    # a state over the byte cap (64 KiB): closed 4400
    huge = await YClient(hub.room_url(info)).connect()
    await huge.send_raw_bytes(_awareness_frame([(777, 1, json.dumps({"x": "y" * 70_000}))]))
    assert await huge.wait_closed() == 4400
    # alice's state is intact for a newcomer, and bob never saw the flood
    probe = await YClient(hub.room_url(info)).connect()
    await probe.wait_for(lambda: alice.doc.client_id in probe.awareness.states)
    assert probe.awareness.states[alice.doc.client_id] == {"user": {"name": "alice"}}
    assert len(bob.awareness.states) < 10
    assert bob.awareness_frames - frames_before < 5
    assert mallory.close_code is None  # dropping foreign entries is not an error
    for c in (alice, bob, mallory, probe):
        await c.close()


@pytest.mark.parametrize(
    "command",
    [
        "{" + '"a":[' * 5000 + "1" + "]" * 5000 + "}",  # deep: RecursionError in json.loads
        '{"type":"work_on_copy","pad":"' + "x" * 70_000 + '"}',  # over the size cap
    ],
    ids=["deep", "large"],
)
async def test_bounded_json_commands(hub: HubProcess, command: str) -> None:
    write_notebook(hub.root / "nb.ipynb", notebook("x"))
    info = hub.open("nb.ipynb")
    bad = await YClient(hub.room_url(info)).connect()
    other = await YClient(hub.room_url(info)).connect()
    body = command.encode()
    await bad.send_raw_bytes(b"\x02" + write_var_uint(len(body)) + body)
    assert await bad.wait_closed() == 4400
    assert "JSON command" in bad.close_reason
    other.append_source(0, "!")
    probe = await YClient(hub.room_url(info)).connect()
    await probe.wait_for(lambda: probe.sources() == ["x!"])
    assert "malformed message" in hub.logs()
    for c in (other, probe):
        await c.close()


def _raw(hub: HubProcess, data: bytes, timeout: float = 10) -> tuple[bytes, bool]:
    with socket.create_connection(("127.0.0.1", hub.port)) as sock:
        sock.sendall(data)
        return read_until_closed(sock, timeout)


def _room_path(hub: HubProcess, info: dict[str, str]) -> str:
    return hub.room_url(info).split(f":{hub.port}", 1)[1]


@pytest.mark.parametrize(
    ("what", "size"),
    [("header", 9_000), ("header", 40_000), ("url", 9_000), ("url", 40_000)],
)
async def test_oversized_upgrade_requests_are_answered_and_closed(
    hub: HubProcess, what: str, size: int
) -> None:
    """Over websockets' 8 KiB line limit, or over the hub's header budget: 431, closed."""
    write_notebook(hub.root / "nb.ipynb", notebook("x"))
    path = _room_path(hub, hub.open("nb.ipynb"))
    if what == "header":
        request = upgrade_request(path, "x", extra=f"X-Big: {'a' * size}\r\n")
    else:
        request = upgrade_request(f"{path}&pad={'a' * size}", "x")
    answer, closed = _raw(hub, request)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:80]
    assert closed


async def test_many_oversized_requests_are_not_kept(hub: HubProcess) -> None:
    assert hub.proc is not None
    socks = []
    for _ in range(50):
        sock = socket.create_connection(("127.0.0.1", hub.port))
        sock.sendall(upgrade_request("/api/collaboration/room/x", "x", f"X: {'a' * 9000}\r\n"))
        socks.append(sock)
    for sock in socks:
        answer, closed = read_until_closed(sock, 10)
        assert answer.startswith(b"HTTP/1.1 431") and closed
        sock.close()


async def test_slow_headers_time_out(tmp_path: Path, hubs: Callable[..., HubProcess]) -> None:
    root = tmp_path / "root"
    root.mkdir()
    hub = hubs(root=root, data_dir=tmp_path / "data", env={"CS3COLLAB_HANDSHAKE_TIMEOUT": "0.5"})
    with socket.create_connection(("127.0.0.1", hub.port)) as sock:
        sock.sendall(b"GET /api/collaboration/room/x HTTP/1.1\r\nHost: x\r\nX-Slow: a")
        answer, closed = read_until_closed(sock, 5)  # and then nothing (slowloris)
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert closed
    assert _metric(hub, 'cs3collab_refused_connections_total{reason="header_timeout"}') == 1


async def test_bad_token_never_gets_to_send_a_frame(hub: HubProcess) -> None:
    write_notebook(hub.root / "nb.ipynb", notebook("x"))
    info = hub.open("nb.ipynb")
    path = _room_path(hub, info).replace(f"token={hub.token}", "token=wrong")
    # the upgrade and a first (1 MiB) frame at once: the hub answers 401 and closes
    answer, closed = _raw(hub, upgrade_request(path, "x") + masked_frame(b"\x00" * (1 << 20)))
    assert answer.startswith(b"HTTP/1.1 401"), answer[:80]
    assert closed


async def test_connection_caps(tmp_path: Path, hubs: Callable[..., HubProcess]) -> None:
    root = tmp_path / "root"
    write_notebook(root / "nb.ipynb", notebook("x"))
    hub = hubs(
        root=root, data_dir=tmp_path / "data", env={"CS3COLLAB_MAX_CONNECTIONS_PER_USER": "3"}
    )
    info = hub.open("nb.ipynb")
    clients = [await YClient(hub.room_url(info)).connect() for _ in range(3)]
    with pytest.raises(InvalidStatus) as refused:
        await YClient(hub.room_url(info)).connect()
    assert refused.value.response.status_code == 429
    await clients[0].close()

    async def admitted() -> YClient:
        deadline = asyncio.get_running_loop().time() + 10
        while True:
            try:
                return await YClient(hub.room_url(info)).connect()
            except InvalidStatus:
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.05)  # poll: the hub frees the slot when the socket ends

    again = await admitted()
    for c in (*clients[1:], again):
        await c.close()


async def test_send_backlog_is_bounded_in_bytes(
    tmp_path: Path, hubs: Callable[..., HubProcess]
) -> None:
    """A socket that never reads and asks again and again for a 2 MB document."""
    root = tmp_path / "root"
    write_notebook(root / "nb.ipynb", notebook("x" * 2_000_000))
    hub = hubs(
        root=root, data_dir=tmp_path / "data", env={"CS3COLLAB_SEND_BACKLOG_BYTES": "8388608"}
    )
    info = hub.open("nb.ipynb")
    warm = await YClient(hub.room_url(info)).connect()  # the room is loaded
    stalled = stalled_websocket(hub.room_url(info))
    sync_step1 = masked_frame(b"\x00\x00\x01\x00")  # "send me everything"
    closed = False
    try:
        for _ in range(150):
            stalled.sendall(sync_step1)
    except (BrokenPipeError, ConnectionResetError):
        closed = True
    await warm.wait_for(lambda: _metric(hub, "cs3collab_slow_clients_total") == 1, 30)
    if not closed:
        _, closed = read_until_closed(stalled, 10)
    stalled.close()
    assert closed
    # the room goes on for the others
    warm.append_source(0, "!")
    probe = await YClient(hub.room_url(info)).connect()
    assert probe.sources()[0].endswith("!")
    for c in (warm, probe):
        await c.close()
