"""The hub core: sessions, room loading and the per-socket protocol loop.

Framework-free: the ASGI layer (``app.py``) adapts sockets and HTTP to these calls.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Protocol

from pycrdt import Doc
from redis.exceptions import RedisError

from collab_server.auth import Access, Authenticator, Principal, access_for
from collab_server.connection import Connection, Socket
from collab_server.copies import create_copy_beside
from collab_server.heap import HeapTrimmer
from collab_server.logs import get_logger, kv
from collab_server.metrics import HubMetrics
from collab_server.protocol import CloseCode, ProtocolError, close_reason, parse_frame
from collab_server.room import Room
from collab_server.rooms import RoomRegistry
from collab_server.scaleout.cluster import Cluster, WriterMeta
from collab_server.settings import Settings
from collab_server.supervise import supervised
from collab_server.update_log import UpdateLog
from crdt.documents import DocumentKind, content_hash, kind_for
from crdt.errors import ExportError, LoadError
from storage_bridge.base import Storage
from storage_bridge.errors import (
    InvalidArgument,
    NotFound,
    PermissionDenied,
    PreconditionFailed,
    StorageError,
    Unauthenticated,
)
from storage_bridge.types import Resource, ResourceId, User

log = get_logger("hub")


class ReceivingSocket(Socket, Protocol):
    async def receive(self) -> bytes | None:
        """The next binary frame, or None once the peer has closed."""
        ...


class HubError(Exception):
    """An error with an HTTP status and a websocket close code."""

    def __init__(self, status: int, close_code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.close_code = close_code
        self.message = message


def _storage_error(exc: StorageError) -> HubError:
    if isinstance(exc, NotFound | InvalidArgument):
        return HubError(404, CloseCode.NOT_FOUND, exc.message or "not found")
    if isinstance(exc, PermissionDenied):
        return HubError(403, CloseCode.FORBIDDEN, exc.message or "forbidden")
    if isinstance(exc, PreconditionFailed):
        return HubError(412, CloseCode.BAD_REQUEST, exc.message or "precondition failed")
    if isinstance(exc, Unauthenticated):
        return HubError(401, CloseCode.UNAUTHENTICATED, exc.message or "unauthenticated")
    return HubError(503, CloseCode.INTERNAL, f"storage unavailable: {exc.message}")


@dataclass(frozen=True, slots=True)
class Session:
    format: str
    type: str
    file_id: str
    session_id: str
    created: bool


def _kind_of(resource: Resource) -> tuple[str, str, DocumentKind]:
    """The document kind JupyterLab would open a file as (by its name)."""
    fmt, typ = ("json", "notebook") if resource.name.endswith(".ipynb") else ("text", "file")
    kind = kind_for(fmt, typ)
    assert kind is not None
    return fmt, typ, kind


def room_key(fmt: str, typ: str, file_id: str) -> str:
    return f"{fmt}:{typ}:{file_id}"


class Hub:
    def __init__(
        self,
        *,
        settings: Settings,
        storage: Storage,
        update_log: UpdateLog,
        authenticator: Authenticator,
        metrics: HubMetrics,
        cluster: Cluster | None = None,
    ) -> None:
        self.settings = settings
        self.cluster = cluster  # scale-out over Redis (ARCHITECTURE §9); None: one instance
        self.storage = storage
        self.update_log = update_log
        self.auth = authenticator
        self.metrics = metrics
        self.heap = HeapTrimmer()
        # merge bases of rooms open when the process last stopped (see versions.py)
        shutil.rmtree(settings.state_dir / "versions", ignore_errors=True)
        self._per_user: Counter[str] = Counter()
        self._per_address: Counter[str] = Counter()
        self.rooms = RoomRegistry(
            grace=settings.unload_grace, metrics=metrics, on_unloaded=self.heap.soon
        )

    async def authenticate(self, token: str | None) -> Principal:
        try:
            return await self.auth.authenticate(token)
        except Unauthenticated as exc:
            raise HubError(
                401, CloseCode.UNAUTHENTICATED, exc.message or "unauthenticated"
            ) from exc
        except StorageError as exc:
            raise _storage_error(exc) from exc

    async def _document(self, principal: Principal, path: str, need: Access) -> Resource:
        """Stat ``path`` as the caller and check it is a document they may ``need``."""
        try:
            resource = await self.storage.stat(principal.token, path)
        except StorageError as exc:
            raise _storage_error(exc) from exc
        if resource.is_dir:
            raise HubError(400, CloseCode.BAD_REQUEST, "a directory is not a document")
        access = access_for(resource)
        if access is Access.NONE or (need is Access.EDIT and access is not Access.EDIT):
            raise HubError(403, CloseCode.FORBIDDEN, f"no {need.name.lower()} access")
        return resource

    async def open_session(self, token: str | None, path: str, fmt: str, typ: str) -> Session:
        principal = await self.authenticate(token)
        if kind_for(fmt, typ) is None:
            raise HubError(400, CloseCode.BAD_REQUEST, f"unsupported document {fmt}:{typ}")
        resource = await self._document(principal, path, Access.VIEW)
        file_id = resource.id.to_file_id()
        key = room_key(fmt, typ, file_id)
        lineage, created = await self.update_log.ensure_lineage(key)
        shared = None
        if self.cluster is not None:
            try:
                shared = await self.cluster.claim_lineage(key, lineage)
            except (RedisError, OSError) as exc:  # degraded: this instance's own lineage
                log.warning("redis unavailable for a session", extra=kv(room=key, error=repr(exc)))
        if shared is not None and shared != lineage:
            # Another instance made the room: its sessionId holds on every instance.
            await self.update_log.adopt_lineage(key, shared)
            lineage, created = shared, False
        return Session(fmt, typ, file_id, lineage, created)

    async def _load_room(
        self,
        key: str,
        kind: DocumentKind,
        resource_id: ResourceId,
        principal: Principal,
        can_write: bool,
    ) -> Room:
        started = time.perf_counter()
        shared_lineage: str | None = None
        shared_updates: list[bytes] = []
        if self.cluster is not None:
            try:
                shared_lineage, shared_updates = await self.cluster.room_view(key)
            except (RedisError, OSError) as exc:  # degraded: this instance serves alone
                log.warning("redis unavailable at room load", extra=kv(room=key, error=repr(exc)))
            if shared_lineage is not None:
                await self.update_log.adopt_lineage(key, shared_lineage)
                if not shared_updates:
                    shared_updates = await self._shared_doc(key)
        stored = await self.update_log.load(key)
        if stored is None:
            await self.update_log.ensure_lineage(key)
            stored = await self.update_log.load(key)
            assert stored is not None
        doc: Doc[Any] = Doc()
        if stored.snapshot is None:
            data, etag = await self.storage.read(principal.token, resource_id)
            if shared_updates:
                # The room lives on other instances: its doc is theirs, never rebuilt from the
                # file (a second Y build of the same cells would duplicate them).
                for shared in shared_updates:
                    doc.apply_update(shared)
                update = doc.get_update()
            else:
                # The load is CPU-bound (JSON + building Y items); a worker thread keeps the
                # event loop serving other rooms. Its Doc never leaves that thread.
                update = await asyncio.to_thread(kind.load, data)
                doc.apply_update(update)
            # Recorded while the first client syncs: the log's single writer thread runs it
            # before any append of this room, and the room awaits it before its first append
            # (so SyncStep2 never waits for this commit, P3). The bytes are the merge base of
            # the first external writer, durable: after a crash, merging against older bytes
            # or none duplicated cells and revived deleted ones (issue 11).
            digest = content_hash(data)
            log_ready = asyncio.ensure_future(
                self.update_log.start(key, update, etag, digest, data)
            )
            log_ready.add_done_callback(lambda _: self.heap.soon())  # SQLite's blob buffers
            base_etag, base_hash, doc_bytes = etag, digest, len(update)
            base_content: bytes | None = data
            previous_lock_id = None
        else:
            log_ready = None
            doc.apply_update(stored.snapshot)
            for update in stored.updates:
                doc.apply_update(update)
            base_etag, base_hash = stored.base_etag or "", stored.base_hash or ""
            base_content = stored.base_content
            if stored.pending or base_content is None:
                # A snapshot was being written when the hub stopped (or the log predates
                # durable merge bases): if storage holds one of those versions, it is ours.
                data, etag = await self.storage.read(principal.token, resource_id)
                digest = content_hash(data)
                if digest in stored.pending or digest == base_hash:
                    base_etag, base_hash, base_content = etag, digest, data
            doc_bytes = len(stored.snapshot) + sum(len(u) for u in stored.updates)
            previous_lock_id = stored.lock_id
        room = Room(
            key=key,
            kind=kind,
            resource_id=resource_id,
            lineage=stored.lineage,
            doc=doc,
            base_etag=base_etag,
            base_hash=base_hash,
            base_content=base_content,
            doc_bytes=doc_bytes,
            update_log=self.update_log,
            storage=self.storage,
            settings=self.settings,
            metrics=self.metrics,
            initial_token=principal.token,
            initial_token_can_write=can_write,
            previous_lock_id=previous_lock_id,
            log_ready=log_ready,
        )
        room.command_handler = self._room_command
        room.on_large_send = self._after_large_send
        if self.cluster is not None:
            await self._attach(room)
        if stored.snapshot is not None:
            # Loaded from the log: it may hold edits storage never got (a crash before the
            # snapshot). Export once and write if it differs from what storage holds.
            room.snapshotter.changed()
        try:
            await room.start()
        except BaseException:
            await room.close()
            raise
        self.metrics.room_load_seconds.observe(time.perf_counter() - started)
        self.heap.soon()  # the file, its parsed form and the loader's doc are garbage now
        log.info(
            "room loaded",
            extra=kv(
                room=key, user=principal.user.id, seconds=round(time.perf_counter() - started, 4)
            ),
        )
        return room

    async def _shared_doc(self, key: str) -> list[bytes]:
        """Redis names the room's lineage but holds none of its doc: its creator is building
        it from the file. Only the writer may (a second build duplicates every cell): take the
        lease and build it here (empty list), or wait for the creator's first entry."""
        assert self.cluster is not None
        deadline = time.monotonic() + 2 * self.settings.writer_lease_ttl + 5
        while time.monotonic() < deadline:
            if await self.cluster.may_create(key):
                return []
            await asyncio.sleep(0.1)
            _, updates = await self.cluster.room_view(key)
            if updates:
                return updates
        raise LoadError("the room is being created on another instance: try again")

    async def _attach(self, room: Room) -> None:
        """Join the room across instances before its first client syncs (§9)."""
        assert self.cluster is not None
        cluster = self.cluster
        room.writes_storage = False  # until this instance holds the writer lease
        try:
            attached = await cluster.attach(room)
        except (RedisError, OSError) as exc:
            # Redis is away: serve alone (and write storage) until it is back.
            log.warning(
                "redis unavailable, room not shared", extra=kv(room=room.key, error=repr(exc))
            )
            room.writes_storage = True
            return
        if not attached:
            await room.close()
            raise LoadError("another instance created this room meanwhile: reconnect")
        room.replica = cluster.replica(room.key)
        room.on_awareness = lambda payload: cluster.publish_awareness(room.key, payload)

        def snapshot_taken(etag: str, digest: str) -> None:
            replica = room.replica
            if replica is None:
                return
            state = replica.persisted_state()
            meta = WriterMeta(room.lock.lock_id, etag, digest)
            supervised(
                cluster.persisted(room.key, meta, state),
                task="cluster.persist",
                failures=self.metrics.task_failures,
                room=room.key,
            )

        room.on_snapshot = snapshot_taken
        room.on_close = lambda: cluster.detach(room)

    async def write_document(
        self, token: str | None, path: str, data: bytes, based_on: str | None = None
    ) -> dict[str, object]:
        """An out-of-band writer's new version, merged into the room instead of racing it."""
        principal = await self.authenticate(token)
        resource = await self._document(principal, path, Access.EDIT)
        fmt, typ, kind = _kind_of(resource)
        key = room_key(fmt, typ, resource.id.to_file_id())
        try:
            room = await self.rooms.acquire(
                key, lambda: self._load_room(key, kind, resource.id, principal, True)
            )
        except LoadError as exc:
            raise HubError(
                409, CloseCode.UNSUPPORTED, f"stored document unreadable: {exc}"
            ) from exc
        except StorageError as exc:
            raise _storage_error(exc) from exc
        try:
            conflicts, copy = await room.merge_incoming(data, principal.user.username, based_on)
        except StorageError as exc:
            raise _storage_error(exc) from exc
        finally:
            self.rooms.release(room)
        return {
            "status": "conflict" if conflicts else "merged",
            "conflicts": conflicts,
            "conflictCopy": copy,
            "etag": room.base_etag,
        }

    async def _room_command(
        self, room: Room, conn: Connection, command: dict[str, Any]
    ) -> dict[str, Any]:
        """JSON raw commands from a client of ``room``."""
        kind = command.get("type")
        if not conn.can_write:
            return {"type": kind, "status": "failed", "message": "viewers cannot do this"}
        try:
            if kind == "work_on_copy":
                return {"type": kind, "status": "success", **await self._work_copy(room, conn)}
            if kind == "merge_back":
                return {"type": kind, **await self._merge_back(room.key, conn.token, conn.user)}
        except (StorageError, ExportError, HubError) as exc:
            log.warning("room command failed", extra=kv(room=room.key, error=repr(exc)))
            return {"type": kind, "status": "failed", "message": str(exc)}
        return {"type": kind, "status": "failed", "message": f"unknown command {kind!r}"}

    async def _work_copy(self, room: Room, conn: Connection) -> dict[str, Any]:
        """A copy of the live document beside the original, as its own room (to merge back)."""
        data = room.export()
        original = await self.storage.stat(conn.token, room.resource_id)
        copy = await create_copy_beside(self.storage, conn.token, original, conn.user.username,
                                        data)  # fmt: skip
        fmt, typ, origin_id = room.key.split(":", 2)
        copy_id = copy.id.to_file_id()
        await self.update_log.record_fork(copy_id, origin_id, data)
        lineage, _ = await self.update_log.ensure_lineage(room_key(fmt, typ, copy_id))
        log.info("work copy created", extra=kv(room=room.key, path=copy.path))
        return {"path": copy.path, "format": fmt, "docType": typ, "fileId": copy_id,
                "sessionId": lineage}  # fmt: skip

    async def _merge_back(self, copy_key: str, token: str, user: User) -> dict[str, Any]:
        """Three-way merge a work copy into its original (base: the copy's starting point)."""
        fmt, typ, copy_id = copy_key.split(":", 2)
        fork = await self.update_log.fork_of(copy_id)
        if fork is None:
            raise HubError(400, CloseCode.BAD_REQUEST, "this document is not a work copy")
        origin_id, base = fork
        copy_room = self.rooms.get(copy_key)
        if copy_room is not None:
            theirs = copy_room.export()
        else:
            theirs, _ = await self.storage.read(token, ResourceId.from_file_id(copy_id))
        kind = kind_for(fmt, typ)
        assert kind is not None
        origin_key = room_key(fmt, typ, origin_id)
        origin_rid = ResourceId.from_file_id(origin_id)
        resource = await self.storage.stat(token, origin_rid)
        if access_for(resource) is not Access.EDIT:
            raise HubError(403, CloseCode.FORBIDDEN, "you may not write the original")
        principal = Principal(user, token)
        origin = await self.rooms.acquire(
            origin_key, lambda: self._load_room(origin_key, kind, origin_rid, principal, True)
        )
        try:
            if origin.read_only_reason is not None:
                return {"status": "failed", "message": f"the original is {origin.read_only_reason}"
                        f" ({origin.lock.holder or 'read-only'}); try again later"}  # fmt: skip
            conflicts, conflict_copy = await origin.merge_incoming(theirs, user.username, base=base)
        finally:
            self.rooms.release(origin)
        return {"status": "conflict" if conflicts else "merged", "conflicts": conflicts,
                "conflictCopy": conflict_copy, "path": resource.path}  # fmt: skip

    async def merge_back(self, token: str | None, copy_path: str) -> dict[str, Any]:
        """HTTP: merge the work copy at ``copy_path`` into its original."""
        principal = await self.authenticate(token)
        try:
            copy = await self.storage.stat(principal.token, copy_path)
            fmt, typ, _ = _kind_of(copy)
            key = room_key(fmt, typ, copy.id.to_file_id())
            return await self._merge_back(key, principal.token, principal.user)
        except StorageError as exc:
            raise _storage_error(exc) from exc
        except ExportError as exc:
            raise HubError(409, CloseCode.BAD_REQUEST, str(exc)) from exc

    async def _known_lineage(self, key: str, lineage: str) -> bool:
        if await self.update_log.has_lineage(lineage):
            return True
        return self.cluster is not None and await self.cluster.lineage_of(key) == lineage

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
    ) -> tuple[Room, Principal, Access]:
        parts = room_name.split(":", 2)
        if len(parts) != 3:
            raise HubError(400, CloseCode.BAD_REQUEST, "room must be format:type:fileId")
        fmt, typ, file_id = parts
        kind = kind_for(fmt, typ)
        if kind is None:
            raise HubError(400, CloseCode.BAD_REQUEST, f"unsupported document {fmt}:{typ}")
        try:
            resource_id = ResourceId.from_file_id(file_id)
            resource = await self.storage.stat(principal.token, resource_id)
        except (NotFound, InvalidArgument) as exc:
            if session_id and not await self._known_lineage(
                room_key(fmt, typ, file_id), session_id
            ):
                # The hub lost this session's state (e.g. its data dir): a reload re-resolves
                # the path; a plain 4404 would make JupyterLab retry the dead URL forever.
                raise HubError(
                    409, CloseCode.UNSUPPORTED, close_reason("unknown_session", session_id)
                ) from exc
            raise _storage_error(exc) from exc
        except StorageError as exc:
            raise _storage_error(exc) from exc
        access = access_for(resource)
        if access is Access.NONE:
            raise HubError(403, CloseCode.FORBIDDEN, "no access")
        key = room_key(fmt, typ, file_id)
        try:
            room = await self.rooms.acquire(
                key,
                lambda: self._load_room(key, kind, resource.id, principal, access is Access.EDIT),
            )
        except LoadError as exc:
            log.warning("room failed to load", extra=kv(room=key, error=str(exc)))
            raise HubError(
                500,
                CloseCode.UNSUPPORTED,
                close_reason("initialization_error", session_id or "", errorReason=str(exc)[:40]),
            ) from exc
        except StorageError as exc:
            raise _storage_error(exc) from exc
        if session_id and session_id != room.lineage:
            # The client's Y history belongs to another lineage (log lost, doc rebuilt):
            # merging it would duplicate content, so it must reload instead.
            raise HubError(409, CloseCode.UNSUPPORTED, close_reason("unknown_session", session_id))
        if len(room.clients) >= self.settings.max_clients_per_room:
            raise HubError(429, CloseCode.TOO_MANY, "too many clients in this room")
        return room, principal, access

    async def serve(
        self,
        socket: ReceivingSocket,
        room_name: str,
        session_id: str | None,
        principal: Principal,
    ) -> None:
        """Run one client connection (of an admitted ``principal``) to completion."""
        try:
            room, principal, access = await self._join(room_name, session_id, principal)
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
        room.add_client(conn)
        self.metrics.clients.inc()
        loop = asyncio.get_running_loop()
        writer = loop.create_task(conn.run_writer())
        reader = loop.create_task(self._read_loop(socket, room, conn))
        log.info("client joined", extra=kv(room=room.key, user=principal.user.id, client=conn.id))
        try:
            # Either side may end the connection: the peer (reader) or a failed/slow send (writer).
            await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
            if not reader.done():
                reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            if conn.close_code is None:
                conn.mark_gone()
            await writer
        finally:
            room.remove_client(conn)
            self.metrics.clients.dec()
            if conn.overflowed:
                self.metrics.slow_clients.inc()
            self.rooms.release(room)
            log.info(
                "client left",
                extra=kv(
                    room=room.key, user=principal.user.id, client=conn.id, code=conn.close_code
                ),
            )

    async def _read_loop(self, socket: ReceivingSocket, room: Room, conn: Connection) -> None:
        while conn.close_code is None:
            data = await socket.receive()
            if data is None:
                conn.mark_gone()
                return
            try:
                await room.receive(conn, parse_frame(data))
            except ProtocolError as exc:
                self.metrics.closes.labels(str(CloseCode.BAD_REQUEST)).inc()
                self.metrics.protocol_errors.labels(data[:1].hex() or "empty").inc()
                log.info(
                    "malformed message",
                    extra=kv(room=room.key, user=conn.user.id, client=conn.id, error=str(exc)),
                )
                conn.close_now(CloseCode.BAD_REQUEST, str(exc)[:123])
                return
            except Exception as exc:
                # A bug in handling one message costs that socket (it reconnects), not the room
                self.metrics.task_failures.labels("hub.message").inc()
                log.exception(
                    "message handling failed",
                    extra=kv(room=room.key, user=conn.user.id, client=conn.id, error=repr(exc)),
                )
                conn.close_now(CloseCode.RECONNECT, "internal error")
                return

    def _after_large_send(self) -> None:
        # The message leaves the socket buffer as fast as the client reads it: trim twice.
        self.heap.soon(0.2)
        self.heap.soon(2.0)

    async def aclose(self) -> None:
        await self.rooms.close_all()
        await self.heap.aclose()
        await self.update_log.aclose()
        await self.storage.aclose()
