"""Give freed heap back to the OS after big, short-lived allocations (room loads, full syncs).

Opening a 10 MB notebook briefly needs ~4x its size (JSON text, parsed dict, a worker's Y
doc, the update bytes); glibc keeps most of that in its arenas after it is freed, so the
process stayed 7-8x the notebook's size for as long as it lived (measured, bench P4). A
``malloc_trim(0)`` shortly after such a peak returns the free pages. Without glibc (musl,
macOS) this does nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
from collections.abc import Callable
from typing import Any

from collab_server.logs import get_logger

log = get_logger("heap")


def _glibc_function(name: str, *argtypes: type[ctypes._SimpleCData[int]]) -> Any | None:
    """A malloc-tuning function of the C library, or None where there is none (musl, macOS)."""
    library = ctypes.util.find_library("c")
    if library is None:
        return None
    try:
        function = getattr(ctypes.CDLL(library), name)
    except (OSError, AttributeError):
        return None
    function.argtypes = list(argtypes)
    function.restype = ctypes.c_int
    return function


_M_MMAP_THRESHOLD = -3  # mallopt() parameter number in glibc's malloc.h


def pin_mmap_threshold(size: int = 256 * 1024) -> bool:
    """Serve every allocation of ``size`` bytes or more with its own mmap, returned on free.

    glibc raises its mmap threshold each time a large mmapped block is freed (up to 32 MiB),
    after which notebook-sized buffers (file bytes, Y updates, exports) come from per-thread
    arenas and stay there when freed: with one 10 MB notebook open the hub's RSS was 7.9x
    the file, 2.9x with the threshold pinned at 256 KiB (measured, bench P4). False without
    glibc.
    """
    mallopt = _glibc_function("mallopt", ctypes.c_int, ctypes.c_int)
    return mallopt is not None and bool(mallopt(_M_MMAP_THRESHOLD, size))


class HeapTrimmer:
    """``malloc_trim`` on a worker thread (a large heap takes milliseconds), one at a time."""

    def __init__(self) -> None:
        self._trim: Callable[[int], int] | None = _glibc_function("malloc_trim", ctypes.c_size_t)
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        self._again = False
        self._timers = 0  # soon() calls whose delay has not run out
        self.trims = 0

    @property
    def available(self) -> bool:
        return self._trim is not None

    @property
    def scheduled(self) -> bool:
        """A trim is waiting for its delay or running."""
        return self._timers > 0 or (self._task is not None and not self._task.done())

    def soon(self, delay: float = 0.1) -> None:
        """Something big was just freed, or will be within ``delay`` seconds: trim then."""
        if self._trim is None or self._closed:
            return
        self._timers += 1
        asyncio.get_running_loop().call_later(delay, self._kick)

    def _kick(self) -> None:
        self._timers -= 1
        if self._closed:
            return
        if self._task is not None and not self._task.done():
            self._again = True  # what was freed during this trim gets the next one
            return
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        trim = self._trim
        assert trim is not None
        while True:
            self._again = False
            try:
                await asyncio.to_thread(trim, 0)
                self.trims += 1
            except Exception:  # never worth failing anything else for
                log.exception("malloc_trim failed")
                return
            if not self._again:
                return

    async def aclose(self) -> None:
        self._closed = True
        if self._task is not None and not self._task.done():
            await asyncio.gather(self._task, return_exceptions=True)
