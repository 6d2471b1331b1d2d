"""Count completed writes of files in a folder with Linux inotify (ctypes, no dependency).

A "write" is a file closed after writing (IN_CLOSE_WRITE: in-place saves, e.g. Jupyter's) or
a file renamed into place (IN_MOVED_TO: atomic temp+rename saves, e.g. cs3collab's). Each one
records the file's size right after the event, so bytes written = the sum of those sizes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import select
import struct
import threading
from collections import defaultdict
from pathlib import Path

IN_CLOSE_WRITE = 0x00000008
IN_MOVED_TO = 0x00000080
IN_NONBLOCK = 0o4000
_EVENT = struct.Struct("iIII")

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


class WriteCounter:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.writes: dict[str, int] = defaultdict(int)
        self.bytes: dict[str, int] = defaultdict(int)
        self._fd = _libc.inotify_init1(IN_NONBLOCK)
        if self._fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        wd = _libc.inotify_add_watch(self._fd, str(folder).encode(), IN_CLOSE_WRITE | IN_MOVED_TO)
        if wd < 0:
            raise OSError(ctypes.get_errno(), f"inotify_add_watch {folder}")
        self._stop = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True, name="fswatch")
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            ready, _, _ = select.select([self._fd], [], [], 0.2)
            if not ready:
                continue
            try:
                buf = os.read(self._fd, 65536)
            except BlockingIOError:
                continue
            pos = 0
            while pos < len(buf):
                _wd, _mask, _cookie, length = _EVENT.unpack_from(buf, pos)
                name = buf[pos + _EVENT.size : pos + _EVENT.size + length].rstrip(b"\0").decode()
                pos += _EVENT.size + length
                try:
                    size = (self.folder / name).stat().st_size
                except OSError:
                    size = 0
                with self._lock:
                    self.writes[name] += 1
                    self.bytes[name] += size

    def snapshot(self, name: str) -> tuple[int, int]:
        with self._lock:
            return self.writes.get(name, 0), self.bytes.get(name, 0)

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        os.close(self._fd)
