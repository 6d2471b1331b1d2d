"""A room's side facing storage: snapshots, the lock, the watcher, external merges, copies.

``StorageSync`` keeps the file in storage and the live doc of one room in step (ARCHITECTURE
§4, §5). It owns the ``Snapshotter``, the ``LockKeeper`` and the ``StoredBase``; what it needs
of its room (tokens, the doc's content, a barrier on the log, the state map) is the
``SyncedRoom`` protocol, so it is tested with a fake room (tests/collab_server/test_units.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from collab_server.clock import Clock
from collab_server.conflicts import announce_copy, save_conflict_copy
from collab_server.connection import Connection
from collab_server.lock_keeper import LockChange, LockKeeper, LockState
from collab_server.logs import get_logger, kv
from collab_server.metrics import HubMetrics
from collab_server.room_events import external_change
from collab_server.settings import Settings
from collab_server.snapshotter import SaveStatus, Snapshotter
from collab_server.stored_base import StoredBase
from crdt.documents import DocumentKind, content_hash
from storage_bridge.base import Storage
from storage_bridge.errors import (
    InvalidArgument,
    Locked,
    NotFound,
    PermissionDenied,
    PreconditionFailed,
    StorageError,
    Unauthenticated,
)
from storage_bridge.types import Resource, ResourceId

log = get_logger("room")

# Storage answered no to a write: it did not happen (PreconditionFailed is handled apart).
_REFUSED = (Locked, PermissionDenied, Unauthenticated, NotFound, InvalidArgument)


class SyncedRoom(Protocol):
    """What ``StorageSync`` needs of its room."""

    @property
    def key(self) -> str: ...

    @property
    def kind(self) -> DocumentKind: ...

    def editor_token(self) -> str | None: ...

    def any_token(self) -> str: ...

    def writer_tokens(self, owner: str) -> list[str]: ...

    def connections(self) -> list[Connection]: ...

    def read_content(self) -> Any:
        """The doc's content (``kind.read``), for an export off the loop."""
        ...

    def merge_into(self, base: bytes, data: bytes) -> list[str]:
        """Three-way merge ``data`` (derived from ``base``) into the live doc: conflicts."""
        ...

    def set_state(self, **values: Any) -> None: ...

    def broadcast_raw(self, message: dict[str, Any]) -> None:
        """A raw JSON message to every client, in order with the updates."""
        ...

    def lock_changed(self, change: LockChange) -> None: ...

    def autosave(self) -> bool: ...

    async def logged(self) -> None: ...

    def supervise(self, coro: Coroutine[Any, Any, None], task: str) -> asyncio.Task[None]: ...

    def task_failed(self, exc: BaseException) -> None: ...

    def snapshot_written(self, etag: str, digest: str, lock_id: str | None) -> None: ...


@dataclass(frozen=True, slots=True)
class MergeResult:
    conflicts: list[str]
    copy: str | None  # the conflict copy's path (None: none, or kept by the hub)
    etag: str  # what storage holds once the merged doc is written


