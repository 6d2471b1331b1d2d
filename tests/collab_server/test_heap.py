"""Heap tuning: the pinned mmap threshold gives big buffers back; the trimmer runs, coalesced."""

from __future__ import annotations

import asyncio
import platform
import subprocess
import sys

from collab_server.heap import HeapTrimmer, pin_mmap_threshold

GLIBC = platform.libc_ver()[0] == "glibc"

# Run in a fresh interpreter: the allocator's state of the test process is not ours to change.
_PROBE = """
import sys
from collab_server.heap import pin_mmap_threshold

def rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20

if sys.argv[1] == "pin":
    assert pin_mmap_threshold()
base = rss_mib()
growth = []
for _ in range(3):
    # bytearray(n) touches every page; freeing it must give them back every time
    buf = bytearray(8 * 2**20)
    del buf
    growth.append(rss_mib() - base)
print(max(growth))
"""


def _leftover_mib(mode: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True
    )
    return float(out.stdout)


def test_pinned_threshold_returns_freed_buffers() -> None:
    assert pin_mmap_threshold() is GLIBC
    if GLIBC:
        # glibc's own policy keeps a freed 8 MiB buffer (its threshold rose past it) ...
        assert _leftover_mib("default") > 6
        # ... pinned, every one goes back to the OS
        assert _leftover_mib("pin") < 2


async def test_trimmer_runs_and_coalesces() -> None:
    trimmer = HeapTrimmer()
    assert trimmer.available is GLIBC
    for _ in range(5):
        trimmer.soon(0.01)
    for _ in range(200):
        if trimmer.trims:
            break
        await asyncio.sleep(0.01)
    await trimmer.aclose()  # waits for the running trim and its follow-up, if any
    expected = range(1, 3) if GLIBC else range(0, 1)
    assert trimmer.trims in expected  # five requests, at most one trim plus one follow-up
    trimmer.soon(0)
    assert not trimmer.scheduled  # closed: nothing more is even scheduled
    assert trimmer.trims in expected
