"""A room: the live Y document of one storage resource and the clients editing it.

Ordering is the heart of durability here. Every change to the doc, whoever made it, is seen by
one doc observer and put on the room's *outbox* together with any direct replies (SyncStep2).
A single dispatcher drains the outbox in order: it appends all updates of a batch to the
update log in one commit, and only then sends the batch. So nothing reaches a client before it
is durable, and a SyncStep2 computed after an update never overtakes that update's commit.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jupyter_ydoc.ybasedoc import YBaseDoc
from pycrdt import (
    Awareness,
    Doc,
    TransactionEvent,
    YSyncMessageType,
    create_awareness_message,
    create_sync_message,
    create_update_message,
    merge_updates,
)

from collab_server.awareness import check_update, clocks, parse_entries
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
    parse_command,
    raw_message,
    sync_step2_message,
)
from collab_server.scaleout.cluster import WriterMeta
from collab_server.scaleout.replica import RoomReplica
from collab_server.settings import Settings
from collab_server.snapshotter import SaveStatus, Snapshotter
from collab_server.supervise import supervised
from collab_server.update_log import UpdateLog
from collab_server.versions import StoredVersions
from crdt.documents import DocumentKind, content_hash
from crdt.updates import refuse
from storage_bridge.base import Storage
from storage_bridge.errors import Locked, PreconditionFailed, StorageError
from storage_bridge.naming import conflict_copy_name
from storage_bridge.types import Resource, ResourceId

log = get_logger("room")

_EMPTY_UPDATE = b"\x00\x00"
_LARGE_MESSAGE = 1 << 20
_REFUSED_MAX = 1 << 20  # a viewer's refused typing kept to take it back; beyond: reload


class _HubOrigin:
    """Marks changes the hub makes to the doc itself (state map after a save)."""


HUB_STATE = _HubOrigin()  # state map writes: not a content change
HUB_MERGE = _HubOrigin()  # external versions merged in: a content change for everyone
# An update another hub instance published (scale-out, ARCHITECTURE §9): logged here and sent
# to this instance's clients like any edit, but never published again (Hocuspocus #335/#696).
REMOTE = _HubOrigin()


@dataclass(slots=True)
class _Outgoing:
    data: bytes  # the encoded frame (empty for doc updates and awareness: framed per batch)
    update: bytes | None = None  # a doc update: logged before anything of its batch is sent
    to: Connection | None = None  # direct reply; otherwise a broadcast
    exclude: Connection | None = None
    awareness_ids: list[int] | None = None  # awareness to broadcast (coalesced per batch)
    logged: asyncio.Future[None] | None = None  # a barrier: resolved once its batch is logged
    publish: bool = False  # a doc update to publish to the other instances once logged


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
        base_hash: str,
        base_content: bytes | None,  # None: the log lost it (then external versions are copies)
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
        self._awareness_owner: dict[int, Connection] = {}
        self._barriers: set[asyncio.Future[None]] = set()  # waiting for the log (_logged)
        self.failed = False  # a task of the room failed: it is being dropped, clients reload
        self.base_etag = base_etag
        self.base_hash = base_hash
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
        self.conflict_copies: list[str | None] = []  # storage paths (None: kept by the hub)
        # Recent stored versions by etag: the merge base for external writers. The loaded one
        # is remembered at once; a big one reaches its file while the first client syncs.
        self._versions = StoredVersions(settings.state_dir / "versions", key)
        if base_content is not None:
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
            on_failure=self._task_failed,
        )
        self._subscription = doc.observe(self._on_doc_update)
        self._dispatcher = self._supervised(self._dispatch_loop(), "room.dispatcher")
        self.on_fatal: Callable[[Room], Awaitable[None]] | None = None
        # JSON raw commands ("work_on_copy", "merge_back") involve other rooms: the hub answers.
        # A big one-off message (a full SyncStep2) was queued: the hub trims the heap after it.
        self.on_large_send: Callable[[], None] | None = None
        self.command_handler: (
            Callable[[Room, Connection, dict[str, Any]], Awaitable[dict[str, Any]]] | None
        ) = None
        # Scale-out (ARCHITECTURE §9); single instance: no replica, and this room writes.
        self.replica: RoomReplica | None = None
        self.writes_storage = True  # this instance holds the room's writer lease
        self.on_awareness: Callable[[bytes], None] | None = None  # local awareness, to publish
        self.on_snapshot: Callable[[str, str], None] | None = None  # (etag, hash) after a write
        self.on_close: Callable[[], Awaitable[None]] | None = None  # after the final snapshot

    # -- supervision -------------------------------------------------------------------------

    def _supervised(self, coro: Coroutine[Any, Any, None], task: str) -> asyncio.Task[None]:
        return supervised(
            coro,
            task=task,
            failures=self._metrics.task_failures,
            on_failure=self._task_failed,
            room=self.key,
        )

    def _task_failed(self, exc: BaseException) -> None:
        """A task of this room raised (logged and counted by ``supervised``): fail the room."""
        if self.failed or self._closing:
            return
        supervised(
            self.fail(CloseCode.RECONNECT, "room failed; reconnect to reload it"),
            task="room.fail",
            failures=self._metrics.task_failures,
            room=self.key,
        )

    async def fail(self, code: int, reason: str) -> None:
        """Stop this room without writing anything and let its clients reload it from the log.

        Whatever made the room fail may have left the doc ahead of the log (updates applied
        but not logged), so nothing of it is snapshotted; the clients still hold their edits
        and resend them (SyncStep2) to the room reloaded from the log when they reconnect.
        """
        if self.failed:
            return
        self.failed = True
        for barrier in list(self._barriers):
            if not barrier.done():
                barrier.set_exception(RoomClosed("the room failed before its log caught up"))
        self._metrics.room_failures.inc()
        log.error("room failed; closing its clients", extra=kv(room=self.key, reason=reason))
        self.snapshotter.stop()
        if self._maintainer is not None:
            self._maintainer.cancel()
        for client in list(self.clients):
            client.close_now(code, reason)
        if self.on_fatal is not None:
            await self.on_fatal(self)
        self._outbox.put_nowait(None)
        self.doc.unobserve(self._subscription)

    # -- doc changes -------------------------------------------------------------------------

    def _on_doc_update(self, event: TransactionEvent) -> None:
        update: bytes = event.update
        if update == _EMPTY_UPDATE:
            return
        origin = self._origin
        exclude = origin if isinstance(origin, Connection) else None
        # framed in _fan_out: a batch of several updates goes out as one merged frame
        self._outbox.put_nowait(
            _Outgoing(data=b"", update=update, exclude=exclude, publish=origin is not REMOTE)
        )
        self._doc_bytes += len(update)
        self._metrics.updates.inc()
        self._metrics.update_bytes.inc(len(update))
        if origin is not HUB_STATE and self.writes_storage:
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
        for item in items:  # everything queued before a barrier is in the log now
            if item.logged is not None and not item.logged.done():
                item.logged.set_result(None)
        if self.replica is not None:
            published = [i.update for i in items if i.publish and i.update is not None]
            if published:  # durable here first: what crosses is never more than we logged
                self.replica.publish(
                    published[0] if len(published) == 1 else merge_updates(*published)
                )
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
        meta = self.awareness.meta
        known = [i for i in sorted(aware) if i in meta]  # belt and braces: no clock, no entry
        if known:
            payload = self.awareness.encode_awareness_update(known)
            frame = create_awareness_message(payload)
            for client in self.clients:
                client.send(frame)  # to the sender too: JupyterLab's keep-alive
        for out in items:
            if out.update is not None or out.awareness_ids or out.logged is not None:
                continue
            if out.to is not None:
                out.to.send(out.data)
            else:
                for client in self.clients:
                    if client is not out.exclude:
                        client.send(out.data)

    async def _logged(self) -> None:
        """Wait until every change made to the doc so far is in the update log.

        A merged external version changes the doc through the outbox like any edit; before
        the log may record that version as the base (or a writer be told "merged"), those
        changes must be durable: after a crash in between, the restarted room would hold the
        new base but not the merge, and its next snapshot would drop the external edits.
        """
        if self.failed or self._dispatcher.done():
            raise RoomClosed("the room's log has stopped")
        done = asyncio.get_running_loop().create_future()
        self._barriers.add(done)
        done.add_done_callback(self._barriers.discard)
        self._outbox.put_nowait(_Outgoing(data=b"", logged=done))
        await done

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
        await self.fail(CloseCode.INTERNAL, "update log unavailable")
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
        elif self.read_only_reason == "locked" and not self.writes_storage:
            # mirrored from the writer instance (§9): its holder is in the state map
            holder = str(self.view.ystate.get("locked_by") or "")
            conn.send(raw_message(self._lock_message(LockState.FOREIGN, holder)))
        elif self.read_only_reason is not None:
            conn.send(raw_message({"type": "read_only", "reason": self.read_only_reason}))

    def remove_client(self, conn: Connection) -> None:
        self.clients.discard(conn)
        if conn.can_write and not any(c.can_write for c in self.clients):
            # With CS3 a snapshot needs an editor's token, and tokens expire: write now,
            # while the last editor's token is fresh, rather than at the end of the grace.
            self.snapshotter.flush_soon()
        for client_id in conn.awareness_ids:
            if self._awareness_owner.get(client_id) is conn:
                del self._awareness_owner[client_id]
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
                command = parse_command(
                    frame.text,
                    max_bytes=self._settings.max_command_bytes,
                    max_depth=self._settings.max_command_depth,
                )
                conn.send(raw_message(await self.command_handler(self, conn, command)))
        elif isinstance(frame, QueryAwarenessFrame):
            ids = list(self.awareness.states)
            if ids:
                conn.send(create_awareness_message(self.awareness.encode_awareness_update(ids)))

    def _apply_client_update(self, conn: Connection, update: bytes) -> None:
        if update == _EMPTY_UPDATE:
            return
        if not conn.can_write or self.read_only_reason is not None:
            self._refuse_edit(conn, update)
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

    def _refuse_edit(self, conn: Connection, update: bytes) -> None:
        """A viewer's (or a locked room's) update: refused, and taken off the client's screen.

        Updates that change nothing are not edits: a viewer's SyncStep2 carries its whole
        delete set on every connect. A real edit is already on the client's screen, and a
        stock JupyterLab client ignores our raw messages, so the hub resets the client: an
        edit that only adds (typing) is undone by sending that client alone the deletion of
        what it added; its doc then shows the room's content again, live, without a reload.
        An edit that deletes room content cannot be undone that way (Y cannot revive deleted
        items), so that socket is closed with a reloadable 1003: the client disposes its
        model and offers Reload. With our labextension a viewer's editor is read-only.
        """
        # Analysed together with this socket's earlier refused updates: Y numbers a client's
        # items in sequence, and the room never got the earlier ones, so alone a later update
        # has gaps that hide what it deletes.
        merged = update if conn.refused is None else merge_updates(conn.refused, update)
        try:
            refusal = refuse(merged, self.doc)
        except ValueError as exc:
            raise ProtocolError(str(exc)) from exc
        if not refusal.changes:
            return
        conn.refused = merged if len(merged) <= _REFUSED_MAX else None
        reason = self.read_only_reason or "read_only"
        self._metrics.refused_updates.labels(reason).inc()
        message = (
            "this file is locked by another application"
            if reason == "locked"
            else "you can view this document but not edit it"
        )
        conn.send(raw_message({"type": "refused", "reason": reason, "message": message}))
        if conn.can_write:
            # An editor of a room another application locked: its edits are not taken back.
            # They stay on its screen, and when the lock comes back the room asks every
            # editor for what it has (SyncStep1) and merges them then (_on_lock_change).
            return
        if refusal.undo is not None and conn.refused is not None:
            conn.send(create_update_message(refusal.undo))
        # An update that deletes room content (or writes a key of a map, which replaces an
        # item, e.g. the state map JupyterLab itself writes) cannot be undone in Y. Closing
        # the socket (a reloadable 1003) put a dialog in front of every viewer whose client
        # touched the state map (measured, tests/e2e), so it is refused and left: the viewer's
        # screen differs there until its next reload; typing is taken back above.

    def _apply_awareness(self, conn: Connection, payload: bytes) -> None:
        checked = check_update(
            payload,
            meta=self.awareness.meta,
            owned=conn.awareness_ids,
            owned_by_others=self._awareness_owner.keys() - conn.awareness_ids,
            max_clients=self._settings.max_awareness_clients,
            max_state_bytes=self._settings.max_awareness_state_bytes,
        )
        if checked.payload is None:
            return
        touched = checked.named
        before = clocks(self.awareness, touched)
        try:
            self.awareness.apply_awareness_update(checked.payload, conn)
        except (ValueError, RecursionError) as exc:  # a state that is not JSON
            raise ProtocolError(f"malformed awareness state: {exc}") from exc
        for client_id in checked.claimed:
            conn.awareness_ids.add(client_id)
            self._awareness_owner[client_id] = conn
        after = clocks(self.awareness, touched)
        changed = [i for i in touched if after[i] is not None and after[i] != before[i]]
        # Echo to everyone including the sender: JupyterLab drops a socket silent for 30 s.
        if changed:
            self._outbox.put_nowait(_Outgoing(data=b"", awareness_ids=changed))
            if self.on_awareness is not None:
                self.on_awareness(self.awareness.encode_awareness_update(changed))

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

    async def _base_bytes(self) -> bytes | None:
        """What storage held when we last read or wrote it (``base_etag``); None if unknown."""
        data = await self._versions.get(self.base_etag)
        if data is not None:
            return data
        # Not kept (a log from before durable bases): storage has it unless someone wrote.
        data, etag = await self._storage.read(self.any_token(), self.resource_id)
        if etag == self.base_etag or content_hash(data) == self.base_hash:
            return data
        return None

    async def _write_snapshot(self, data: bytes, digest: str) -> None:
        token = self.editor_token()
        if token is None:
            raise Locked("no editor has joined this room yet")
        if self.lock.state in (LockState.NONE, LockState.FOREIGN):
            # Never write without our lock where storage has locks: retry once it is back.
            raise Locked(f"the room does not hold the lock ({self.lock.state.value})")
        # Durable before the write: if the hub dies before set_base below, the restarted
        # room recognises these bytes in storage as its own snapshot.
        await self._log.remember_base(self.key, digest, data)
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
        await self._log.set_base(self.key, etag, digest)  # the bytes: remembered above
        self._set_state(dirty=False, hash=digest)
        if self.on_snapshot is not None:
            self.on_snapshot(etag, digest)

    async def save(self) -> SaveStatus:
        if self.read_only_reason is not None:
            return SaveStatus.SKIPPED
        return await self.snapshotter.flush()

    # -- locks and external writers -----------------------------------------------------------

    async def start(self) -> None:
        """Take the lock and catch up with changes made while the room was closed."""
        if self.writes_storage:
            await self._lock_tick()
            try:
                await self.check_external()
            except StorageError as exc:
                log.warning("external check failed", extra=kv(room=self.key, error=repr(exc)))
        self._maintainer = self._supervised(self._maintain(), "room.watcher")

    async def _maintain(self) -> None:
        interval = self._settings.watch_interval
        while not self._closing:
            await asyncio.sleep(interval)
            if not self.writes_storage:
                continue  # another instance holds the writer lease (§9)
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
        if change.state is LockState.HELD:
            # Editors may have typed while the room was locked (refused, kept on their screens):
            # their SyncStep2 replies bring those edits in now.
            ask = create_sync_message(self.doc)
            for client in self.clients:
                if client.can_write:
                    client.send(ask)
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
        When that is unknown, nothing is merged: guessing a base made cells created since
        look inserted twice and cells deleted since come back. The version is kept as a copy.
        """
        digest = content_hash(data)
        if digest != (self.base_hash if base is None else content_hash(base)):
            if base is None:
                base = await self._base_bytes()
            if base is None:
                conflicts = ["the version this room last matched is unknown: kept as a copy"]
                log.error("merge base unknown; external version kept", extra=kv(room=self.key))
            else:
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
        await self._logged()  # the merge is durable before the log calls theirs the base
        self.base_etag, self.base_hash = etag, digest
        await self._versions.put(etag, data)
        self.snapshotter.stored_hash = digest
        await self._log.set_base(self.key, etag, digest, data)
        # Storage holds theirs; unless the merge result exports to the same bytes (then the
        # write is skipped), it must hold the merged document: e.g. ours after invalid JSON.
        self.snapshotter.changed()
        if conflicts:
            copy = await self._save_conflict_copy(resource, data, who)
            self.conflict_copies.append(copy.path if copy else None)
            await self._announce_copy(copy, conflicts)
        return conflicts

    def _writer_tokens(self, owner: str) -> list[str]:
        """Tokens to create a file beside the document with: the owner's first (a sharee of
        a single file may not create in the owner's folder), then every other editor's."""
        editors = sorted(
            (c for c in self.clients if c.can_write),
            key=lambda c: (c.user.id != owner, c.id),  # deterministic, not a set's order
        )
        tokens = [c.token for c in editors]
        tokens += [t for t in (self._last_editor_token, self._any_token) if t is not None]
        return list(dict.fromkeys(tokens))

    async def _save_conflict_copy(
        self, resource: Resource, data: bytes, who: str
    ) -> Resource | None:
        """Keep the external version beside the original; never lose it.

        Returns the copy in storage, or None when no token of the room may create it there:
        then the hub keeps it in its data dir (never a path to send to a client).
        """
        failures = []
        for token in self._writer_tokens(resource.owner):
            try:
                created = await create_copy_beside(self._storage, token, resource, who, data)
            except StorageError as exc:
                failures.append(repr(exc))
                continue
            log.warning("conflict copy written", extra=kv(room=self.key, path=created.path))
            return created
        name = conflict_copy_name(resource.name, who, datetime.now(UTC))
        fallback = self._settings.state_dir / "conflicts" / name
        await asyncio.to_thread(_write_file, fallback, data)
        log.error(
            "no editor may create the conflict copy in storage; the hub keeps it",
            extra=kv(room=self.key, path=str(fallback), error="; ".join(failures)),
        )
        return None

    async def _announce_copy(self, copy: Resource | None, conflicts: list[str]) -> None:
        """Tell each client where the copy is, as *it* sees it (owner and sharees see the
        same file under different paths)."""
        base = {"type": "conflict_copy", "conflicts": conflicts[:20]}
        for client in list(self.clients):
            path: str | None = None
            if copy is not None:
                try:
                    path = (await self._storage.stat(client.token, copy.id)).path
                except StorageError:
                    path = None  # this client cannot see it (e.g. a viewer of one file)
            if path is not None:
                message = {**base, "path": path, "fileId": copy.id.to_file_id()}  # type: ignore[union-attr]
            else:
                message = {
                    **base,
                    "path": None,
                    "kept_by": "storage" if copy is not None else "hub",
                    "message": "the other version was kept where you cannot open it;"
                    " an editor of the folder can",
                }
            client.send(raw_message(message))

    def export(self) -> bytes:
        """The live document as file bytes (raises ``ExportError``)."""
        return self._export()

    async def merge_incoming(
        self, data: bytes, who: str, based_on: str | None = None, base: bytes | None = None
    ) -> tuple[list[str], str | None]:
        """An out-of-band writer's whole new version: merge it in, then write the result.

        ``based_on`` is the etag of the version the writer started from: the merge base. A
        writer that names no version overwrites the current one (it is the base). One that
        names a version the room no longer knows is refused with ``PreconditionFailed``
        (HTTP 412): merged against another base, what it lacks would read as deletions.
        """
        async with self.snapshotter.lock:
            resource = await self._merge_external_locked()  # first what landed in storage
            copies_before = len(self.conflict_copies)
            stored_etag, stored_hash = self.base_etag, self.base_hash
            stored = await self._base_bytes()
            if stored is None:  # the external check just read it: only a lost race gets here
                stored, stored_etag = await self._storage.read(self.any_token(), self.resource_id)
                stored_hash = content_hash(stored)
            if base is None and based_on and based_on.strip('"') != stored_etag.strip('"'):
                # HTTP strips the quotes some storages (reva) put in their etags
                base = await self._versions.get(based_on) or await self._versions.get(
                    f'"{based_on}"'
                )
                if base is None:
                    raise PreconditionFailed(
                        f"unknown base version {based_on!r}: read the file again, then write"
                    )
            conflicts = await self._merge_version(resource, data, stored_etag, who, base=base)
            # storage still holds ``stored``: the next snapshot writes the merged doc over it
            self.base_etag, self.base_hash = stored_etag, stored_hash
            await self._versions.put(stored_etag, stored)
            self.snapshotter.stored_hash = stored_hash
            await self._log.set_base(self.key, stored_etag, stored_hash, stored)
        await self.snapshotter.flush()
        copy = self.conflict_copies[-1] if len(self.conflict_copies) > copies_before else None
        return conflicts, copy

    # -- across instances (ARCHITECTURE §9) ---------------------------------------------------

    @property
    def cluster_id(self) -> str:
        return self.key

    def apply_remote(self, update: bytes) -> None:
        """Another instance's update (or the room's state from Redis)."""
        if self._closing:
            return
        previous, self._origin = self._origin, REMOTE
        try:
            self.doc.apply_update(update)
        except Exception as exc:  # not ours to crash on: the reader serves every room
            self._metrics.refused_updates.labels("bad_remote").inc()
            log.error("bad update from another instance", extra=kv(room=self.key, error=repr(exc)))
        finally:
            self._origin = previous
        if not self.writes_storage:
            self._mirror_writer_lock()

    def _mirror_writer_lock(self) -> None:
        """Only the writer instance sees storage's lock; it records a foreign holder in the
        doc's state map (``locked_by``), which reaches every instance: the others' clients are
        refused and told, as the writer's are, and get the room back when the lock goes."""
        holder = str(self.view.ystate.get("locked_by") or "")
        if holder and self.read_only_reason is None:
            self.read_only_reason = "locked"
            message = self._lock_message(LockState.FOREIGN, holder)
            self._outbox.put_nowait(_Outgoing(data=raw_message(message)))
        elif not holder and self.read_only_reason == "locked":
            self.read_only_reason = None
            message = self._lock_message(LockState.HELD, "")
            self._outbox.put_nowait(_Outgoing(data=raw_message(message)))
            ask = create_sync_message(self.doc)  # what editors typed meanwhile comes in now
            for client in self.clients:
                if client.can_write:
                    client.send(ask)

    def full_state(self) -> bytes:
        return self.doc.get_update()

    def apply_remote_awareness(self, payload: bytes) -> list[int]:
        try:
            ids = [entry.client for entry in parse_entries(payload)]
            before = clocks(self.awareness, set(ids))
            self.awareness.apply_awareness_update(payload, REMOTE)
        except (ProtocolError, ValueError, RecursionError) as exc:
            log.warning(
                "bad awareness from another instance", extra=kv(room=self.key, error=str(exc))
            )
            return []
        after = clocks(self.awareness, set(ids))
        changed = [i for i in ids if after[i] is not None and after[i] != before[i]]
        if changed:
            self._outbox.put_nowait(_Outgoing(data=b"", awareness_ids=changed))
        return ids

    def drop_awareness(self, client_ids: list[int]) -> None:
        """Cursors of an instance that died: gone for this instance's clients too."""
        present = [i for i in client_ids if i in self.awareness.states]
        if present:
            self.awareness.remove_awareness_states(present, REMOTE)
            self._outbox.put_nowait(_Outgoing(data=b"", awareness_ids=present))

    def wants_to_write(self) -> bool:
        return self.editor_token() is not None and not self._closing

    def become_writer(self, meta: WriterMeta) -> None:
        """This instance now holds the writer lease: adopt what the last writer left."""
        self.writes_storage = True
        if self.read_only_reason == "locked":
            self.read_only_reason = None  # mirrored from the old writer: our lock keeper decides
        if meta.lock_id:
            self.lock.adopt(meta.lock_id)
        if meta.base_etag and meta.base_hash:
            self.base_etag, self.base_hash = meta.base_etag, meta.base_hash
            self.snapshotter.stored_hash = meta.base_hash
        self.snapshotter.changed()  # what storage lacks (if anything) is written soon
        if self._maintainer is not None:  # started: take the lock now, not a watch tick later
            self._supervised(self._take_lock_now(), "room.lock")
        log.info("room writer", extra=kv(room=self.key, lock=meta.lock_id or ""))

    async def _take_lock_now(self) -> None:
        try:
            await self._lock_tick()
        except StorageError as exc:  # the watcher tries again on its next tick
            log.info("lock on becoming writer failed", extra=kv(room=self.key, error=repr(exc)))

    def stop_writing(self) -> None:
        self.writes_storage = False
        self.lock.stand_down()
        log.info("room no longer writer", extra=kv(room=self.key))

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
        if self.writes_storage:
            await self.lock.release(self.editor_token())
        if self._log_ready is not None:
            await asyncio.gather(self._log_ready, return_exceptions=True)
        # (the merge base is already in the log: every base change records its bytes)
        await self._versions.remove_all()
        self._outbox.put_nowait(None)
        await asyncio.gather(self._dispatcher, return_exceptions=True)  # failures: supervised
        if self._tail_updates:
            try:
                await self.compact()
            except Exception as exc:
                log.warning("final compaction failed", extra=kv(room=self.key, error=repr(exc)))
        self.doc.unobserve(self._subscription)
        if self.on_close is not None:
            await self.on_close()


def _write_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _serialize_and_hash(kind: DocumentKind, content: Any) -> tuple[bytes, str]:
    data = kind.serialize(content)
    return data, content_hash(data)
