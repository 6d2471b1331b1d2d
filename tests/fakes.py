"""Fakes for in-process unit tests of a room's parts: a clock the test advances, an in-memory
update log, one file of storage, and a socket that records what it was sent."""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import itertools
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from collab_server.update_log import StoredRoom
from storage_bridge.errors import Locked, NotFound, PreconditionFailed
from storage_bridge.types import Lock, Resource, ResourceId

RID = ResourceId("fake", "nb", "space")


async def settle(rounds: int = 5) -> None:
    """Let callbacks, tasks and worker threads the last step started run."""
    for _ in range(rounds):
        await asyncio.sleep(0.005)


class ManualClock:
    """A ``Clock`` that moves only when the test says so (``advance``)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self._seq = itertools.count()
        self._due: list[tuple[float, int, _Timer]] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], None]) -> _Timer:
        timer = _Timer(callback)
        heapq.heappush(self._due, (when, next(self._seq), timer))
        return timer

    async def sleep(self, seconds: float) -> None:
        done = asyncio.get_running_loop().create_future()
        self.call_at(self.now + seconds, lambda: done.done() or done.set_result(None))
        await done

    async def advance(self, seconds: float, *, step: float = 0.05) -> None:
        """Move time on by ``seconds`` in steps, running what falls due and letting it work."""
        target = self.now + seconds
        while self.now < target:
            self.now = min(target, self.now + step)
            while self._due and self._due[0][0] <= self.now:
                _, _, timer = heapq.heappop(self._due)
                if not timer.cancelled:
                    timer.callback()
            await settle(2)


@dataclass
class _Timer:
    callback: Callable[[], None]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class MemoryStore:
    """``UpdateLog`` and ``RoomMetadata`` in memory; ``calls`` records what was asked, in order."""

    calls: list[tuple[str, Any]] = field(default_factory=list)
    updates: dict[str, list[bytes]] = field(default_factory=dict)
    bases: dict[str, tuple[str, str]] = field(default_factory=dict)  # room -> (etag, hash)
    blocked: asyncio.Event | None = None  # set: appends wait for it
    failing: bool = False

    async def load(self, room: str) -> StoredRoom | None:
        return None

    async def start(self, room: str, snapshot: bytes, etag: str, digest: str, data: bytes) -> None:
        self.calls.append(("start", etag))

    async def append(self, room: str, updates: list[bytes]) -> int:
        if self.blocked is not None:
            await self.blocked.wait()
        if self.failing:
            raise OSError("disk full")
        self.calls.append(("append", len(updates)))
        self.updates.setdefault(room, []).extend(updates)
        return len(self.updates[room])

    async def compact(self, room: str, snapshot: bytes, upto_seq: int) -> None:
        self.calls.append(("compact", upto_seq))

    async def aclose(self) -> None:
        return None

    async def ensure_lineage(self, room: str) -> tuple[str, bool]:
        return "lineage", False

    async def has_lineage(self, lineage: str) -> bool:
        return lineage == "lineage"

    async def set_lock_id(self, room: str, lock_id: str | None) -> None:
        self.calls.append(("set_lock_id", lock_id))

    async def remember_base(self, room: str, digest: str, content: bytes) -> None:
        self.calls.append(("remember_base", digest))

    async def forget_base(self, room: str, digest: str) -> None:
        self.calls.append(("forget_base", digest))

    async def set_base(
        self, room: str, etag: str, digest: str, content: bytes | None = None
    ) -> None:
        self.calls.append(("set_base", etag))
        self.bases[room] = (etag, digest)

    async def record_fork(self, copy_file_id: str, origin_file_id: str, base: bytes) -> None:
        self.calls.append(("record_fork", copy_file_id))

    async def fork_of(self, copy_file_id: str) -> tuple[str, bytes] | None:
        return None


class OneFileStorage:
    """``Storage`` holding one file (``nb.ipynb``), with etags, locks and an outside writer."""

    name = "fake"

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.etag = self._etag(data)
        self.lock: Lock | None = None
        self.writes: list[bytes] = []
        self.refreshes = 0
        self.created: dict[str, bytes] = {}
        self.refuse_writes: Exception | None = None  # injected: storage says no to writes

    @staticmethod
    def _etag(data: bytes) -> str:
        return hashlib.sha256(data + uuid.uuid4().bytes).hexdigest()[:16]

    def resource(self) -> Resource:
        return Resource(RID, "/nb.ipynb", "nb.ipynb", False, self.etag, 0.0, len(self.data))

    def external_write(self, data: bytes) -> None:
        """Someone beside the hub writes the file."""
        self.data, self.etag = data, self._etag(data)

    async def stat(self, token: str, ref: object) -> Resource:
        if ref not in (RID, "/nb.ipynb", "nb.ipynb"):
            raise NotFound(str(ref))
        return self.resource()

    async def read(self, token: str, ref: object) -> tuple[bytes, str]:
        return self.data, self.etag

    async def write(
        self,
        token: str,
        ref: object,
        data: bytes,
        *,
        if_match: str | None = None,
        lock_id: str | None = None,
    ) -> str:
        if self.refuse_writes is not None:
            raise self.refuse_writes
        if self.lock is not None and self.lock.lock_id != lock_id:
            raise Locked("locked")
        if if_match is not None and if_match != self.etag:
            raise PreconditionFailed("etag")
        self.external_write(data)
        self.writes.append(data)
        return self.etag

    async def create(self, token: str, ref: str, data: bytes) -> Resource:
        self.created[ref] = data
        return Resource(ResourceId("fake", ref, "space"), ref, ref.rsplit("/", 1)[-1], False,
                        "e", 0.0, len(data))  # fmt: skip

    async def set_lock(
        self, token: str, ref: object, *, lock_id: str, app_name: str, expires_in: float
    ) -> Lock:
        if self.lock is not None and self.lock.lock_id != lock_id:
            raise Locked("locked")
        self.lock = Lock(lock_id, app_name, "", 0.0)
        return self.lock

    async def get_lock(self, token: str, ref: object) -> Lock | None:
        return self.lock

    async def refresh_lock(
        self, token: str, ref: object, *, lock_id: str, app_name: str, expires_in: float
    ) -> Lock:
        if self.lock is None or self.lock.lock_id != lock_id:
            raise Locked("gone")
        self.refreshes += 1
        return self.lock

    async def unlock(self, token: str, ref: object, *, lock_id: str, app_name: str) -> None:
        if self.lock is not None and self.lock.lock_id == lock_id:
            self.lock = None

    async def aclose(self) -> None:
        return None


class RecordingWriter:
    """A ``DirectWriter`` that keeps every frame (a socket that reads at once)."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def write(self, data: bytes) -> bool:
        self.frames.append(data)
        return True

    def backlog(self) -> tuple[int, float]:
        return 0, 0.0

    def backlog_bytes(self) -> int:
        return 0

    def abort(self) -> None:
        return None


class RecordingSocket:
    def __init__(self) -> None:
        self.writer = RecordingWriter()
        self.closed: tuple[int, str] | None = None

    @property
    def direct(self) -> RecordingWriter:
        return self.writer

    async def send(self, data: bytes) -> None:
        self.writer.frames.append(data)

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)
