"""Debounced snapshots of a live document to storage.

After a change, write ``debounce`` seconds after the last change, but no later than
``max_debounce`` after the first unsaved one (Hocuspocus' debounce/maxDebounce). Only write
when the exported bytes differ from what storage already holds. A failed write keeps the
document dirty and retries with exponential backoff; the update log keeps every edit meanwhile.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from enum import Enum

from collab_server.clock import Clock, LoopClock, Timer
from collab_server.logs import get_logger, kv
from collab_server.metrics import HubMetrics
from collab_server.supervise import supervised
from crdt.errors import ExportError
from storage_bridge.errors import StorageError

log = get_logger("snapshot")


class SaveStatus(str, Enum):
    SUCCESS = "success"
    SKIPPED = "skipped"
    FAILED = "failed"


class Snapshotter:
    def __init__(
        self,
        *,
        room: str,
        export: Callable[[], Awaitable[tuple[bytes, str]]],
        write: Callable[[bytes, str], Awaitable[None]],
        autosave: Callable[[], bool],
        metrics: HubMetrics,
        debounce: float,
        max_debounce: float,
        retry_max: float,
        stored_hash: Callable[[], str | None],  # hash of what storage holds (StoredBase)
        on_failure: Callable[[BaseException], None] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._clock: Clock = clock or LoopClock()
        self._on_failure = on_failure
        self._room = room
        self._export = export
        self._write = write
        self._autosave = autosave
        self._metrics = metrics
        self._debounce = debounce
        self._max_debounce = max_debounce
        self._retry_max = retry_max
        self._stored_hash = stored_hash
        self.dirty = False
        self._first_change: float | None = None
        self._timer: Timer | None = None
        self._task: asyncio.Task[SaveStatus] | None = None
        self.lock = asyncio.Lock()  # also held by whoever compares storage with the doc
        self._failures = 0
        self._closed = False

    def changed(self) -> None:
        """The document changed: (re)arm the debounce timer."""
        self.dirty = True
        if self._closed:
            return
        if self._first_change is None:
            self._first_change = self._clock.time()
        if self._failures:  # in backoff: the retry timer is already set
            return
        self._schedule()

    def _schedule(self) -> None:
        now = self._clock.time()
        first = self._first_change if self._first_change is not None else now
        self._arm(min(now + self._debounce, first + self._max_debounce))

    def _arm(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._clock.call_at(when, self._fire)

    def flush_soon(self) -> None:
        """Write now instead of at the end of the debounce (if anything is pending)."""
        if self.dirty and not self._closed and not self._failures:
            self._arm(self._clock.time())

    def _fire(self) -> None:
        self._timer = None
        if not self._autosave():
            # Autosave is off for every client: edits stay in the update log until a save.
            self._first_change = None
            return
        if self._task is not None and not self._task.done():
            # A write is still running: this change came after its export, so look again
            # when it is done (else the change waits for the next edit, or the unload).
            self._task.add_done_callback(lambda _: self.flush_soon())
            return
        self._task = supervised(
            self.flush(),
            task="room.snapshot",
            failures=self._metrics.task_failures,
            on_failure=self._on_failure,
            room=self._room,
        )

    async def flush(self) -> SaveStatus:
        """Write now if there is anything to write."""
        async with self.lock:
            if not self.dirty:
                return SaveStatus.SUCCESS
            self.dirty = False
            first_change, self._first_change = self._first_change, None
            started = time.perf_counter()
            try:
                data, digest = await self._export()
            except ExportError as exc:
                # Not retried: the same doc would fail again. The next edit tries again.
                self._metrics.snapshot_failures.labels("invalid").inc()
                log.error("export failed", extra=kv(room=self._room, error=str(exc)))
                return SaveStatus.FAILED
            if digest == self._stored_hash():
                self._failures = 0
                return SaveStatus.SUCCESS
            try:
                await self._write(data, digest)
            except (StorageError, OSError) as exc:
                self.dirty = True
                self._first_change = first_change
                self._failures += 1
                self._metrics.snapshot_failures.labels(type(exc).__name__).inc()
                delay = min(self._retry_max, 0.5 * 2**self._failures)
                log.warning(
                    "snapshot failed, will retry",
                    extra=kv(room=self._room, error=repr(exc), seconds=delay),
                )
                if not self._closed:
                    self._arm(self._clock.time() + delay)
                return SaveStatus.FAILED
            self._failures = 0  # (``write`` recorded the new base)
            self._metrics.snapshots.inc()
            self._metrics.snapshot_seconds.observe(time.perf_counter() - started)
            if self.dirty and not self._closed and self._timer is None:
                # Changes that came while this write ran (an outage can hold a write for
                # many seconds) found no timer to arm: they are written next, debounced.
                self._schedule()
            return SaveStatus.SUCCESS

    def stop(self) -> None:
        """Stop without a final write (the room failed; its doc may be ahead of its log)."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._task is not None:
            self._task.cancel()

    async def close(self) -> SaveStatus:
        """Final snapshot (if autosave allows) and stop the timers."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        if self.dirty and self._autosave():
            return await self.flush()
        return SaveStatus.SKIPPED if self.dirty else SaveStatus.SUCCESS
