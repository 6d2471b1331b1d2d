"""Loading a room: from its log (with crash recovery) or from storage, and building its parts.

``build_room`` is the factory: it makes the outbox, the stored base, the lock keeper and the
storage side, and hands them to a ``Room``. ``RoomLoader`` finds the state to build it from.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pycrdt import Awareness, Doc

from collab_server.auth import Principal
from collab_server.clock import Clock
from collab_server.connection import Connection
from collab_server.heap import HeapTrimmer
from collab_server.lock_keeper import LockKeeper
from collab_server.logs import get_logger, kv
from collab_server.metrics import HubMetrics
from collab_server.outbox import LocalBroadcaster, RoomOutbox
from collab_server.room import Room
from collab_server.room_hooks import RoomHooks
from collab_server.room_key import RoomKey
from collab_server.scaleout.broadcast import ClusterBroadcaster
from collab_server.scaleout.cluster import Cluster
from collab_server.scaleout.errors import REDIS_UNAVAILABLE
from collab_server.settings import Settings
from collab_server.storage_sync import StorageSync
from collab_server.stored_base import StoredBase
from collab_server.update_log import RoomStore, StoredRoom
from collab_server.versions import StoredVersions
from crdt.documents import DocumentKind, content_hash
from crdt.errors import LoadError
from storage_bridge.base import Storage
from storage_bridge.types import ResourceId

log = get_logger("hub")


@dataclass(slots=True)
class LoadedState:
    """What a room is built from."""

    lineage: str
    doc: Doc[Any]
    base_etag: str
    base_hash: str
    base_content: bytes | None  # None: the log lost it (then external versions are copies)
    doc_bytes: int
    previous_lock_id: str | None = None
    log_ready: asyncio.Future[None] | None = None  # the log's record of it, being written
    from_log: bool = False


@dataclass(frozen=True, slots=True)
class RoomParts:
    """The collaborators every room of a hub shares."""

    store: RoomStore
    storage: Storage
    settings: Settings
    metrics: HubMetrics
    hooks: RoomHooks
    clock: Clock
    cluster: Cluster | None = None  # scale-out over Redis (ARCHITECTURE §10)
    # seconds between a room's watcher polls, asked before each (None: settings.watch_interval)
    watch_interval: Callable[[], float] | None = None


def build_room(
    parts: RoomParts,
    key: RoomKey,
    kind: DocumentKind,
    resource_id: ResourceId,
    state: LoadedState,
    principal: Principal,
    can_write: bool,
) -> Room:
    """The room factory: every part of a room, built from ``state`` and handed to it."""
    awareness = Awareness(state.doc)
    clients: set[Connection] = set()
    outbox = RoomOutbox(
        room=str(key),
        log=parts.store,
        doc=state.doc,
        awareness=awareness,
        broadcaster=(
            LocalBroadcaster(clients)
            if parts.cluster is None
            else ClusterBroadcaster(clients, str(key), parts.cluster)
        ),
        settings=parts.settings,
        metrics=parts.metrics,
        doc_bytes=state.doc_bytes,
        log_ready=state.log_ready,
    )
    lock, base = (
        _lock_keeper(parts, str(key), resource_id, state),
        _stored_base(parts, str(key), state),
    )

    def storage_side(room: Room) -> StorageSync:
        return StorageSync(
            room,
            storage=parts.storage,
            resource_id=resource_id,
            base=base,
            lock=lock,
            settings=parts.settings,
            metrics=parts.metrics,
            clock=parts.clock,
            watch_interval=parts.watch_interval,
        )

    return Room(
        key=key,
        kind=kind,
        resource_id=resource_id,
        lineage=state.lineage,
        doc=state.doc,
        awareness=awareness,
        clients=clients,
        outbox=outbox,
        sync=storage_side,
        hooks=parts.hooks,
        settings=parts.settings,
        metrics=parts.metrics,
        initial_token=principal.token,
        initial_token_can_write=can_write,
    )


def _lock_keeper(
    parts: RoomParts, name: str, resource_id: ResourceId, state: LoadedState
) -> LockKeeper:
    settings, store = parts.settings, parts.store
    return LockKeeper(
        parts.storage,
        resource_id,
        app_name=settings.lock_app_name,
        expiry=settings.lock_expiry,
        refresh_every=settings.lock_refresh,
        room=name,
        previous_lock_id=state.previous_lock_id,
        remember=lambda lock_id: store.set_lock_id(name, lock_id),
        clock=parts.clock.time,
    )


def _stored_base(parts: RoomParts, name: str, state: LoadedState) -> StoredBase:
    # Recent stored versions by etag: the merge base for external writers.
    return StoredBase(
        room=name,
        etag=state.base_etag,
        digest=state.base_hash,
        content=state.base_content,
        versions=StoredVersions(parts.settings.state_dir / "versions", name),
        meta=parts.store,
    )


class RoomLoader:
    def __init__(self, parts: RoomParts, heap: HeapTrimmer) -> None:
        self._parts = parts
        self._store = parts.store
        self._storage = parts.storage
        self._heap = heap

    async def load(
        self,
        key: RoomKey,
        kind: DocumentKind,
        resource_id: ResourceId,
        principal: Principal,
        can_write: bool,
    ) -> Room:
        started = time.perf_counter()
        name = str(key)
        shared = await self._shared(name)
        stored = await self._store.load(name)
        if stored is None:
            await self._store.ensure_lineage(name)
            stored = await self._store.load(name)
            assert stored is not None
        if stored.snapshot is None and shared:
            state = await self._from_shared(name, resource_id, principal, stored.lineage, shared)
        elif stored.snapshot is None:
            state = await self._from_storage(name, kind, resource_id, principal, stored.lineage)
        else:
            state = await self._from_log(stored, resource_id, principal)
        room = build_room(self._parts, key, kind, resource_id, state, principal, can_write)
        if self._parts.cluster is not None:
            await self._attach(room, self._parts.cluster)
        if state.from_log:
            # Loaded from the log: it may hold edits storage never got (a crash before the
            # snapshot). Export once and write if it differs from what storage holds.
            room.sync.changed()
        try:
            await room.start()
        except BaseException:
            await room.close()
            raise
        self._parts.metrics.room_load_seconds.observe(time.perf_counter() - started)
        self._heap.soon()  # the file, its parsed form and the loader's doc are garbage now
        log.info(
            "room loaded",
            extra=kv(
                room=name, user=principal.user.id, seconds=round(time.perf_counter() - started, 4)
            ),
        )
        return room

    async def _shared(self, name: str) -> list[bytes]:
        """With scale-out: the room's doc as other instances have it in Redis (state + entries;
        empty if none) and its lineage adopted by this instance's log (§10)."""
        cluster = self._parts.cluster
        if cluster is None:
            return []
        try:
            lineage, updates = await cluster.room_view(name)
            if lineage is None:
                return []
            await self._store.adopt_lineage(name, lineage)
            if updates:
                return updates
            # Redis names the lineage but holds none of its doc: its creator is building it
            # from the file. Only the writer may (a second build duplicates every cell): take
            # the lease and build it here, or wait for the creator's first entry.
            deadline = time.monotonic() + 2 * self._parts.settings.writer_lease_ttl + 5
            while time.monotonic() < deadline:
                if await cluster.may_create(name):
                    return []
                await asyncio.sleep(0.1)
                _, updates = await cluster.room_view(name)
                if updates:
                    return updates
        except REDIS_UNAVAILABLE as exc:  # degraded: this instance serves alone
            log.warning("redis unavailable at room load", extra=kv(room=name, error=repr(exc)))
            return []
        raise LoadError("the room is being created on another instance: try again")

    async def _from_shared(
        self,
        name: str,
        resource_id: ResourceId,
        principal: Principal,
        lineage: str,
        shared: list[bytes],
    ) -> LoadedState:
        """The room lives on other instances: its doc is theirs, never rebuilt from the file."""
        doc: Doc[Any] = Doc()
        for update in shared:
            doc.apply_update(update)
        update = doc.get_update()
        data, etag = await self._storage.read(principal.token, resource_id)
        digest = content_hash(data)
        log_ready = asyncio.ensure_future(self._store.start(name, update, etag, digest, data))
        return LoadedState(lineage, doc, etag, digest, data, len(update), log_ready=log_ready)

    async def _attach(self, room: Room, cluster: Cluster) -> None:
        """Join the room across instances before its first client syncs (§10)."""
        room.sync.active = False  # until this instance holds the writer lease
        try:
            attached = await cluster.attach(room)
        except REDIS_UNAVAILABLE as exc:
            # Redis is away: serve alone (and write storage) until it is back.
            log.warning(
                "redis unavailable, room not shared", extra=kv(room=room.key, error=repr(exc))
            )
            room.sync.active = True
            return
        if not attached:
            await room.close()
            raise LoadError("another instance created this room meanwhile: reconnect")

    async def _from_storage(
        self,
        name: str,
        kind: DocumentKind,
        resource_id: ResourceId,
        principal: Principal,
        lineage: str,
    ) -> LoadedState:
        doc: Doc[Any] = Doc()
        data, etag = await self._storage.read(principal.token, resource_id)
        # The load is CPU-bound (JSON + building Y items); a worker thread keeps the event
        # loop serving other rooms. Its Doc never leaves that thread: only bytes come back.
        update = await asyncio.to_thread(kind.load, data)
        doc.apply_update(update)
        # Recorded while the first client syncs: the log's single writer thread runs it
        # before any append of this room, and the room awaits it before its first append
        # (so SyncStep2 never waits for this commit, P3). The bytes are the merge base of
        # the first external writer, durable: after a crash, merging against older bytes
        # or none duplicated cells and revived deleted ones (issue 11).
        digest = content_hash(data)
        log_ready = asyncio.ensure_future(self._store.start(name, update, etag, digest, data))
        log_ready.add_done_callback(lambda _: self._heap.soon())  # SQLite's blob buffers
        return LoadedState(lineage, doc, etag, digest, data, len(update), log_ready=log_ready)

    async def _from_log(
        self, stored: StoredRoom, resource_id: ResourceId, principal: Principal
    ) -> LoadedState:
        doc: Doc[Any] = Doc()
        assert stored.snapshot is not None
        doc.apply_update(stored.snapshot)
        for update in stored.updates:
            doc.apply_update(update)
        base_etag, base_hash = stored.base_etag or "", stored.base_hash or ""
        base_content = stored.base_content
        if stored.pending or base_content is None:
            # A snapshot was being written when the hub stopped (or the log predates
            # durable merge bases): if storage holds one of those versions, it is ours.
            data, etag = await self._storage.read(principal.token, resource_id)
            digest = content_hash(data)
            if digest in stored.pending or digest == base_hash:
                base_etag, base_hash, base_content = etag, digest, data
            elif stored.pending:
                # Someone wrote since, on top of the base or of a pending snapshot that
                # landed: the log cannot tell which. Merged against the base, the snapshot's
                # new cells came in again as theirs (duplicated, model seed 3766); against the
                # snapshot, what it added since the base would read as deleted. Not guessed:
                # their version becomes a conflict copy.
                base_content = None
        doc_bytes = len(stored.snapshot) + sum(len(u) for u in stored.updates)
        return LoadedState(
            stored.lineage,
            doc,
            base_etag,
            base_hash,
            base_content,
            doc_bytes,
            previous_lock_id=stored.lock_id,
            from_log=True,
        )
