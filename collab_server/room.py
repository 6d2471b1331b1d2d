"""A room: the live Y document of one storage resource and the clients editing it.

Ordering is the heart of durability here. Every change to the doc, whoever made it, is seen by
one doc observer and put on the room's *outbox* together with any direct replies (SyncStep2).
A single dispatcher drains the outbox in order: it appends all updates of a batch to the
update log in one commit, and only then sends the batch. So nothing reaches a client before it
is durable, and a SyncStep2 computed after an update never overtakes that update's commit.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from jupyter_ydoc.ybasedoc import YBaseDoc
from pycrdt import (
    Awareness,
    Decoder,
    Doc,
    TransactionEvent,
    YSyncMessageType,
    create_awareness_message,
    create_sync_message,
    create_update_message,
    merge_updates,
)

from collab_server.connection import Connection
from collab_server.copies import create_copy_beside
from collab_server.lock_keeper import LockChange, LockKeeper, LockState
from collab_server.logs import get_logger, kv
from collab_server.metrics import HubMetrics
from collab_server.protocol import (
    AwarenessFrame,
    CloseCode,
    Frame,
    ProtocolError,
    QueryAwarenessFrame,
    RawFrame,
    SyncFrame,
    raw_message,
    sync_step2_message,
)
from collab_server.settings import Settings
from collab_server.snapshotter import SaveStatus, Snapshotter
from collab_server.update_log import UpdateLog
from collab_server.versions import StoredVersions
from crdt.documents import DocumentKind, content_hash
from storage_bridge.base import Storage
from storage_bridge.errors import Locked, PreconditionFailed, StorageError
from storage_bridge.naming import conflict_copy_name
from storage_bridge.types import Resource, ResourceId

log = get_logger("room")

_EMPTY_UPDATE = b"\x00\x00"
_LARGE_MESSAGE = 1 << 20


class _HubOrigin:
    """Marks changes the hub makes to the doc itself (state map after a save)."""


HUB_STATE = _HubOrigin()  # state map writes: not a content change
HUB_MERGE = _HubOrigin()  # external versions merged in: a content change for everyone


@dataclass(slots=True)
class _Outgoing:
    data: bytes  # the encoded frame (empty for doc updates and awareness: framed per batch)
    update: bytes | None = None  # a doc update: logged before anything of its batch is sent
    to: Connection | None = None  # direct reply; otherwise a broadcast
    exclude: Connection | None = None
    awareness_ids: list[int] | None = None  # awareness to broadcast (coalesced per batch)


class RoomClosed(Exception):
    pass


class Room:
    def __init__(
        self,
        *,
        key: str,
        kind: DocumentKind,
        resource_id: ResourceId,
        lineage: str,
        doc: Doc[Any],
        base_etag: str,
        base_content: bytes,
        doc_bytes: int,
        update_log: UpdateLog,
        storage: Storage,
        settings: Settings,
        metrics: HubMetrics,
        initial_token: str,
        initial_token_can_write: bool,
        previous_lock_id: str | None = None,
        log_ready: asyncio.Future[None] | None = None,
    ) -> None:
        self.key = key
        self.kind = kind
        self.resource_id = resource_id
        self.lineage = lineage
        self.doc = doc
        self.view: YBaseDoc = kind.bind(doc)
        self.awareness = Awareness(doc)
        self.clients: set[Connection] = set()
        self.base_etag = base_etag
        self.base_hash = content_hash(base_content)
        self.lock_id: str | None = None
        self.read_only_reason: str | None = None
        self._log = update_log
        self._log_ready = log_ready  # the log's record of the loaded state, still being written
        self._storage = storage
        self._settings = settings
        self._metrics = metrics
        self._doc_bytes = doc_bytes
        self._tail_updates = 0
        self._tail_bytes = 0
        self._origin: object = None
        self._outbox: asyncio.Queue[_Outgoing | None] = asyncio.Queue()
        self._last_editor_token: str | None = initial_token if initial_token_can_write else None
        self._any_token = initial_token
        self.lock = LockKeeper(
            storage,
            resource_id,
            app_name=settings.lock_app_name,
            expiry=settings.lock_expiry,
            refresh_every=settings.lock_refresh,
            room=key,
            previous_lock_id=previous_lock_id,
            remember=lambda lock_id: update_log.set_lock_id(key, lock_id),
        )
        self.conflict_copies: list[str] = []
        # Recent stored versions by etag: the merge base for external writers. The loaded one
        # is remembered at once; a big one reaches its file while the first client syncs.
        self._versions = StoredVersions(settings.state_dir / "versions", key)
        self._versions.remember(base_etag, base_content)
        self._maintainer: asyncio.Task[None] | None = None
        self._closing = False
        self._dirty_pending = False
        self.snapshotter = Snapshotter(
            room=key,
            export=self._export_off_loop,
            write=self._write_snapshot,
            autosave=self._autosave,
            metrics=metrics,
            debounce=settings.snapshot_debounce,
            max_debounce=settings.snapshot_max_debounce,
            retry_max=settings.snapshot_retry_max,
            stored_hash=self.base_hash,
        )
        self._subscription = doc.observe(self._on_doc_update)
        self._dispatcher = asyncio.get_running_loop().create_task(self._dispatch_loop())
        self.on_fatal: Callable[[Room], Awaitable[None]] | None = None
        # JSON raw commands ("work_on_copy", "merge_back") involve other rooms: the hub answers.
        # A big one-off message (a full SyncStep2) was queued: the hub trims the heap after it.
        self.on_large_send: Callable[[], None] | None = None
        self.command_handler: (
            Callable[[Room, Connection, dict[str, Any]], Awaitable[dict[str, Any]]] | None
        ) = None

    # -- doc changes -------------------------------------------------------------------------

    def _on_doc_update(self, event: TransactionEvent) -> None:
        update: bytes = event.update
        if update == _EMPTY_UPDATE:
            return
        origin = self._origin
        exclude = origin if isinstance(origin, Connection) else None
        # framed in _fan_out: a batch of several updates goes out as one merged frame
        self._outbox.put_nowait(_Outgoing(data=b"", update=update, exclude=exclude))
        self._doc_bytes += len(update)
        self._metrics.updates.inc()
        self._metrics.update_bytes.inc(len(update))
        if origin is not HUB_STATE:
            if not self.snapshotter.dirty and not self._dirty_pending:
                # A doc cannot be written from inside its own observer: defer the flag.
                self._dirty_pending = True
                asyncio.get_running_loop().call_soon(self._mark_dirty)
            self.snapshotter.changed()

    def _mark_dirty(self) -> None:
        self._dirty_pending = False
        if self.view.dirty is not True and not self._closing:
            self._set_state(dirty=True)

    def _set_state(self, **values: Any) -> None:
        previous, self._origin = self._origin, HUB_STATE
        try:
            with self.doc.transaction():
                for name, value in values.items():
                    self.view.ystate[name] = value
        finally:
            self._origin = previous

    # -- the ordered outbox ------------------------------------------------------------------

    async def _dispatch_loop(self) -> None:
        while await self._dispatch_batch(await self._outbox.get()):
            pass

    async def _dispatch_batch(self, first: _Outgoing | None) -> bool:
        """Log and send one batch; False when the room stops. A function of its own so that
        its frames die with it: a loop's locals kept the last batch (e.g. a 50 MB SyncStep2)
        alive for as long as the room stayed quiet (measured, bench P4)."""
        batch = [first]
        while not self._outbox.empty():
            batch.append(self._outbox.get_nowait())
        stop = None in batch
        items = [i for i in batch if i is not None]
        updates = [i.update for i in items if i.update is not None]
        if updates and not await self._append_durably(updates):
            return False
        self._fan_out(items)
        if updates:
            await self._maybe_compact(updates)
        return not stop

    def _fan_out(self, items: list[_Outgoing]) -> None:
        """Send a batch: all its doc updates as ONE frame, all its awareness as ONE frame.

        Encoding once and sending one frame per client per batch, instead of one per update,
        is what keeps 50 typing editors cheap: the per-frame socket write dominated (measured,
        bench P1: p99 1.2 s -> tens of ms).
        """
        updates = [i for i in items if i.update is not None]
        if updates:
            payloads = [u.update for u in updates if u.update is not None]
            if len(payloads) == 1:
                frame, exclude = create_update_message(payloads[0]), updates[0].exclude
            else:
                frame = create_update_message(merge_updates(*payloads))
                origins = {u.exclude for u in updates}
                # Several authors: each also gets its own edits back, which Y ignores; cheaper
                # than one merge per author.
                exclude = origins.pop() if len(origins) == 1 else None
            for client in self.clients:
                if client is not exclude:
                    client.send(frame)
        aware: set[int] = set()
        for item in items:
            if item.awareness_ids:
                aware.update(item.awareness_ids)
        if aware:
            payload = self.awareness.encode_awareness_update(sorted(aware))
            frame = create_awareness_message(payload)
            for client in self.clients:
                client.send(frame)  # to the sender too: JupyterLab's keep-alive
        for out in items:
            if out.update is not None or out.awareness_ids:
                continue
            if out.to is not None:
                out.to.send(out.data)
            else:
                for client in self.clients:
                    if client is not out.exclude:
                        client.send(out.data)

    async def _append_durably(self, updates: list[bytes]) -> bool:
        """Log a batch; on persistent failure close the room rather than send unlogged state."""
        delay = 0.05
        if self._log_ready is not None:
            try:
                await self._log_ready  # updates are only replayable on top of it
                self._log_ready = None
            except Exception as exc:
                log.error("update log start failed", extra=kv(room=self.key, error=repr(exc)))
                return await self._log_unavailable()
        for attempt in range(5):
            started = time.perf_counter()
            try:
                self._last_seq = await self._log.append(self.key, updates)
            except Exception as exc:
                log.error("update log append failed", extra=kv(room=self.key, error=repr(exc)))
                if attempt == 4:
                    break
                await asyncio.sleep(delay)
                delay *= 4
                continue
            self._metrics.log_commit_seconds.observe(time.perf_counter() - started)
            self._tail_updates += len(updates)
            self._tail_bytes += sum(len(u) for u in updates)
            return True
        return await self._log_unavailable()

    async def _log_unavailable(self) -> bool:
        # Clients keep their edits locally and resend them (SyncStep2) when they reconnect.
        for client in list(self.clients):
            await client.close(CloseCode.INTERNAL, "update log unavailable")
        if self.on_fatal is not None:
            await self.on_fatal(self)
        return False

    async def _maybe_compact(self, updates: list[bytes]) -> None:
        if (
            self._tail_updates < self._settings.compact_after_updates
            and self._tail_bytes < self._settings.compact_after_bytes
        ):
            return
        await self.compact()

    async def compact(self) -> None:
        # The doc already contains every update logged so far (they are applied before they are
        # queued), so its full state is a valid snapshot up to the last logged sequence number.
        upto = getattr(self, "_last_seq", 0)
        snapshot = self.doc.get_update()
        await self._log.compact(self.key, snapshot, upto)
        self._doc_bytes = len(snapshot)
        self._tail_updates = 0
        self._tail_bytes = 0
        self._metrics.compactions.inc()

    # -- clients -----------------------------------------------------------------------------

    def add_client(self, conn: Connection) -> None:
        self.clients.add(conn)
        self._any_token = conn.token
        if conn.can_write:
            self._last_editor_token = conn.token
        # Our SyncStep1 first (the client answers with what we lack), then who else is here.
        conn.send(create_sync_message(self.doc))
        if self.awareness.states:
            ids = list(self.awareness.states)
            conn.send(create_awareness_message(self.awareness.encode_awareness_update(ids)))
        if self.lock.state is LockState.FOREIGN:
            conn.send(raw_message(self._lock_message(LockState.FOREIGN, self.lock.holder)))
        elif self.read_only_reason is not None:
            conn.send(raw_message({"type": "read_only", "reason": self.read_only_reason}))

    def remove_client(self, conn: Connection) -> None:
        self.clients.discard(conn)
        if conn.can_write and not any(c.can_write for c in self.clients):
            # With CS3 a snapshot needs an editor's token, and tokens expire: write now,
            # while the last editor's token is fresh, rather than at the end of the grace.
            self.snapshotter.flush_soon()
        if conn.awareness_ids:
            ids = [i for i in conn.awareness_ids if i in self.awareness.states]
            self.awareness.remove_awareness_states(ids, conn)
            if ids:
                self._outbox.put_nowait(_Outgoing(data=b"", awareness_ids=ids))

    def editor_token(self) -> str | None:
        """A token that may write: a connected editor's, else the last editor's."""
        for client in self.clients:
            if client.can_write:
                return client.token
        return self._last_editor_token

    def any_token(self) -> str:
        """A token that may at least read (for stat/read of the resource)."""
        return self.editor_token() or self._any_token

    async def receive(self, conn: Connection, frame: Frame) -> None:
        """Handle one parsed frame from ``conn``."""
        if isinstance(frame, SyncFrame):
            self._metrics.messages.labels("sync").inc()
            if frame.step == YSyncMessageType.SYNC_STEP1:
                try:
                    missing = self.doc.get_update(frame.payload)
                except Exception as exc:
                    raise ProtocolError(f"bad state vector: {exc}") from exc
                self._outbox.put_nowait(_Outgoing(data=sync_step2_message(missing), to=conn))
                if len(missing) > _LARGE_MESSAGE and self.on_large_send is not None:
                    self.on_large_send()  # its bytes are freed once the socket took them
                return
            self._apply_client_update(conn, frame.payload)
        elif isinstance(frame, AwarenessFrame):
            self._metrics.messages.labels("awareness").inc()
            self._apply_awareness(conn, frame.payload)
        elif isinstance(frame, RawFrame):
            self._metrics.messages.labels("raw").inc()
            if frame.text == "save" and frame.save_id is not None:
                status = await self.save()
                conn.send(
                    raw_message({"type": "save", "responseTo": frame.save_id, "status": status})
                )
            elif frame.text.startswith("{") and self.command_handler is not None:
                try:
                    command = json.loads(frame.text)
                except ValueError as exc:
                    raise ProtocolError(f"bad JSON command: {exc}") from exc
                if not isinstance(command, dict):
                    raise ProtocolError("a JSON command must be an object")
                conn.send(raw_message(await self.command_handler(self, conn, command)))
        elif isinstance(frame, QueryAwarenessFrame):
            ids = list(self.awareness.states)
            if ids:
                conn.send(create_awareness_message(self.awareness.encode_awareness_update(ids)))

    def _apply_client_update(self, conn: Connection, update: bytes) -> None:
        if update == _EMPTY_UPDATE:
            return
        if not conn.can_write or self.read_only_reason is not None:
            self._metrics.refused_updates.labels("read_only").inc()
            conn.send(
                raw_message(
                    {
                        "type": "refused",
                        "reason": self.read_only_reason or "read_only",
                        "message": "you can view this document but not edit it",
                    }
                )
            )
            return
        if self._doc_bytes + len(update) > self._settings.max_doc_bytes:
            self._metrics.refused_updates.labels("too_large").inc()
            conn.close_now(CloseCode.DOC_TOO_LARGE, "document size limit reached")
            return
        self._last_editor_token = conn.token
        self._origin = conn
        try:
            self.doc.apply_update(update)
        except Exception as exc:  # yrs rejects a malformed update: only this client is at fault
            log.warning(
                "bad update from client", extra=kv(room=self.key, user=conn.user.id, error=str(exc))
            )
            conn.send(raw_message({"type": "conflict"}))
        finally:
            self._origin = None

    def _apply_awareness(self, conn: Connection, payload: bytes) -> None:
        try:
            ids = awareness_client_ids(payload)
            self.awareness.apply_awareness_update(payload, conn)
        except Exception as exc:
            log.warning("bad awareness update", extra=kv(room=self.key, error=str(exc)))
            return
        conn.awareness_ids.update(i for i in ids if i in self.awareness.states)
        # Echo to everyone including the sender: JupyterLab drops a socket silent for 30 s.
        if ids:
            self._outbox.put_nowait(_Outgoing(data=b"", awareness_ids=ids))

    def _autosave(self) -> bool:
        """Autosave unless every client that said so has turned it off."""
        votes = [
            state.get("autosave")
            for cid, state in self.awareness.states.items()
            if isinstance(state, dict) and "autosave" in state and cid != self.doc.client_id
        ]
        return not votes or any(bool(v) for v in votes)

    # -- snapshots ---------------------------------------------------------------------------

    def _export(self) -> bytes:
        return self.kind.export(self.view)

    async def _export_off_loop(self) -> tuple[bytes, str]:
        """Export for a snapshot: only reading the Y doc stays on the event loop.

        Validating and serialising a 1 MB notebook took ~50 ms, every snapshot, in which no
        room of the hub moved; on a worker thread (pure Python, so the GIL switches every
        0.5 ms, see cli.py) the loop keeps delivering edits meanwhile.
        """
        content = self.kind.read(self.view)
        return await asyncio.to_thread(_serialize_and_hash, self.kind, content)

    async def _base_bytes(self) -> bytes:
        """What storage held when we last read or wrote it (``base_etag``)."""
        data = await self._versions.get(self.base_etag)
        if data is not None:
            return data
        # Its file is gone: storage still has it unless someone wrote since.
        data, etag = await self._storage.read(self.any_token(), self.resource_id)
        if etag != self.base_etag and content_hash(data) != self.base_hash:
            log.error("merge base lost; merging against nothing", extra=kv(room=self.key))
            return b""
        return data

    async def _write_snapshot(self, data: bytes, digest: str) -> None:
        token = self.editor_token()
        if token is None:
            raise Locked("no editor has joined this room yet")
        if self.lock.state in (LockState.NONE, LockState.FOREIGN):
            # Never write without our lock where storage has locks: retry once it is back.
            raise Locked(f"the room does not hold the lock ({self.lock.state.value})")
        try:
            etag = await self._storage.write(
                token, self.resource_id, data, if_match=self.base_etag, lock_id=self.lock.lock_id
            )
        except PreconditionFailed:
            # Someone wrote since we last looked: merge their version first; the snapshotter
            # retries with the merged document.
            await self._merge_external_locked()
            raise
        self.base_etag, self.base_hash = etag, digest
        await self._versions.put(etag, data)
        # etag + hash only: the bytes are what we just wrote (they reach the log at unload;
        # after a crash they are read back from storage when the hash still matches)
        await self._log.set_base(self.key, etag, digest)
        self._set_state(dirty=False, hash=digest)

    async def save(self) -> SaveStatus:
        if self.read_only_reason is not None:
            return SaveStatus.SKIPPED
        return await self.snapshotter.flush()

    # -- locks and external writers -----------------------------------------------------------

    async def start(self) -> None:
        """Take the lock and catch up with changes made while the room was closed."""
        await self._lock_tick()
        try:
            await self.check_external()
        except StorageError as exc:
            log.warning("external check failed", extra=kv(room=self.key, error=repr(exc)))
        self._maintainer = asyncio.get_running_loop().create_task(self._maintain())

    async def _maintain(self) -> None:
        interval = self._settings.watch_interval
        while not self._closing:
            await asyncio.sleep(interval)
            try:
                await self._lock_tick()
                await self.check_external()
            except StorageError as exc:  # storage down: edits keep flowing, we look again later
                log.info("room maintenance failed", extra=kv(room=self.key, error=repr(exc)))

    async def _lock_tick(self) -> None:
        change = await self.lock.tick(self.editor_token())
        if change is not None:
            self._on_lock_change(change)

    def _on_lock_change(self, change: LockChange) -> None:
        if change.state is LockState.FOREIGN:
            self.read_only_reason = "locked"
            self._set_state(locked_by=change.holder)
            log.warning(
                "file locked by another application", extra=kv(room=self.key, reason=change.holder)
            )
        elif self.read_only_reason == "locked":
            self.read_only_reason = None
            self._set_state(locked_by="")
        message = self._lock_message(change.state, change.holder, lost=change.lost)
        self._outbox.put_nowait(_Outgoing(data=raw_message(message)))
        if change.state is LockState.HELD and self.snapshotter.dirty:
            self.snapshotter.flush_soon()

    @staticmethod
    def _lock_message(state: LockState, holder: str, *, lost: bool = False) -> dict[str, Any]:
        return {"type": "lock", "state": state.value, "holder": holder, "lost": lost}

    async def check_external(self) -> None:
        """Merge a version written by someone else, if there is one (etag, then content)."""
        async with self.snapshotter.lock:
            await self._merge_external_locked()

    async def _merge_external_locked(self) -> Resource:
        """Merge what storage holds if someone else wrote it; returns the resource as stat'ed."""
        resource = await self._storage.stat(self.any_token(), self.resource_id)
        if resource.etag == self.base_etag:
            return resource
        data, etag = await self._storage.read(self.any_token(), self.resource_id)
        await self._merge_version(resource, data, etag, who="")
        return resource

    async def _merge_version(
        self, resource: Resource, data: bytes, etag: str, who: str, base: bytes | None = None
    ) -> list[str]:
        """Merge ``data`` (in storage as ``etag``) into the live doc; a conflict copy if needed.

        ``base`` is the version ``data`` was derived from (default: what we last read/wrote).
        """
        digest = content_hash(data)
        if digest != (self.base_hash if base is None else content_hash(base)):
            if base is None:
                base = await self._base_bytes()
            previous, self._origin = self._origin, HUB_MERGE
            try:
                conflicts = self.kind.merge_into(self.view, base, data)
            finally:
                self._origin = previous
            log.info(
                "external version merged",
                extra=kv(room=self.key, etag=etag, reason=f"{len(conflicts)} conflicts"),
            )
        else:
            conflicts = []  # a touch, or a rewrite with the same bytes
        self.base_etag, self.base_hash = etag, digest
        await self._versions.put(etag, data)
        self.snapshotter.stored_hash = digest
        await self._log.set_base(self.key, etag, digest, data)
        # Storage holds theirs; unless the merge result exports to the same bytes (then the
        # write is skipped), it must hold the merged document: e.g. ours after invalid JSON.
        self.snapshotter.changed()
        if conflicts:
            copy = await self._save_conflict_copy(resource, data, who)
            self.conflict_copies.append(copy)
            message = {"type": "conflict_copy", "path": copy, "conflicts": conflicts[:20]}
            self._outbox.put_nowait(_Outgoing(data=raw_message(message)))
        return conflicts

    async def _save_conflict_copy(self, resource: Resource, data: bytes, who: str) -> str:
        """Keep the external version beside the original; never lose it."""
        token = self.editor_token() or self.any_token()
        try:
            created = await create_copy_beside(self._storage, token, resource, who, data)
            log.warning("conflict copy written", extra=kv(room=self.key, path=created.path))
            return created.path
        except StorageError as exc:
            # No right to create beside the file (e.g. a single shared file): keep it in the
            # hub's data dir instead, and say where.
            name = conflict_copy_name(resource.name, who, datetime.now(UTC))
            fallback = self._settings.state_dir / "conflicts" / name
            fallback.parent.mkdir(parents=True, exist_ok=True)
            fallback.write_bytes(data)
            log.error(
                "conflict copy kept by the hub",
                extra=kv(room=self.key, path=str(fallback), error=repr(exc)),
            )
            return str(fallback)

    def export(self) -> bytes:
        """The live document as file bytes (raises ``ExportError``)."""
        return self._export()

    async def merge_incoming(
        self, data: bytes, who: str, based_on: str | None = None, base: bytes | None = None
    ) -> tuple[list[str], str | None]:
        """An out-of-band writer's whole new version: merge it in, then write the result.

        ``based_on`` is the etag of the version the writer started from; if we still know it,
        it is the merge base, else the current stored version is.
        """
        async with self.snapshotter.lock:
            resource = await self._merge_external_locked()  # first what landed in storage
            copies_before = len(self.conflict_copies)
            stored_etag, stored_hash = self.base_etag, self.base_hash
            stored = await self._base_bytes()
            if base is None:
                known = await self._versions.get(based_on) if based_on else None
                base = stored if known is None else known
            conflicts = await self._merge_version(resource, data, stored_etag, who, base=base)
            # storage still holds ``stored``: the next snapshot writes the merged doc over it
            self.base_etag, self.base_hash = stored_etag, stored_hash
            await self._versions.put(stored_etag, stored)
            self.snapshotter.stored_hash = stored_hash
            await self._log.set_base(self.key, stored_etag, stored_hash, stored)
        await self.snapshotter.flush()
        copy = self.conflict_copies[-1] if len(self.conflict_copies) > copies_before else None
        return conflicts, copy

    # -- lifecycle ---------------------------------------------------------------------------

    async def close(self) -> None:
        """Final snapshot, compaction, stop. Clients must already be gone."""
        if self._closing:
            return
        self._closing = True
        if self._maintainer is not None:
            self._maintainer.cancel()
            await asyncio.gather(self._maintainer, return_exceptions=True)
        status = await self.snapshotter.close()
        if status is SaveStatus.FAILED:
            log.warning(
                "final snapshot failed; edits stay in the update log", extra=kv(room=self.key)
            )
        await self.lock.release(self.editor_token())
        if self._log_ready is not None:
            await asyncio.gather(self._log_ready, return_exceptions=True)
        try:
            base = await self._base_bytes()
            await self._log.set_base(self.key, self.base_etag, self.base_hash, base)
        except Exception as exc:  # only a merge base for later: storage has the document
            log.warning("could not record the merge base", extra=kv(room=self.key, error=repr(exc)))
        await self._versions.remove_all()
        self._outbox.put_nowait(None)
        await self._dispatcher
        if self._tail_updates:
            try:
                await self.compact()
            except Exception as exc:
                log.warning("final compaction failed", extra=kv(room=self.key, error=repr(exc)))
        self.doc.unobserve(self._subscription)


def _serialize_and_hash(kind: DocumentKind, content: Any) -> tuple[bytes, str]:
    data = kind.serialize(content)
    return data, content_hash(data)


def awareness_client_ids(payload: bytes) -> list[int]:
    """Client ids named in an awareness update (varUint count, then id/clock/state each)."""
    decoder = Decoder(payload)
    count = decoder.read_var_uint()
    ids = []
    for _ in range(count):
        ids.append(decoder.read_var_uint())
        decoder.read_var_uint()  # clock
        decoder.read_var_string()  # state JSON
    return ids
