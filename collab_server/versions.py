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
from pathlib import Path

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
        self._in_memory: dict[Path, bytes] = {}  # where the disk refused (full, read-only)

    def __contains__(self, etag: object) -> bool:
        return etag in self._etags

    async def put(self, etag: str, data: bytes) -> None:
        path = self._dir / _name(etag)
        if len(data) <= self._memory_max:
            self._in_memory[path] = data
        else:
            try:
                await asyncio.to_thread(self._write, path, data)
                self._in_memory.pop(path, None)
            except OSError as exc:
                log.warning("merge base kept in memory", extra=kv(path=str(path), error=repr(exc)))
                self._in_memory[path] = data
        self._etags[etag] = path
        self._etags.move_to_end(etag)
        # at most ``keep`` versions, and at most 2 * memory_max bytes of them in memory
        # (older ones go first; the newest, the current base, always stays)
        while len(self._etags) > self._keep or (
            len(self._etags) > 1 and self._memory_bytes() > 2 * self._memory_max
        ):
            _, old = self._etags.popitem(last=False)
            if old not in self._etags.values() and self._in_memory.pop(old, None) is None:
                await asyncio.to_thread(self._remove, old)

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
        self._etags.clear()
        self._in_memory.clear()
        await asyncio.to_thread(shutil.rmtree, self._dir, True)

    def _memory_bytes(self) -> int:
        return sum(len(data) for data in self._in_memory.values())

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
