"""Content digests of local files: the local backend's etags are hex sha256 of the bytes."""

from __future__ import annotations

import hashlib
import io
import os
import time


def sha256_of(f: io.BufferedReader) -> str:
    return hashlib.file_digest(f, "sha256").hexdigest()


class DigestCache:
    """sha256 of files by (device, inode, size, mtime, ctime), so a poll does not reread them.

    The watcher stats every open room each 1.5 s; hashing a 50 MB notebook each time cost
    ~100 ms of a worker per poll (measured). Any write changes ctime (user space cannot set
    it), but two writes within the clock's granularity may share one: like git's "racy"
    entries, a file changed less than ``RACY_SECONDS`` before it was hashed is not cached.
    """

    RACY_SECONDS = 2.0
    MAX_ENTRIES = 4096

    def __init__(self) -> None:
        self._entries: dict[str, tuple[tuple[int, int, int, int, int], str]] = {}

    def digest(self, real: str, f: io.BufferedReader, st: os.stat_result) -> str:
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        cached = self._entries.get(real)
        if cached is not None and cached[0] == key:
            return cached[1]
        digest = sha256_of(f)
        newest = max(st.st_mtime_ns, st.st_ctime_ns) / 1e9
        if time.time() - newest >= self.RACY_SECONDS:
            if len(self._entries) >= self.MAX_ENTRIES:
                self._entries.pop(next(iter(self._entries)))
            self._entries[real] = (key, digest)
        else:
            self._entries.pop(real, None)
        return digest
