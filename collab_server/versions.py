"""The stored versions a room may need as a merge base, kept on the hub's disk, not in memory.

A room needs the bytes storage held when it last read or wrote the file (the three-way merge
base for an external writer), and a few older ones (the base of a writer that says which
version it started from). They are needed only when someone writes beside the hub, so they
live in files: in memory they cost 1x the notebook per room on top of the Y doc's ~2x
(measured, bench P4). Files are written on a worker thread, without fsync: this is a cache
for the life of the room; after a crash the update log's base hash and storage take over.
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

    def __init__(self, root: Path, room: str, keep: int = 16) -> None:
        self._dir = root / _name(room)
        self._keep = keep
        self._etags: OrderedDict[str, Path] = OrderedDict()
        self._in_memory: dict[Path, bytes] = {}  # where the disk refused (full, read-only)

    def __contains__(self, etag: object) -> bool:
        return etag in self._etags

    async def put(self, etag: str, data: bytes) -> None:
        path = self._dir / _name(etag)
        try:
            await asyncio.to_thread(self._write, path, data)
            self._in_memory.pop(path, None)
        except OSError as exc:
            log.warning("merge base kept in memory", extra=kv(path=str(path), error=repr(exc)))
            self._in_memory[path] = data
        self._etags[etag] = path
        self._etags.move_to_end(etag)
        while len(self._etags) > self._keep:
            _, old = self._etags.popitem(last=False)
            in_use = old in self._etags.values()
            if not in_use and self._in_memory.pop(old, None) is None:
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
