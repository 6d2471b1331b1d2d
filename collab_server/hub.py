"""The hub core: sessions, admission, joining a room, and what rooms ask of the hub.

Framework-free: the ASGI layer (``app.py``) adapts sockets and HTTP to these calls. Its parts:
``loading.py`` (room loading with recovery, the room factory), ``ws_session.py`` (one socket's
read loop), ``work_copies.py`` (work copies and merge-back), ``errors.py`` (HTTP and close
codes), ``room_key.py`` (the room's name, parsed once).
"""

from __future__ import annotations

import asyncio
import shutil
from collections import Counter
from dataclasses import dataclass
from typing import Any

from collab_server.auth import Access, Authenticator, Principal, access_for
from collab_server.clock import Clock, LoopClock
from collab_server.connection import Connection
from collab_server.errors import HubError, storage_error
from collab_server.heap import HeapTrimmer
from collab_server.loading import RoomLoader, RoomParts
from collab_server.logs import get_logger, kv
from collab_server.metrics import HubMetrics
from collab_server.protocol import CloseCode, close_reason
from collab_server.room import Room
from collab_server.room_hooks import (
    CommandRequest,
    LargeSend,
    RoomClosedEvent,
    RoomFailed,
    SnapshotWritten,
)
from collab_server.room_key import RoomKey
from collab_server.rooms import RoomRegistry
from collab_server.scaleout.cluster import Cluster
from collab_server.scaleout.errors import REDIS_UNAVAILABLE
from collab_server.settings import Settings
from collab_server.update_log import RoomStore
from collab_server.work_copies import WorkCopies
from collab_server.ws_session import ReceivingSocket, SocketSession
from crdt.errors import ExportError, LoadError
from storage_bridge.base import Storage
from storage_bridge.errors import InvalidArgument, NotFound, StorageError, Unauthenticated
from storage_bridge.types import Resource, ResourceId

__all__ = ["Hub", "HubError", "ReceivingSocket", "Session"]

log = get_logger("hub")


@dataclass(frozen=True, slots=True)
class Session:
    format: str
    type: str
    file_id: str
    session_id: str
    created: bool


