"""The stored versions a room may need as a merge base: small ones in memory, big ones on disk.

A room needs the bytes storage held when it last read or wrote the file (the three-way merge
base for an external writer), and a few older ones (the base of a writer that says which
version it started from). They are needed only when someone writes beside the hub. Kept in
memory, a big notebook's base cost 1x its size per room on top of the Y doc's ~2x (measured,
bench P4), so versions over ``memory_max`` live in files under the data dir instead, written
on a worker thread without fsync (a cache for the life of the room; after a crash the update
log's base hash and storage take over). Small ones stay in memory: writing each snapshot's
bytes twice (storage and here) doubled the hub's own disk writes while typing (bench P5).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
from collections import OrderedDict
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from collab_server.logs import get_logger, kv

log = get_logger("versions")


def _name(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:32]


class StoredVersions:
    """Up to ``keep`` versions of one file, by etag, newest last."""

    def __init__(
        self, root: Path, room: str, keep: int = 16, memory_max: int = 4 * 1024 * 1024
    ) -> None:
        self._dir = root / _name(room)
        self._keep = keep
        self._memory_max = memory_max
        self._etags: OrderedDict[str, Path] = OrderedDict()
        # small versions, big ones until their file is written, and where the disk refused
        self._in_memory: dict[Path, bytes] = {}
        self._spilling: set[Path] = set()
        self._pending: set[asyncio.Task[None]] = set()

    def __contains__(self, etag: object) -> bool:
        return etag in self._etags

    def remember(self, etag: str, data: bytes) -> None:
        """Keep ``data`` as version ``etag`` now; a big one reaches its file in the background
        (readable from memory meanwhile), so a room's open does not wait for that write."""
        path = self._dir / _name(etag)
        self._in_memory[path] = data
        self._etags[etag] = path
        self._etags.move_to_end(etag)
        if len(data) > self._memory_max:
            self._spilling.add(path)
            self._background(self._spill(path, data))
        self._evict()

    async def put(self, etag: str, data: bytes) -> None:
        """``remember``, and wait until its file (and any removal) is done."""
        self.remember(etag, data)
        await self._settle()

    async def _spill(self, path: Path, data: bytes) -> None:
        try:
            await asyncio.to_thread(self._write, path, data)
        except OSError as exc:
            log.warning("merge base kept in memory", extra=kv(path=str(path), error=repr(exc)))
            self._spilling.discard(path)
            self._evict()  # it counts against the memory budget now
            return
        self._spilling.discard(path)
        if path not in self._etags.values():  # evicted while it was being written
            self._remove(path)
        elif self._in_memory.get(path) is data:
            del self._in_memory[path]

    def _evict(self) -> None:
        # at most ``keep`` versions, and at most 2 * memory_max bytes of them held in memory
        # (older ones go first; the newest, the current base, always stays)
        while len(self._etags) > self._keep or (
            len(self._etags) > 1 and self._memory_bytes() > 2 * self._memory_max
        ):
            _, old = self._etags.popitem(last=False)
            if old in self._etags.values() or old in self._spilling:
                continue  # still in use, or its writer removes it when done
            if self._in_memory.pop(old, None) is None:
                self._background(asyncio.to_thread(self._remove, old))

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _settle(self) -> None:
        while self._pending:
            await asyncio.gather(*self._pending)

    async def get(self, etag: str) -> bytes | None:
        path = self._etags.get(etag)
        if path is None:
            return None
        if path in self._in_memory:
            return self._in_memory[path]
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:  # someone cleaned the data dir under us
            del self._etags[etag]
            return None

    async def remove_all(self) -> None:
        await self._settle()
        self._etags.clear()
        self._in_memory.clear()
        await asyncio.to_thread(shutil.rmtree, self._dir, True)

    def _memory_bytes(self) -> int:
        return sum(len(d) for p, d in self._in_memory.items() if p not in self._spilling)

    @staticmethod
    def _remove(path: Path) -> None:
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:  # a leftover file costs disk only; the room goes on
            log.warning("old merge base not removed", extra=kv(path=str(path), error=repr(exc)))

    def _write(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
