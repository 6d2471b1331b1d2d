"""One websocket client's session in a room: join, read frames until either side ends, leave."""

from __future__ import annotations

import asyncio
from typing import Protocol

from collab_server.connection import Connection, Socket
from collab_server.logs import get_logger, kv
from collab_server.metrics import HubMetrics
from collab_server.protocol import CloseCode, ProtocolError, parse_frame
from collab_server.room import Room
from collab_server.rooms import RoomRegistry

log = get_logger("hub")


class ReceivingSocket(Socket, Protocol):
    async def receive(self) -> bytes | None:
        """The next binary frame, or None once the peer has closed."""
        ...


class SocketSession:
    """Runs ``conn`` in ``room`` to completion; the room is released at the end."""

    def __init__(
        self,
        socket: ReceivingSocket,
        room: Room,
        conn: Connection,
        *,
        rooms: RoomRegistry,
        metrics: HubMetrics,
    ) -> None:
        self._socket = socket
        self._room = room
        self._conn = conn
        self._rooms = rooms
        self._metrics = metrics

    async def run(self) -> None:
        room, conn = self._room, self._conn
        room.add_client(conn)
        self._metrics.clients.inc()
        _log_joined(room, conn)
        try:
            if conn.queued:
                await self._read_and_write()
            else:  # direct writes: the read loop in this task, and no writer task
                await conn.run_reading(self._read_loop)
        finally:
            room.remove_client(conn)
            self._metrics.clients.dec()
            if conn.overflowed:
                self._metrics.slow_clients.inc()
            self._rooms.release(room)
            log.info(
                "client left",
                extra=kv(room=room.key, user=conn.user.id, client=conn.id, code=conn.close_code),
            )

    async def _read_and_write(self) -> None:
        """Queued sends: a reader task, and the writer draining the queue in this task."""
        conn = self._conn
        reader = asyncio.get_running_loop().create_task(self._read_loop())
        # However the reader ends, the writer is told (it flushes what is queued, then stops).
        reader.add_done_callback(self._reader_done)
        try:
            # Either side may end the connection: the peer (reader) or a failed/slow send or
            # a close by the hub (writer).
            await conn.run_writer()
        finally:
            if not reader.done():
                reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)

    def _reader_done(self, _: object) -> None:
        if self._conn.close_code is None:
            self._conn.mark_gone()

    async def _read_loop(self) -> None:
        room, conn = self._room, self._conn
        while conn.close_code is None:
            data = await self._socket.receive()
            if data is None:
                conn.mark_gone()
                return
            try:
                await room.receive(conn, parse_frame(data))
            except ProtocolError as exc:
                self._metrics.closes.labels(str(CloseCode.BAD_REQUEST)).inc()
                self._metrics.protocol_errors.labels(data[:1].hex() or "empty").inc()
                log.info(
                    "malformed message",
                    extra=kv(room=room.key, user=conn.user.id, client=conn.id, error=str(exc)),
                )
                conn.close_now(CloseCode.BAD_REQUEST, str(exc)[:123])
                return
            except Exception as exc:
                # A bug in handling one message costs that socket (it reconnects), not the room
                self._metrics.task_failures.labels("hub.message").inc()
                log.exception(
                    "message handling failed",
                    extra=kv(room=room.key, user=conn.user.id, client=conn.id, error=repr(exc)),
                )
                conn.close_now(CloseCode.RECONNECT, "internal error")
                return


def _log_joined(room: Room, conn: Connection) -> None:
    # A function of its own: logging looks up its caller's frame, and a frame looked up in
    # SocketSession.run would stay materialised for the socket's life (~0.25 KiB, P2).
    log.info("client joined", extra=kv(room=room.key, user=conn.user.id, client=conn.id))