class StorageSync:
    def __init__(
        self,
        room: SyncedRoom,
        *,
        storage: Storage,
        resource_id: ResourceId,
        base: StoredBase,
        lock: LockKeeper,
        settings: Settings,
        metrics: HubMetrics,
        clock: Clock,
        watch_interval: Callable[[], float] | None = None,
    ) -> None:
        self._room = room
        self._storage = storage
        self._rid = resource_id
        self.base = base
        self.lock = lock
        self._settings = settings
        self._clock = clock
        self._watch_interval = watch_interval or (lambda: settings.watch_interval)
        self.conflict_copies: list[str | None] = []  # storage paths (None: kept by the hub)
        self._maintainer: asyncio.Task[None] | None = None
        self._closing = False
        # Scale-out (§10): only the instance holding the room's writer lease writes storage,
        # holds its lock and watches it; on the others this side is passive.
        self.active = True
        self.snapshotter = Snapshotter(
            room=room.key,
            export=self._export_off_loop,
            write=self._write_snapshot,
            autosave=room.autosave,
            metrics=metrics,
            debounce=settings.snapshot_debounce,
            max_debounce=settings.snapshot_max_debounce,
            retry_max=settings.snapshot_retry_max,
            stored_hash=lambda: base.hash,
            on_failure=room.task_failed,
            clock=clock,
        )

    # -- snapshots ----------------------------------------------------------------------------

    @property
    def dirty(self) -> bool:
        return self.snapshotter.dirty

    def changed(self) -> None:
        if self.active:
            self.snapshotter.changed()

    def flush_soon(self) -> None:
        self.snapshotter.flush_soon()

    async def flush(self) -> SaveStatus:
        if not self.active:
            # The writer instance saves this room (its debounce runs on every change it gets).
            return SaveStatus.SKIPPED
        return await self.snapshotter.flush()

    async def _export_off_loop(self) -> tuple[bytes, str]:
        """Export for a snapshot: only reading the Y doc stays on the event loop.

        Validating and serialising a 1 MB notebook took ~50 ms, every snapshot, in which no
        room of the hub moved; on a worker thread (pure Python, so the GIL switches every
        0.5 ms, see cli.py) the loop keeps delivering edits meanwhile.
        """
        content = self._room.read_content()
        return await asyncio.to_thread(_serialize_and_hash, self._room.kind, content)

    async def _write_snapshot(self, data: bytes, digest: str) -> None:
        """Called by the snapshotter with its lock held (which ``check_external`` takes too)."""
        token = self._room.editor_token()
        if token is None:
            raise Locked("no editor has joined this room yet")
        if self.lock.state in (LockState.NONE, LockState.FOREIGN):
            # Never write without our lock where storage has locks: retry once it is back.
            raise Locked(f"the room does not hold the lock ({self.lock.state.value})")
        await self.base.writing(digest, data)
        try:
            etag = await self._storage.write(
                token, self._rid, data, if_match=self.base.etag, lock_id=self.lock.lock_id
            )
        except PreconditionFailed:
            # Someone wrote since we last looked: merge their version first; the snapshotter
            # retries with the merged document.
            await self._merge_external_locked()
            raise
        except _REFUSED:
            # A definite no (their lock, our rights): the bytes are not in storage. A timeout
            # or an outage may have written them, so those keep the record (base unknown).
            await self.base.refused(digest)
            raise
        await self.base.written(etag, digest, data)
        self._room.set_state(dirty=False, hash=digest)
        self._room.snapshot_written(etag, digest, self.lock.lock_id)

    # -- the lock and the watcher -------------------------------------------------------------

    def foreign_holder(self) -> str | None:
        """Who holds the storage lock if another application does, else None."""
        return self.lock.holder if self.lock.state is LockState.FOREIGN else None

    async def start(self) -> None:
        """Take the lock and catch up with changes made while the room was closed."""
        if self.active:
            await self._lock_tick()
            try:
                await self.check_external()
            except StorageError as exc:
                log.warning("external check failed", extra=kv(room=self._room.key, error=repr(exc)))
        self._maintainer = self._room.supervise(self._maintain(), "room.watcher")

    async def _maintain(self) -> None:
        while not self._closing:
            await self._clock.sleep(self._watch_interval())
            if not self.active:
                continue  # another instance holds the writer lease (§10)
            try:
                await self._lock_tick()
                await self.check_external()
            except StorageError as exc:  # storage down: edits keep flowing, we look again later
                log.info("room maintenance failed", extra=kv(room=self._room.key, error=repr(exc)))

    async def _lock_tick(self) -> None:
        change = await self.lock.tick(self._room.editor_token())
        if change is None:
            return
        self._room.lock_changed(change)
        if change.state is LockState.HELD and self.snapshotter.dirty:
            self.snapshotter.flush_soon()

    # -- external versions --------------------------------------------------------------------

    async def check_external(self) -> None:
        """Merge a version written by someone else, if there is one (etag, then content)."""
        async with self.snapshotter.lock:
            await self._merge_external_locked()

    async def _read(self) -> tuple[bytes, str]:
        return await self._storage.read(self._room.any_token(), self._rid)

    async def _merge_external_locked(self) -> Resource:
        """Merge what storage holds if someone else wrote it; returns the resource as stat'ed."""
        resource = await self._storage.stat(self._room.any_token(), self._rid)
        if self.lock.seen(resource.lock):
            # issue 14: another application holds the lock now (the stat shows it): refresh
            # at once instead of at the next refresh (up to lock_refresh away), so the clients
            # turn read-only within a watch interval.
            await self._lock_tick()
        if resource.etag == self.base.etag:
            return resource
        data, etag = await self._read()
        await self._merge_version(resource, data, etag, who="")
        return resource

    async def _merge_version(
        self,
        resource: Resource,
        data: bytes,
        etag: str,
        who: str,
        base: bytes | None = None,
        holds: tuple[str, bytes, str] | None = None,
    ) -> list[str]:
        """Merge ``data`` (in storage as ``etag``) into the live doc; a conflict copy if needed.

        ``base`` is the version ``data`` was derived from (default: what we last read/wrote).
        When that is unknown, nothing is merged: guessing a base made cells created since
        look inserted twice and cells deleted since come back. The version is kept as a copy.
        ``holds`` is (etag, bytes, hash) of what storage holds afterwards (default: ``data``
        as ``etag``; an out-of-band writer's ``data`` is not in storage yet).
        """
        digest = content_hash(data)
        if digest != (self.base.hash if base is None else content_hash(base)):
            if base is None:
                base = await self.base.content(self._read)
            if base is None:
                conflicts = ["the version this room last matched is unknown: kept as a copy"]
                log.error(
                    "merge base unknown; external version kept", extra=kv(room=self._room.key)
                )
            else:
                conflicts = self._room.merge_into(base, data)
            log.info(
                "external version merged",
                extra=kv(room=self._room.key, etag=etag, reason=f"{len(conflicts)} conflicts"),
            )
            # issue 14: the clients are told who wrote it and what changed (room_events.py)
            event = external_change(who or self.lock.holder, base, data, len(conflicts))
            self._room.broadcast_raw(event)
        else:
            conflicts = []  # a touch, or a rewrite with the same bytes
        await self._room.logged()  # the merge is durable before the log calls theirs the base
        # One record: adopting ``data`` first and then what storage holds left a window in
        # which a crash made the restarted room revert the writer's changes as "external".
        await self.base.adopt(*(holds or (etag, data, digest)))
        # Storage holds theirs; unless the merge result exports to the same bytes (then the
        # write is skipped), it must hold the merged document: e.g. ours after invalid JSON.
        self.snapshotter.changed()
        if conflicts:
            copy = await save_conflict_copy(
                self._storage,
                self._room.writer_tokens(resource.owner),
                resource,
                who,
                data,
                fallback_dir=self._settings.state_dir / "conflicts",
                room=self._room.key,
            )
            self.conflict_copies.append(copy.path if copy else None)
            await announce_copy(self._storage, self._room.connections(), copy, conflicts)
        return conflicts

    async def merge_incoming(
        self, data: bytes, who: str, based_on: str | None = None, base: bytes | None = None
    ) -> MergeResult:
        """An out-of-band writer's whole new version: merge it in, then write the result.

        ``based_on`` is the etag of the version the writer started from: the merge base. A
        writer that names no version overwrites the current one (it is the base). One that
        names a version the room no longer knows is refused with ``PreconditionFailed``
        (HTTP 412): merged against another base, what it lacks would read as deletions.
        """
        async with self.snapshotter.lock:
            resource = await self._merge_external_locked()  # first what landed in storage
            copies_before = len(self.conflict_copies)
            stored_etag, stored_hash = self.base.etag, self.base.hash
            stored = await self.base.content(self._read)
            if stored is None:  # the external check just read it: only a lost race gets here
                stored, stored_etag = await self._read()
                stored_hash = content_hash(stored)
            if base is None and based_on and based_on.strip('"') != stored_etag.strip('"'):
                # HTTP strips the quotes some storages (reva) put in their etags
                base = await self.base.version(based_on)
                if base is None:
                    raise PreconditionFailed(
                        f"unknown base version {based_on!r}: read the file again, then write"
                    )
            # storage still holds ``stored``: the next snapshot writes the merged doc over it
            holds = (stored_etag, stored, stored_hash)
            conflicts = await self._merge_version(
                resource, data, stored_etag, who, base=base, holds=holds
            )
        await self.snapshotter.flush()
        copy = self.conflict_copies[-1] if len(self.conflict_copies) > copies_before else None
        return MergeResult(conflicts, copy, self.base.etag)

    # -- the writer lease (scale-out, §10) --------------------------------------------------------

    async def activate(self, lock_id: str | None, etag: str | None, digest: str | None) -> None:
        """This instance now holds the writer lease: adopt what the last writer left (its lock
        id, and its last snapshot as the base if storage still holds it), then write soon."""
        if lock_id:
            self.lock.adopt(lock_id)
        if etag and digest and etag != self.base.etag:
            try:
                data, stored = await self._read()
            except StorageError as exc:  # the watcher merges whatever is there later
                log.info(
                    "reading the writer's base failed",
                    extra=kv(room=self._room.key, error=repr(exc)),
                )
            else:
                if stored == etag and content_hash(data) == digest:
                    await self.base.adopt(etag, data, digest)
        self.active = True
        log.info("room writer", extra=kv(room=self._room.key, lock=lock_id or ""))
        self.snapshotter.changed()  # what storage lacks (if anything) is written soon
        if self._maintainer is not None:  # started: take the lock now, not a watch tick later
            try:
                await self._lock_tick()
            except StorageError as exc:  # the watcher tries again on its next tick
                log.info(
                    "lock on becoming writer failed", extra=kv(room=self._room.key, error=repr(exc))
                )

    def deactivate(self) -> None:
        """Another instance holds the lease now: stop writing and let it adopt the lock."""
        if not self.active:
            return
        self.active = False
        self.lock.stand_down()
        log.info("room no longer writer", extra=kv(room=self._room.key))

    # -- stopping -----------------------------------------------------------------------------

    def stop(self) -> None:
        """The room failed: stop without writing anything."""
        self.snapshotter.stop()
        if self._maintainer is not None:
            self._maintainer.cancel()

    async def close(self) -> None:
        """Stop the watcher, write the last snapshot, release the lock."""
        self._closing = True
        if self._maintainer is not None:
            self._maintainer.cancel()
            await asyncio.gather(self._maintainer, return_exceptions=True)
        if not self.active:  # the writer instance has it all (§10)
            self.snapshotter.stop()
            await self.base.forget()
            return
        status = await self.snapshotter.close()
        if status is SaveStatus.FAILED:
            log.warning(
                "final snapshot failed; edits stay in the update log", extra=kv(room=self._room.key)
            )
        await self.lock.release(self._room.editor_token())
        # (the merge base is already in the log: every base change records its bytes)
        await self.base.forget()


def _serialize_and_hash(kind: DocumentKind, content: Any) -> tuple[bytes, str]:
    data = kind.serialize(content)
    return data, content_hash(data)