class Hub:
    def __init__(
        self,
        *,
        settings: Settings,
        storage: Storage,
        update_log: RoomStore,
        authenticator: Authenticator,
        metrics: HubMetrics,
        clock: Clock | None = None,
        cluster: Cluster | None = None,
    ) -> None:
        self.settings = settings
        self.cluster = cluster  # scale-out over Redis (ARCHITECTURE §10); None: one instance
        self.storage = storage
        self.update_log = update_log
        self.auth = authenticator
        self.metrics = metrics
        self.heap = HeapTrimmer()
        self.ready = False  # set once the app's startup is done (/readyz)
        # merge bases of rooms open when the process last stopped (see versions.py)
        shutil.rmtree(settings.state_dir / "versions", ignore_errors=True)
        self._per_user: Counter[str] = Counter()
        # storage stats of joins in flight, by (token, resource): see _join_stat
        self._join_stats: dict[tuple[str, ResourceId], asyncio.Future[Resource]] = {}
        self._per_address: Counter[str] = Counter()
        self.rooms = RoomRegistry(
            grace=settings.unload_grace, metrics=metrics, on_unloaded=self.heap.soon
        )
        parts = RoomParts(
            update_log,
            storage,
            settings,
            metrics,
            self,
            clock or LoopClock(),
            cluster,
            watch_interval=self.watch_interval,
        )
        self._loader = RoomLoader(parts, self.heap)
        self._copies = WorkCopies(
            storage=storage, meta=update_log, rooms=self.rooms, acquire=self._acquire_editing
        )

    def watch_interval(self) -> float:
        """Seconds between one room's storage polls: ``watch_interval``, or longer when the
        open rooms would poll more than ``watch_budget`` times a second together. A held lock
        is refreshed on the first poll after ``lock_refresh``, so polls stay short enough for
        that to come before ``lock_expiry`` with a margin: at most ``lock_refresh`` and half
        of ``lock_expiry - lock_refresh`` (40 s with the defaults)."""
        s = self.settings
        if not s.watch_budget:
            return s.watch_interval
        spread = len(self.rooms) / s.watch_budget
        longest = min(s.lock_refresh, (s.lock_expiry - s.lock_refresh) / 2)
        return max(s.watch_interval, min(spread, longest))

    async def authenticate(self, token: str | None) -> Principal:
        try:
            return await self.auth.authenticate(token)
        except Unauthenticated as exc:
            raise HubError(
                401, CloseCode.UNAUTHENTICATED, exc.message or "unauthenticated"
            ) from exc
        except StorageError as exc:
            raise storage_error(exc) from exc

    async def _document(self, principal: Principal, path: str, need: Access) -> Resource:
        """Stat ``path`` as the caller and check it is a document they may ``need``."""
        try:
            resource = await self.storage.stat(principal.token, path)
        except StorageError as exc:
            raise storage_error(exc) from exc
        if resource.is_dir:
            raise HubError(400, CloseCode.BAD_REQUEST, "a directory is not a document")
        access = access_for(resource)
        if access is Access.NONE or (need is Access.EDIT and access is not Access.EDIT):
            raise HubError(403, CloseCode.FORBIDDEN, f"no {need.name.lower()} access")
        return resource

    async def open_session(self, token: str | None, path: str, fmt: str, typ: str) -> Session:
        principal = await self.authenticate(token)
        if RoomKey(fmt, typ, "").kind is None:
            raise HubError(400, CloseCode.BAD_REQUEST, f"unsupported document {fmt}:{typ}")
        resource = await self._document(principal, path, Access.VIEW)
        key = RoomKey(fmt, typ, resource.id.to_file_id())
        lineage, created = await self.update_log.ensure_lineage(str(key))
        shared = None
        if self.cluster is not None:
            try:
                shared = await self.cluster.claim_lineage(str(key), lineage)
            except REDIS_UNAVAILABLE as exc:  # degraded: this instance's own lineage
                log.warning(
                    "redis unavailable for a session", extra=kv(room=str(key), error=repr(exc))
                )
        if shared is not None and shared != lineage:
            # Another instance made the room: its sessionId holds on every instance.
            await self.update_log.adopt_lineage(str(key), shared)
            lineage, created = shared, False
        return Session(fmt, typ, key.file_id, lineage, created)

    async def _known_lineage(self, key: RoomKey, lineage: str) -> bool:
        if await self.update_log.has_lineage(lineage):
            return True
        return self.cluster is not None and await self.cluster.lineage_of(str(key)) == lineage

    async def _acquire(
        self, key: RoomKey, resource_id: ResourceId, principal: Principal, can_write: bool
    ) -> Room:
        """The live room of ``key``, loaded if need be (raises LoadError, StorageError)."""
        kind = key.kind
        assert kind is not None
        return await self.rooms.acquire(
            str(key),
            lambda: self._loader.load(key, kind, resource_id, principal, can_write),
        )

    async def _acquire_editing(
        self, key: RoomKey, resource_id: ResourceId, principal: Principal
    ) -> Room:
        return await self._acquire(key, resource_id, principal, True)

    async def write_document(
        self, token: str | None, path: str, data: bytes, based_on: str | None = None
    ) -> dict[str, object]:
        """An out-of-band writer's new version, merged into the room instead of racing it."""
        principal = await self.authenticate(token)
        resource = await self._document(principal, path, Access.EDIT)
        key = RoomKey.for_resource(resource)
        try:
            room = await self._acquire(key, resource.id, principal, True)
        except LoadError as exc:
            raise HubError(
                409, CloseCode.UNSUPPORTED, f"stored document unreadable: {exc}"
            ) from exc
        except StorageError as exc:
            raise storage_error(exc) from exc
        try:
            result = await room.merge_incoming(data, principal.user.username, based_on)
        except StorageError as exc:
            raise storage_error(exc) from exc
        finally:
            self.rooms.release(room)
        return {
            "status": "conflict" if result.conflicts else "merged",
            "conflicts": result.conflicts,
            "conflictCopy": result.copy,
            "etag": result.etag,
        }

    async def merge_back(self, token: str | None, copy_path: str) -> dict[str, Any]:
        """HTTP: merge the work copy at ``copy_path`` into its original."""
        principal = await self.authenticate(token)
        try:
            copy = await self.storage.stat(principal.token, copy_path)
            key = RoomKey.for_resource(copy)
            return await self._copies.merge_back(key, principal.token, principal.user)
        except StorageError as exc:
            raise storage_error(exc) from exc
        except ExportError as exc:
            raise HubError(409, CloseCode.BAD_REQUEST, str(exc)) from exc

    # -- issue 14: used by room_ops.py (HTTP work copy / merge preview from JupyterLab) ------

    async def acquire_room(self, principal: Principal, resource: Resource) -> Room:
        """The live room of ``resource`` (loaded if needed); ``rooms.release`` it after use."""
        can_write = access_for(resource) is Access.EDIT
        try:
            return await self._acquire(
                RoomKey.for_resource(resource), resource.id, principal, can_write
            )
        except LoadError as exc:
            message = f"stored document unreadable: {exc}"
            raise HubError(409, CloseCode.UNSUPPORTED, message) from exc
        except StorageError as exc:
            raise storage_error(exc) from exc

    async def document(self, principal: Principal, path: str, need: Access) -> Resource:
        """Public form of ``_document`` for room_ops.py."""
        return await self._document(principal, path, need)

    @staticmethod
    def storage_http_error(exc: StorageError) -> HubError:
        """``errors.storage_error``, for room_ops.py."""
        return storage_error(exc)

    # -- what rooms ask of the hub (RoomHooks) ------------------------------------------------

    async def command(self, request: CommandRequest) -> dict[str, Any]:
        """JSON raw commands from a client of ``request.room``."""
        room, conn, kind = request.room, request.conn, request.command.get("type")
        if not conn.can_write:
            return {"type": kind, "status": "failed", "message": "viewers cannot do this"}
        try:
            if kind == "work_on_copy":
                return {"type": kind, "status": "success", **await self._copies.create(room, conn)}
            if kind == "merge_back":
                result = await self._copies.merge_back(room.room_key, conn.token, conn.user)
                return {"type": kind, **result}
        except (StorageError, ExportError, HubError) as exc:
            log.warning("room command failed", extra=kv(room=room.key, error=repr(exc)))
            return {"type": kind, "status": "failed", "message": str(exc)}
        return {"type": kind, "status": "failed", "message": f"unknown command {kind!r}"}

    def large_send(self, event: LargeSend) -> None:
        # The message leaves the socket buffer as fast as the client reads it: trim twice.
        self.heap.soon(0.2)
        self.heap.soon(2.0)

    async def failed(self, event: RoomFailed) -> None:
        """A room whose update log failed: forget it without a snapshot (clients resend)."""
        self.rooms.drop(event.room)
        if self.cluster is not None:
            await self.cluster.detach(event.room.key)

    async def closed(self, event: RoomClosedEvent) -> None:
        if self.cluster is not None:
            await self.cluster.detach(event.room.key)

    def snapshot_written(self, event: SnapshotWritten) -> None:
        """The writer instance stored a snapshot: joiners and a successor start from it."""
        if self.cluster is not None:
            self.cluster.snapshot_written(event.room.key, event.etag, event.digest, event.lock_id)

    # -- websockets ---------------------------------------------------------------------------

    async def admit(self, token: str | None, address: str) -> Principal:
        """Before a websocket opens: who is it, and may they open one more? (raises HubError)

        Checked before the upgrade is accepted, so a bad token costs an HTTP answer, not a
        websocket that may send a 64 MiB frame first. Call ``leave`` when the socket is done.
        """
        principal = await self.authenticate(token)
        user, caps = principal.user.id, self.settings
        if caps.max_connections_per_user and self._per_user[user] >= caps.max_connections_per_user:
            raise HubError(429, CloseCode.TOO_MANY, "too many connections for this user")
        if (
            caps.max_connections_per_address
            and self._per_address[address] >= caps.max_connections_per_address
        ):
            raise HubError(429, CloseCode.TOO_MANY, "too many connections from this address")
        self._per_user[user] += 1
        self._per_address[address] += 1
        return principal

    def leave(self, principal: Principal, address: str) -> None:
        for counts, key in ((self._per_user, principal.user.id), (self._per_address, address)):
            counts[key] -= 1
            if counts[key] <= 0:
                del counts[key]

    async def _join(
        self, room_name: str, session_id: str | None, principal: Principal
    ) -> tuple[Room, Access]:
        try:
            key = RoomKey.parse(room_name)
        except ValueError as exc:
            raise HubError(400, CloseCode.BAD_REQUEST, str(exc)) from exc
        if key.kind is None:
            raise HubError(
                400, CloseCode.BAD_REQUEST, f"unsupported document {key.format}:{key.type}"
            )
        try:
            resource = await self._join_stat(principal.token, key.resource_id)
        except (NotFound, InvalidArgument) as exc:
            if session_id and not await self._known_lineage(key, session_id):
                # The hub lost this session's state (e.g. its data dir): a reload re-resolves
                # the path; a plain 4404 would make JupyterLab retry the dead URL forever.
                raise HubError(
                    409, CloseCode.UNSUPPORTED, close_reason("unknown_session", session_id)
                ) from exc
            raise storage_error(exc) from exc
        except StorageError as exc:
            raise storage_error(exc) from exc
        access = access_for(resource)
        if access is Access.NONE:
            raise HubError(403, CloseCode.FORBIDDEN, "no access")
        try:
            room = await self._acquire(key, resource.id, principal, access is Access.EDIT)
        except LoadError as exc:
            log.warning("room failed to load", extra=kv(room=str(key), error=str(exc)))
            raise HubError(
                500,
                CloseCode.UNSUPPORTED,
                close_reason("initialization_error", session_id or "", errorReason=str(exc)[:40]),
            ) from exc
        except StorageError as exc:
            raise storage_error(exc) from exc
        if session_id and session_id != room.lineage:
            # The client's Y history belongs to another lineage (log lost, doc rebuilt):
            # merging it would duplicate content, so it must reload instead.
            raise HubError(409, CloseCode.UNSUPPORTED, close_reason("unknown_session", session_id))
        if room.client_count >= self.settings.max_clients_per_room:
            raise HubError(429, CloseCode.TOO_MANY, "too many clients in this room")
        return room, access

    async def _join_stat(self, token: str, rid: ResourceId) -> Resource:
        """``storage.stat`` for a join; joins with the same token and resource that overlap
        share one call: a join that asks while one is in flight takes its answer (at most one
        round trip older than its own would have been; rights are checked again by storage on
        every write).

        In a reconnect storm a user's clients of a room arrive at once: one stat per client
        went through the storage thread alongside the watcher's, and was the second cost of
        admission after the watcher (measured, bench P2, 10,000 clients at once).
        """
        key = (token, rid)
        pending = self._join_stats.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self.storage.stat(token, rid))
            self._join_stats[key] = pending
            pending.add_done_callback(lambda done: self._join_stat_done(key, done))
        return await asyncio.shield(pending)

    def _join_stat_done(self, key: tuple[str, ResourceId], done: asyncio.Future[Resource]) -> None:
        if self._join_stats.get(key) is done:
            del self._join_stats[key]
        if not done.cancelled():
            done.exception()  # retrieved: every waiter may have gone (its socket closed)

    async def serve(
        self,
        socket: ReceivingSocket,
        room_name: str,
        session_id: str | None,
        principal: Principal,
    ) -> None:
        """Run one client connection (of an admitted ``principal``) to completion."""
        try:
            room, access = await self._join(room_name, session_id, principal)
        except HubError as exc:
            self.metrics.closes.labels(str(exc.close_code)).inc()
            log.info(
                "connection refused",
                extra=kv(room=room_name, code=exc.close_code, reason=exc.message),
            )
            await socket.close(exc.close_code, exc.message[:123])
            return
        conn = Connection(
            socket,
            user=principal.user,
            token=principal.token,
            can_write=access is Access.EDIT,
            queue_max=self.settings.send_queue_max,
            backlog_bytes=self.settings.send_backlog_bytes,
            send_timeout=self.settings.send_timeout,
        )
        session = SocketSession(socket, room, conn, rooms=self.rooms, metrics=self.metrics)
        await session.run()

    async def aclose(self) -> None:
        await self.rooms.close_all()
        await self.heap.aclose()
        await self.update_log.aclose()
        await self.storage.aclose()
