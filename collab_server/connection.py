"""One websocket client of a room: identity, rights, and a bounded send queue.

Sends never block the room. Where the server offers a ``DirectWriter`` (our uvicorn protocol,
collab_server/wsprotocol.py) a frame is written to the transport at once; otherwise it is
queued and a writer task drains the queue into the socket. A client that cannot keep up (more
than ``queue_max`` frames waiting, or not reading for ``send_timeout``) is closed with 4429;
its y-websocket client reconnects and catches up with one SyncStep2, which is cheaper than
buffering without bound.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from typing import Protocol

from collab_server.logs import get_logger, kv
from collab_server.protocol import CloseCode
from storage_bridge.types import User

log = get_logger("connection")
_ids = itertools.count(1)


class DirectWriter(Protocol):
    """Synchronous writes of whole binary messages to one socket."""

    def write(self, data: bytes) -> bool: ...

    def backlog(self) -> tuple[int, float]: ...

    def backlog_bytes(self) -> int: ...

    def abort(self) -> None: ...


class Socket(Protocol):
    """What the core needs from a websocket (the ASGI layer adapts Starlette's)."""

    @property
    def direct(self) -> DirectWriter | None: ...

    async def send(self, data: bytes) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...


class Connection:
    def __init__(
        self,
        socket: Socket,
        *,
        user: User,
        token: str,
        can_write: bool,
        queue_max: int,
        send_timeout: float = 30.0,
        backlog_bytes: int = 32 * 1024 * 1024,
    ) -> None:
        self._backlog_bytes = backlog_bytes
        self._queued_bytes = 0  # queued path: bytes waiting beyond the largest queued message
        self._queued_bulk = 0
        self._send_timeout = send_timeout
        self.id = next(_ids)
        self.socket = socket
        self._direct = socket.direct
        self._queue_max = queue_max
        self.user = user
        self.token = token
        self.can_write = can_write
        self.awareness_ids: set[int] = set()
        self.refused: bytes | None = None  # a viewer's refused updates, merged (room.py)
        # Direct writes need no queue: the writer only waits for the end (``_stop``). An
        # asyncio.Queue is four deques, ~3 KiB per idle socket (measured, bench P2).
        self._queue: asyncio.Queue[bytes | None] | None = (
            asyncio.Queue(maxsize=queue_max) if self._direct is None else None
        )
        self._stopping = False  # direct: the writer is to stop
        self._stopped: asyncio.Future[None] | None = None  # what a direct writer waits on
        # Direct, without a writer (``run_reading``): the close frame is sent by a task made
        # when the hub closes the socket, rather than by a writer task kept for its whole life
        self._closer: asyncio.Task[None] | None = None
        self._reading = False
        self._closed = False  # a flag, not an Event: nothing waits on it (memory per socket)
        self.close_code: int | None = None
        self.overflowed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def send(self, data: bytes) -> bool:
        """Queue a frame; False if the client is gone or too slow (it is then being closed)."""
        if self._closed or self.close_code is not None:
            return False
        direct = self._direct
        if direct is not None:
            if not direct.write(data):
                self.mark_gone()
                return False
            frames, stalled = direct.backlog()
            if (
                frames > self._queue_max
                or stalled > self._send_timeout
                or (frames and direct.backlog_bytes() > self._backlog_bytes)
            ):
                self._drop_slow(direct)
                return False
            return True
        assert self._queue is not None
        if self._queued_bytes + len(data) - max(self._queued_bulk, len(data)) > self._backlog_bytes:
            return self._overflow()
        try:
            self._queue.put_nowait(data)
        except asyncio.QueueFull:
            return self._overflow()
        self._queued_bytes += len(data)
        self._queued_bulk = max(self._queued_bulk, len(data))
        return True

    def _overflow(self) -> bool:
        self.overflowed = True
        log.warning(
            "send queue full, closing slow client", extra=kv(user=self.user.id, client=self.id)
        )
        self.close_now(CloseCode.TOO_MANY, "send queue overflow: reconnect to resync")
        return False

    def _stop(self) -> None:
        """Wake the writer to end: after what is queued (queued path) or at once (direct)."""
        if self._queue is not None:
            if not self._queue.full():  # a full queue wakes the writer, which then stops
                self._queue.put_nowait(None)
            return
        self._stopping = True
        if self._stopped is not None and not self._stopped.done():
            self._stopped.set_result(None)
        elif self._reading and self._closer is None and not self._closed:
            # The session's task is waiting for the peer: close from a task of its own. Its
            # close frame also ends that wait (uvicorn hands the reader a disconnect).
            self._closer = asyncio.get_running_loop().create_task(self._do_close())

    @property
    def queued(self) -> bool:
        """Sends go through a queue and a writer task (the server offers no direct writes)."""
        return self._queue is not None

    async def run_reading(self, read: Callable[[], Awaitable[None]]) -> None:
        """Direct writes: run ``read`` (the session's read loop) in this task, no writer task;
        then close the socket as the writer would (the close frame unless the peer is gone).

        One task per socket instead of two: ~1 KiB less per idle connection (measured, P2).
        """
        assert self._queue is None
        self._reading = True
        try:
            await read()
        finally:
            self._reading = False
            if self.close_code is None:
                self.mark_gone()
        if self._closer is not None:
            await self._closer
        elif not self._closed:
            await self._do_close()

    async def run_writer(self) -> None:
        """Drain the queue into the socket until closed."""
        if self._queue is None:  # direct writes: nothing to drain, only the end to wait for
            if not self._stopping:
                self._stopped = asyncio.get_running_loop().create_future()
                await self._stopped
            if not self._closed:
                await self._do_close()
            return
        try:
            while True:
                batch = [await self._queue.get()]
                while not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                # A peer that stops reading blocks send() on TCP backpressure; give up on it.
                # One deadline per drained batch: a wait_for per frame cost 14% of the hub's
                # CPU under load (measured, bench P1 profile).
                async with asyncio.timeout(self._send_timeout):
                    for data in batch:
                        if data is None:
                            break
                        await self.socket.send(data)
                        self._queued_bytes -= len(data)
                if self._queue.empty():
                    self._queued_bytes = self._queued_bulk = 0
                if None in batch:
                    break
                del batch  # not kept alive while waiting for the next one
        except TimeoutError:
            self.overflowed = True
            self.close_code = self.close_code or CloseCode.TOO_MANY
            log.warning("client stopped reading", extra=kv(user=self.user.id, client=self.id))
            self._closed = True
            return
        except Exception as exc:  # the peer went away mid-send: the reader sees it too
            log.info(
                "send failed; client gone",
                extra=kv(user=self.user.id, client=self.id, error=repr(exc)),
            )
            self._closed = True
            return
        await self._do_close()

    def _drop_slow(self, direct: DirectWriter) -> None:
        log.warning("client stopped reading", extra=kv(user=self.user.id, client=self.id))
        self.overflowed = True
        self.close_code = CloseCode.TOO_MANY
        # Its buffer is full: a close frame would never arrive. The reader sees the reset.
        direct.abort()
        self._closed = True
        self._stop()

    def close_now(self, code: int, reason: str) -> None:
        """Close without flushing what is queued."""
        if self.close_code is not None:
            return
        self.close_code = code
        self._close_reason = reason
        # Drop what is queued: the client resyncs on reconnect anyway.
        while self._queue is not None and not self._queue.empty():
            self._queue.get_nowait()
        self._stop()

    async def _do_close(self) -> None:
        if self._closed:
            return
        self._closed = True
        code = self.close_code or CloseCode.NORMAL
        try:
            await asyncio.wait_for(
                self.socket.close(code, getattr(self, "_close_reason", "")), self._send_timeout
            )
        except Exception as exc:  # already closed by the peer, or it does not read any more
            log.info(
                "close frame not delivered",
                extra=kv(user=self.user.id, client=self.id, error=repr(exc)),
            )
            if self._reading and self._direct is not None:
                # The session's task still waits for the peer (run_reading): drop the socket,
                # as the end of a writer task's session did, so that the wait ends too.
                self._direct.abort()

    async def close(self, code: int, reason: str) -> None:
        """Flush what is queued, then close with ``code``."""
        if self.close_code is None:
            self.close_code = code
            self._close_reason = reason
            if self._queue is not None and self._queue.full():
                self.close_now(code, reason)
            else:
                self._stop()

    def mark_gone(self) -> None:
        """The peer closed the socket: stop the writer."""
        self._closed = True
        if self.close_code is None:
            self.close_code = CloseCode.NORMAL
        self._stop()
