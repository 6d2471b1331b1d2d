"""The fan-out websocket protocol: direct frame writes on a real uvicorn server, real clients."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
import websockets
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from collab_server.wsprotocol import (
    EXTENSION,
    FanOutWebSocketProtocol,
    Flag,
    Inbox,
    binary_frame_header,
)


@pytest.mark.parametrize("length", [0, 1, 125, 126, 65535, 65536, 200_000])
def test_header_parses_as_one_final_binary_frame(length: int) -> None:
    payload = bytes(range(256)) * (length // 256) + bytes(length % 256)
    reader = StreamReader()
    reader.feed_data(binary_frame_header(length) + payload)
    parser = Frame.parse(reader.read_exact, mask=False)
    with pytest.raises(StopIteration) as done:
        while True:
            next(parser)
    frame = done.value.value
    assert frame.opcode is Opcode.BINARY and frame.fin and not frame.rsv1
    assert bytes(frame.data) == payload


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _App:
    """Echo over both paths: direct writes for 'd:' messages, ASGI sends for the rest."""

    def __init__(self) -> None:
        self.writers: list[Any] = []
        self.after_close: list[bool] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "websocket"
        writer = scope["extensions"].get(EXTENSION)
        self.writers.append(writer)
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                self.after_close.append(writer.write(b"late"))
                return
            data = message["bytes"]
            if data.startswith(b"d:"):
                assert writer.write(data)
            elif data == b"close":
                await send({"type": "websocket.close", "code": 4429, "reason": "bye"})
                self.after_close.append(writer.write(b"after close"))
            else:
                await send({"type": "websocket.send", "bytes": data})


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, _App]]:
    app = _App()
    port = _free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, ws=FanOutWebSocketProtocol, log_level="warning"
    )
    srv = uvicorn.Server(config)
    task = asyncio.create_task(srv.serve())
    for _ in range(500):
        if srv.started:
            break
        await asyncio.sleep(0.01)
    assert srv.started
    yield f"ws://127.0.0.1:{port}/", app
    srv.should_exit = True
    await task


async def test_direct_and_asgi_sends_arrive_in_order(server: tuple[str, _App]) -> None:
    url, app = server
    async with websockets.connect(url, compression="deflate") as ws:
        sent = [b"d:" + bytes([i]) * (i * 700) if i % 2 else b"a:%d" % i for i in range(100)]
        for data in sent:
            await ws.send(data)
        received = [await ws.recv() for _ in sent]
    assert received == sent  # uncompressed direct frames mix with compressed ASGI ones
    assert app.writers and app.writers[0] is not None


async def test_no_direct_write_after_close(server: tuple[str, _App]) -> None:
    url, app = server
    async with websockets.connect(url) as ws:
        await ws.send(b"close")
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4429
    for _ in range(200):
        if len(app.after_close) == 2:
            break
        await asyncio.sleep(0.01)
    # refused right after websocket.close was sent, and again after the disconnect
    assert app.after_close == [False, False]


async def test_backlog_counts_frames_of_a_reader_that_stopped(server: tuple[str, _App]) -> None:
    url, app = server
    async with websockets.connect(url, max_queue=1) as ws:
        await ws.send(b"d:hello")
        assert await ws.recv() == b"d:hello"
        writer = app.writers[-1]
        assert writer.backlog() == (0, 0.0)
        # The client stops reading: the kernel buffers fill, then the transport pauses.
        transport_paused = False
        for _ in range(2000):
            writer.write(b"x" * 65536)
            waiting, stalled = writer.backlog()
            if waiting:
                transport_paused = True
                break
        assert transport_paused
        # the stall time grows while nothing drains
        deadline = asyncio.get_running_loop().time() + 10
        while writer.backlog()[1] < 0.05:
            assert asyncio.get_running_loop().time() < deadline, "stall time does not grow"
            await asyncio.sleep(0.01)
        waiting, stalled = writer.backlog()
        assert waiting >= 1 and stalled >= 0.05
        writer.abort()


async def test_inbox_hands_events_over_in_order_and_keeps_one_a_cancelled_reader_got() -> None:
    inbox = Inbox()
    assert inbox.empty()
    inbox.put_nowait(1)
    inbox.put_nowait(2)
    assert not inbox.empty() and inbox.qsize() == 2
    assert [await inbox.get(), await inbox.get()] == [1, 2] and inbox.empty()
    reader = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    inbox.put_nowait(3)  # handed to the waiting reader ...
    reader.cancel()  # ... which is cancelled before it runs: the event is kept
    with pytest.raises(asyncio.CancelledError):
        await reader
    inbox.put_nowait(4)
    assert [await inbox.get(), await inbox.get()] == [3, 4]
    waiting = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    inbox.put_nowait(5)  # nobody waits any more: queued, not lost
    assert await inbox.get() == 5


async def test_flag_wakes_every_waiter_when_set() -> None:
    flag = Flag()
    assert not flag.is_set()
    waiters = [asyncio.ensure_future(flag.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)
    flag.set()
    await asyncio.gather(*waiters)
    await flag.wait()  # set: returns at once
    flag.clear()
    late = asyncio.ensure_future(flag.wait())
    await asyncio.sleep(0)
    assert not late.done()
    late.cancel()
    with pytest.raises(asyncio.CancelledError):
        await late
    flag.set()
