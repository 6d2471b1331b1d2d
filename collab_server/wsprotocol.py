"""uvicorn's websocket protocol plus one ASGI extension: synchronous frame writes for fan-out.

Why our own (measured, bench P1 with 50 editors): sending one Y update to 49 clients through
Starlette's ``send_bytes`` -> uvicorn's ASGI ``send`` -> websockets' frame serializer cost
~40 us per client and a task switch each, and was 44 % of the hub's CPU. Server frames are
not masked, so a frame is the same bytes for every client; writing it straight to the
transport costs a few microseconds. Everything else (handshake, receive, ping/pong, close)
stays uvicorn's.

The extension is published as ``scope["extensions"]["cs3collab.frame_writer"]``; the app
uses it when present and falls back to plain ASGI sends otherwise (any other server).
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import SecurityError

EXTENSION = "cs3collab.frame_writer"
# uvicorn logs every websocket at INFO on "uvicorn.error": '<addr> - "WebSocket <path>?<query>"
# [accepted]' (the query holds the client's token) and websockets' "connection open". The
# hub logs each join and leave itself, without the token. These two lines per socket were
# ~5 % of the hub's CPU in a reconnect storm (measured, bench P2); here they go to a child
# logger that the CLI sets to WARNING unless the hub logs at DEBUG. Errors still show.
CONNECTION_LOG = logging.getLogger("uvicorn.error.websocket")
BULK_BYTES = 1 << 20  # a message this big is "bulk": one may always be in flight (see backlog)


def binary_frame_header(length: int) -> bytes:
    """RFC 6455 header of one unmasked, final, uncompressed binary frame."""
    if length < 126:
        return bytes((0x82, length))
    if length < 1 << 16:
        return struct.pack("!BBH", 0x82, 126, length)
    return struct.pack("!BBQ", 0x82, 127, length)


class FrameWriter:
    """Writes whole binary messages to one websocket without awaiting."""

    __slots__ = ("_protocol",)

    def __init__(self, protocol: FanOutWebSocketProtocol) -> None:
        self._protocol = protocol

    def write(self, data: bytes) -> bool:
        """Queue one binary message in the transport; False once the socket is closing."""
        protocol = self._protocol
        transport = protocol.transport
        if protocol.close_sent or protocol.disconnected or transport.is_closing():
            return False
        # Uncompressed (RSV1 clear) is valid even where permessage-deflate was negotiated.
        if len(data) < 4096:
            transport.write(binary_frame_header(len(data)) + data)
        else:  # no copy of a large payload
            transport.writelines((binary_frame_header(len(data)), data))
        if len(data) >= BULK_BYTES and len(data) > protocol.bulk_in_flight:
            protocol.bulk_in_flight = len(data)
        if protocol.paused_at is not None:
            protocol.frames_while_paused += 1
        return True

    def backlog(self) -> tuple[int, float]:
        """Frames written since the transport stopped draining, and for how long (s)."""
        protocol = self._protocol
        if protocol.paused_at is None:
            return 0, 0.0
        return protocol.frames_while_paused, time.monotonic() - protocol.paused_at

    def backlog_bytes(self) -> int:
        """Bytes waiting in the transport beyond the largest bulk message in flight.

        One big message (a SyncStep2 of a 50 MB notebook) may always be on its way to a slow
        reader; what piles up behind it is what counts.
        """
        protocol = self._protocol
        if protocol.paused_at is None:
            return 0
        return max(0, protocol.transport.get_write_buffer_size() - protocol.bulk_in_flight)

    def abort(self) -> None:
        """Drop the connection now: a peer that stopped reading never gets a close frame."""
        self._protocol.transport.abort()


class Inbox:
    """The part of ``asyncio.Queue`` uvicorn's protocol uses (``put_nowait``, ``get``,
    ``empty``), for its one reader: the app's receive.

    Why our own (measured, bench P2): an ``asyncio.Queue`` is four deques (its items, getters,
    putters and a ``finished`` Event), ~3 KiB per idle socket, a tenth of what one cost. Here an
    event goes straight to the waiting reader; a deque exists only while events wait unread
    (uvicorn pauses reading while one does, so there are few).
    """

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: deque[Any] | None = None
        self._waiter: asyncio.Future[Any] | None = None

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items) if self._items else 0

    def put_nowait(self, item: Any) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            self._waiter = None
            waiter.set_result(item)
            return
        if self._items is None:
            self._items = deque()
        self._items.append(item)

    async def get(self) -> Any:
        items = self._items
        if items:
            item = items.popleft()
            if not items:
                self._items = None
            return item
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        try:
            return await waiter
        except asyncio.CancelledError:
            if self._waiter is waiter:
                self._waiter = None
            elif waiter.done() and not waiter.cancelled():  # handed over, then cancelled
                if self._items is None:
                    self._items = deque()
                self._items.appendleft(waiter.result())
            raise


class Flag:
    """``asyncio.Event`` as uvicorn's protocol uses it (``writable``: set, clear, wait).

    Why our own (measured, bench P2): an ``asyncio.Event`` holds a deque (760 B) per socket
    from birth; a send waits on this one only while the transport is paused.
    """

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = False
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> None:
        if self._set:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)


class FanOutWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O websockets protocol that also offers a ``FrameWriter``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.logger = CONNECTION_LOG
        self.conn.logger = CONNECTION_LOG
        self.conn.debug = CONNECTION_LOG.isEnabledFor(logging.DEBUG)
        # Lighter stand-ins for the asyncio.Queue and Event uvicorn made (see Inbox, Flag)
        self.queue = Inbox()  # type: ignore[assignment]
        writable = Flag()
        writable.set()
        self.writable = writable  # type: ignore[assignment]
        self.paused_at: float | None = None
        self.frames_while_paused = 0
        self.bulk_in_flight = 0  # size of the largest bulk message written since the last drain

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None and not self.close_sent:  # the app task has not run yet
            scope["extensions"][EXTENSION] = FrameWriter(self)

    async def send(self, message: Any) -> None:
        await super().send(message)
        if self.handshake_complete and getattr(self, "response", None) is not None:
            # The handshake's request and response (headers and all) are not needed once it
            # is done; uvicorn keeps them for the socket's life (~4 KiB each, measured, P2).
            # websockets' parser keeps the request too (a local of its generator), so its
            # headers are emptied in place (~2 KiB per socket for a bench client's few
            # headers; a browser's cookies and all are more).
            request = getattr(self, "request", None)
            if request is not None:
                request.headers.clear()
            self.request = None  # type: ignore[assignment]
            self.response = None  # type: ignore[assignment]

    def pause_writing(self) -> None:
        super().pause_writing()
        self.paused_at = time.monotonic()
        self.frames_while_paused = 0

    def resume_writing(self) -> None:
        super().resume_writing()
        self.paused_at = None
        self.frames_while_paused = 0
        self.bulk_in_flight = 0

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self.handshake_initiated and self.conn.handshake_exc is not None:
            # websockets could not parse the request (a line over 8 KiB, too many headers):
            # uvicorn would neither answer nor close it, and the socket would stay forever.
            self.refuse_handshake(self.conn.handshake_exc)

    def refuse_handshake(self, exc: Exception) -> None:
        cause = exc.__cause__ or exc
        too_large = isinstance(cause, SecurityError)
        status = 431 if too_large else 400
        body = b"request header fields too large" if too_large else b"malformed upgrade request"
        self.transport.write(http_error(status, body))
        self.handshake_initiated = self.handshake_complete = self.close_sent = True
        self.transport.close()
        if self.on_refused is not None:
            self.on_refused(str(status))

    on_refused: Callable[[str], None] | None = None  # set per server (metrics)


_REASONS = {400: "Bad Request", 408: "Request Timeout", 431: "Request Header Fields Too Large"}


def http_error(status: int, body: bytes) -> bytes:
    """A complete HTTP/1.1 error response that closes the connection."""
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
        "content-type: text/plain; charset=utf-8\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body
