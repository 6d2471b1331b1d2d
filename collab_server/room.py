"""A room: the live Y document of one storage resource and the clients editing it.

``Room`` holds the doc, its clients and awareness, the origins of changes, and the protocol
each client speaks; it closes. Its two other parts are given to it by the factory
(``loading.build_room``): the ``RoomOutbox`` (log durably, then fan out, outbox.py) and the
``StorageSync`` (snapshots, lock, watcher, external merges, storage_sync.py). What it asks of
the hub goes through ``RoomHooks`` (room_hooks.py).

"What happens when a client sends an update": ``receive`` → ``_apply_client_update`` → the
doc observer ``_on_doc_update`` → ``RoomOutbox.update`` → logged, then sent (ARCHITECTURE §3).

(A little over ~400 lines: besides the protocol, the room answers for its parts to the hub,
``start``/``save``/``merge_incoming``/``check_external``/``lock_id``/``read_only_message``, so
that the hub and room_ops never reach into the storage side.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from jupyter_ydoc.ybasedoc import YBaseDoc
from pycrdt import (
    Awareness,
    Doc,
    TransactionEvent,
    YSyncMessageType,
    create_awareness_message,
    create_sync_message,
)

from collab_server.awareness import RoomAwareness
from collab_server.connection import Connection
from collab_server.lock_keeper import LockChange, LockState
from collab_server.logs import get_logger, kv
from collab_server.metrics import HubMetrics
from collab_server.outbox import RemoteOrigin, RoomOutbox
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
from collab_server.refusals import refuse_edit
from collab_server.room_hooks import (
    CommandRequest,
    LargeSend,
    RoomClosedEvent,
    RoomFailed,
    RoomHooks,
    SnapshotWritten,
)
from collab_server.room_key import RoomKey
from collab_server.scaleout.writer_meta import WriterMeta
from collab_server.settings import Settings
from collab_server.snapshotter import SaveStatus
from collab_server.storage_sync import MergeResult, StorageSync
from collab_server.supervise import supervised
from crdt.documents import DocumentKind
from storage_bridge.types import ResourceId

log = get_logger("room")

_EMPTY_UPDATE = b"\x00\x00"
_LARGE_MESSAGE = 1 << 20


class _HubOrigin:
    """Marks changes the hub makes to the doc itself (state map after a save)."""


HUB_STATE = _HubOrigin()  # state map writes: not a content change
HUB_MERGE = _HubOrigin()  # external versions merged in: a content change for everyone
REMOTE = RemoteOrigin()  # another hub instance's change (scale-out, ARCHITECTURE §10)


def lock_message(state: LockState, holder: str, *, lost: bool = False) -> dict[str, Any]:
    return {"type": "lock", "state": state.value, "holder": holder, "lost": lost}


class Room:
    def __init__(
        self,
        *,
        key: RoomKey,
        kind: DocumentKind,
        resource_id: ResourceId,
        lineage: str,
        doc: Doc[Any],
        awareness: Awareness,
        clients: set[Connection],  # the same set the outbox's broadcaster sends to
        outbox: RoomOutbox,
        sync: Callable[[Room], StorageSync],  # builds the storage side (it needs this room)
        hooks: RoomHooks,
        settings: Settings,
        metrics: HubMetrics,
        initial_token: str,
        initial_token_can_write: bool,
    ) -> None:
        self.room_key = key
        self.key = str(key)
        self.kind = kind
        self.resource_id = resource_id
        self.lineage = lineage
        self.doc = doc
        self.view: YBaseDoc = kind.bind(doc)
        self.awareness = awareness
        self._clients = clients
        self.presence = RoomAwareness(
            awareness,
            max_clients=settings.max_awareness_clients,
            max_state_bytes=settings.max_awareness_state_bytes,
        )
        self.failed = False  # a task of the room failed: it is being dropped, clients reload
        self.read_only_reason: str | None = None
        self._hooks = hooks
        self._settings = settings
        self._metrics = metrics
        self._origin: object = None
        self._last_editor_token: str | None = initial_token if initial_token_can_write else None
        self._any_token = initial_token
        self._closing = False
        self._dirty_pending = False
        self.outbox = outbox
        self.sync = sync(self)
        self._subscription = doc.observe(self._on_doc_update)
        outbox.start(self.supervise, self._log_unavailable)

    # -- supervision -------------------------------------------------------------------------

    def supervise(self, coro: Coroutine[Any, Any, None], task: str) -> asyncio.Task[None]:
        return supervised(
            coro,
            task=task,
            failures=self._metrics.task_failures,
            on_failure=self.task_failed,
            room=self.key,
        )

    def snapshot_written(self, etag: str, digest: str, lock_id: str | None) -> None:
        self._hooks.snapshot_written(SnapshotWritten(self, etag, digest, lock_id))

    def task_failed(self, exc: BaseException) -> None:
        """A task of this room raised (logged and counted by ``supervised``): fail the room."""
        if self.failed or self._closing:
            return
        supervised(
            self.fail(CloseCode.RECONNECT, "room failed; reconnect to reload it"),
            task="room.fail",
            failures=self._metrics.task_failures,
            room=self.key,
        )

    async def _log_unavailable(self) -> None:
        # Clients keep their edits locally and resend them (SyncStep2) when they reconnect.
        await self.fail(CloseCode.INTERNAL, "update log unavailable")

    async def fail(self, code: int, reason: str) -> None:
        """Stop this room without writing anything and let its clients reload it from the log.

        Whatever made the room fail may have left the doc ahead of the log (updates applied
        but not logged), so nothing of it is snapshotted; the clients still hold their edits
        and resend them (SyncStep2) to the room reloaded from the log when they reconnect.
        """
        if self.failed:
            return
        self.failed = True
        self.outbox.fail_barriers()
        self._metrics.room_failures.inc()
        log.error("room failed; closing its clients", extra=kv(room=self.key, reason=reason))
        self.sync.stop()
        for client in list(self._clients):
            client.close_now(code, reason)
        await self._hooks.failed(RoomFailed(self, code, reason))
        self.outbox.stop()
        self.doc.unobserve(self._subscription)

    # -- doc changes -------------------------------------------------------------------------

    def _on_doc_update(self, event: TransactionEvent) -> None:
        update: bytes = event.update
        if update == _EMPTY_UPDATE:
            return
        origin = self._origin
        self.outbox.update(update, origin)
        if origin is not HUB_STATE:
            if not self.sync.dirty and not self._dirty_pending:
                # A doc cannot be written from inside its own observer: defer the flag.
                self._dirty_pending = True
                asyncio.get_running_loop().call_soon(self._mark_dirty)
            self.sync.changed()

    def _mark_dirty(self) -> None:
        self._dirty_pending = False
        if self.view.dirty is not True and not self._closing:
            self.set_state(dirty=True)

    def _apply(self, origin: object, change: Callable[[], Any]) -> Any:
        previous, self._origin = self._origin, origin
        try:
            return change()
        finally:
            self._origin = previous

    def set_state(self, **values: Any) -> None:
        def write() -> None:
            with self.doc.transaction():
                for name, value in values.items():
                    self.view.ystate[name] = value

        self._apply(HUB_STATE, write)

    def merge_into(self, base: bytes, data: bytes) -> list[str]:
        conflicts: list[str] = self._apply(
            HUB_MERGE, lambda: self.kind.merge_into(self.view, base, data)
        )
        return conflicts

    def apply_remote(self, update: bytes, origin: RemoteOrigin = REMOTE) -> None:
        """An update another hub instance logged and published: sent to our clients only."""
        if self._closing:
            return
        try:
            self._apply(origin, lambda: self.doc.apply_update(update))
        except Exception as exc:  # not ours to crash on: the stream reader serves every room
            self._metrics.refused_updates.labels("bad_remote").inc()
            log.error("bad update from another instance", extra=kv(room=self.key, error=repr(exc)))
        if not self.sync.active:
            self._mirror_writer_lock()

    # -- across instances (scale-out, ARCHITECTURE §10) ------------------------------------------

    @property
    def cluster_id(self) -> str:
        return self.key

    def full_state(self) -> bytes:
        return self.doc.get_update()

    def apply_remote_awareness(self, payload: bytes) -> list[int]:
        """Another instance's awareness update: applied and sent here, never re-published."""
        try:
            ids, changed = self.presence.apply_remote(payload, REMOTE)
        except ProtocolError as exc:
            log.warning(
                "bad awareness from another instance", extra=kv(room=self.key, error=str(exc))
            )
            return []
        if changed:
            self.outbox.awareness(changed, remote=True)
        return ids

    def drop_awareness(self, client_ids: list[int]) -> None:
        """Cursors of an instance that died: gone for this instance's clients too."""
        present = [i for i in client_ids if i in self.awareness.states]
        if present:
            self.awareness.remove_awareness_states(present, REMOTE)
            self.outbox.awareness(present, remote=True)

    def wants_to_write(self) -> bool:
        """Whether this instance may compete for the writer lease: storage needs an editor's
        token, so an instance with only viewers (or none) leaves it to one that has one."""
        return self.editor_token() is not None and not self._closing

    async def become_writer(self, meta: WriterMeta) -> None:
        if self.read_only_reason == "locked":
            self.read_only_reason = None  # mirrored from the old writer: our lock keeper decides
        await self.sync.activate(meta.lock_id, meta.base_etag, meta.base_hash)

    def stop_writing(self) -> None:
        self.sync.deactivate()

    def _mirror_writer_lock(self) -> None:
        """Only the writer instance sees storage's lock; it records a foreign holder in the
        doc's state map (``locked_by``), which reaches every instance: the others' clients are
        refused and told, as the writer's are, and get the room back when the lock goes."""
        holder = str(self.view.ystate.get("locked_by") or "")
        if holder and self.read_only_reason is None:
            self.read_only_reason = "locked"
            self.outbox.message(raw_message(lock_message(LockState.FOREIGN, holder)))
        elif not holder and self.read_only_reason == "locked":
            self.read_only_reason = None
            self.outbox.message(raw_message(lock_message(LockState.HELD, "")))
            ask = create_sync_message(self.doc)  # what editors typed meanwhile comes in now
            for client in self._clients:
                if client.can_write:
                    client.send(ask)

    async def logged(self) -> None:
        await self.outbox.logged()

    def read_content(self) -> Any:
        return self.kind.read(self.view)

    def export(self) -> bytes:
        """The live document as file bytes (raises ``ExportError``)."""
        return self.kind.export(self.view)

    # -- clients -----------------------------------------------------------------------------

    @property
    def client_count(self) -> int:
        return len(self._clients)

    @property
    def clients(self) -> frozenset[Connection]:
        """The sockets in the room now (a copy: only the room adds and removes them)."""
        return frozenset(self._clients)

    def connections(self) -> list[Connection]:
        return list(self._clients)

    def add_client(self, conn: Connection) -> None:
        self._clients.add(conn)
        self._any_token = conn.token
        if conn.can_write:
            self._last_editor_token = conn.token
        # Our SyncStep1 first (the client answers with what we lack), then who else is here.
        conn.send(create_sync_message(self.doc))
        if self.awareness.states:
            ids = list(self.awareness.states)
            conn.send(create_awareness_message(self.awareness.encode_awareness_update(ids)))
        holder = self.sync.foreign_holder()
        if holder is None and self.read_only_reason == "locked" and not self.sync.active:
            holder = str(self.view.ystate.get("locked_by") or "")  # mirrored from the writer
        if holder is not None:
            conn.send(raw_message(lock_message(LockState.FOREIGN, holder)))
        elif self.read_only_reason is not None:
            conn.send(raw_message({"type": "read_only", "reason": self.read_only_reason}))

    def remove_client(self, conn: Connection) -> None:
        self._clients.discard(conn)
        if conn.can_write and not any(c.can_write for c in self._clients):
            # With CS3 a snapshot needs an editor's token, and tokens expire: write now,
            # while the last editor's token is fresh, rather than at the end of the grace.
            self.sync.flush_soon()
        ids = self.presence.remove(conn)
        if ids:
            self.outbox.awareness(ids)

    def editor_token(self) -> str | None:
        """A token that may write: a connected editor's, else the last editor's."""
        for client in self._clients:
            if client.can_write:
                return client.token
        return self._last_editor_token

    def any_token(self) -> str:
        """A token that may at least read (for stat/read of the resource)."""
        return self.editor_token() or self._any_token

    def writer_tokens(self, owner: str) -> list[str]:
        """Tokens to create a file beside the document with: the owner's first (a sharee of
        a single file may not create in the owner's folder), then every other editor's."""
        editors = sorted(
            (c for c in self._clients if c.can_write),
            key=lambda c: (c.user.id != owner, c.id),  # deterministic, not a set's order
        )
        tokens = [c.token for c in editors]
        tokens += [t for t in (self._last_editor_token, self._any_token) if t is not None]
        return list(dict.fromkeys(tokens))

    # -- the protocol ------------------------------------------------------------------------

    async def receive(self, conn: Connection, frame: Frame) -> None:
        """Handle one parsed frame from ``conn``."""
        if isinstance(frame, SyncFrame):
            self._metrics.messages.labels("sync").inc()
            if frame.step == YSyncMessageType.SYNC_STEP1:
                self._answer_sync_step1(conn, frame.payload)
            else:
                self._apply_client_update(conn, frame.payload)
        elif isinstance(frame, AwarenessFrame):
            self._metrics.messages.labels("awareness").inc()
            self._apply_awareness(conn, frame.payload)
        elif isinstance(frame, RawFrame):
            self._metrics.messages.labels("raw").inc()
            await self._raw(conn, frame)
        elif isinstance(frame, QueryAwarenessFrame):
            ids = list(self.awareness.states)
            if ids:
                conn.send(create_awareness_message(self.awareness.encode_awareness_update(ids)))

    def _answer_sync_step1(self, conn: Connection, state_vector: bytes) -> None:
        try:
            missing = self.doc.get_update(state_vector)
        except Exception as exc:
            raise ProtocolError(f"bad state vector: {exc}") from exc
        self.outbox.reply(conn, sync_step2_message(missing))
        if len(missing) > _LARGE_MESSAGE:
            self._hooks.large_send(LargeSend(self, len(missing)))  # freed once sent

    async def _raw(self, conn: Connection, frame: RawFrame) -> None:
        if frame.text == "save" and frame.save_id is not None:
            status = await self.save()
            conn.send(raw_message({"type": "save", "responseTo": frame.save_id, "status": status}))
        elif frame.text.startswith("{"):
            # JSON commands ("work_on_copy", "merge_back") involve other rooms: the hub answers.
            command = parse_command(
                frame.text,
                max_bytes=self._settings.max_command_bytes,
                max_depth=self._settings.max_command_depth,
            )
            conn.send(raw_message(await self._hooks.command(CommandRequest(self, conn, command))))

    def _apply_client_update(self, conn: Connection, update: bytes) -> None:
        if update == _EMPTY_UPDATE:
            return
        if not conn.can_write or self.read_only_reason is not None:
            refuse_edit(conn, update, self.doc, self.read_only_reason or "read_only", self._metrics)
            return
        if self.outbox.doc_bytes + len(update) > self._settings.max_doc_bytes:
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
        changed = self.presence.apply(conn, payload)
        # Echo to everyone including the sender: JupyterLab drops a socket silent for 30 s.
        if changed:
            self.outbox.awareness(changed)

    def autosave(self) -> bool:
        """Autosave unless every client that said so has turned it off."""
        votes = [
            state.get("autosave")
            for cid, state in self.awareness.states.items()
            if isinstance(state, dict) and "autosave" in state and cid != self.doc.client_id
        ]
        return not votes or any(bool(v) for v in votes)

    # -- storage (the StorageSync part) -------------------------------------------------------

    def lock_changed(self, change: LockChange) -> None:
        """The storage lock changed hands: the room is read-only while another app holds it."""
        if change.state is LockState.FOREIGN:
            self.read_only_reason = "locked"
            self.set_state(locked_by=change.holder)
            log.warning(
                "file locked by another application", extra=kv(room=self.key, reason=change.holder)
            )
        elif self.read_only_reason == "locked":
            self.read_only_reason = None
            self.set_state(locked_by="")
        self.outbox.message(
            raw_message(lock_message(change.state, change.holder, lost=change.lost))
        )
        if change.state is LockState.HELD:
            # Editors may have typed while the room was locked (refused, kept on their screens):
            # their SyncStep2 replies bring those edits in now.
            ask = create_sync_message(self.doc)
            for client in self._clients:
                if client.can_write:
                    client.send(ask)

    def broadcast_raw(self, message: dict[str, Any]) -> None:
        """A raw JSON message to every client, in order with the updates (issue 14)."""
        self.outbox.message(raw_message(message))

    @property
    def lock_id(self) -> str | None:
        """The storage lock the room holds (None: none), for writes beside it (move, delete)."""
        return self.sync.lock.lock_id

    def read_only_message(self) -> str | None:
        """Why nobody may write the document now (None: they may)."""
        if self.read_only_reason is None:
            return None
        holder = self.sync.foreign_holder() or "read-only"
        return f"the original is {self.read_only_reason} ({holder}); try again later"

    async def save(self) -> SaveStatus:
        if self.read_only_reason is not None:
            return SaveStatus.SKIPPED
        return await self.sync.flush()

    async def start(self) -> None:
        await self.sync.start()

    async def check_external(self) -> None:
        """Merge what storage holds now if someone else wrote it (e.g. a restored version)."""
        await self.sync.check_external()

    async def merge_incoming(
        self, data: bytes, who: str, based_on: str | None = None, base: bytes | None = None
    ) -> MergeResult:
        return await self.sync.merge_incoming(data, who, based_on, base)

    # -- lifecycle ---------------------------------------------------------------------------

    async def close(self) -> None:
        """Final snapshot, compaction, stop. Clients must already be gone."""
        if self._closing:
            return
        self._closing = True
        await self.sync.close()
        await self.outbox.close()
        self.doc.unobserve(self._subscription)
        await self._hooks.closed(RoomClosedEvent(self))
