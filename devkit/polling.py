"""Waiting with a deadline: for a server process to answer, or for an asyncio-signalled state.

Written once here because the tests and the benchmarks each had their own copies (hub, Jupyter
server and revad start-up; the Y clients' ``wait_for``).
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import Callable, Mapping

import httpx


def poll_until(
    ready: Callable[[], bool],
    *,
    timeout: float,
    interval: float,
    failed: Callable[[], BaseException | None] = lambda: None,
) -> bool:
    """Call ``ready()`` every ``interval`` s until it is true (True) or ``timeout`` passes
    (False). ``failed()`` is asked first each round; an exception it returns is raised (e.g.
    the server process exited, so waiting longer is pointless)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        error = failed()
        if error is not None:
            raise error
        if ready():
            return True
        time.sleep(interval)
    return False


def process_exited(
    proc: subprocess.Popen[bytes], message: Callable[[], str]
) -> Callable[[], BaseException | None]:
    """A ``failed`` check for ``poll_until``: ``RuntimeError(message())`` once ``proc`` exited
    (``message`` is called then, so it can read the process's log)."""

    def check() -> BaseException | None:
        return None if proc.poll() is None else RuntimeError(message())

    return check


def http_ok(url: str, *, headers: Mapping[str, str] | None = None, timeout: float = 1) -> bool:
    """Whether GET ``url`` answers 200 now; a refused or failed connection is simply "not yet"
    (the server is still starting)."""
    try:
        return httpx.get(url, headers=headers, timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


async def wait_for_change(
    cond: Callable[[], bool],
    changed: asyncio.Event,
    timeout: float,
    *,
    poll: float | None = None,
) -> None:
    """Wait until ``cond()`` holds, re-checking whenever ``changed`` is set (and every ``poll``
    s, for state that changes without setting it); ``AssertionError`` at the deadline."""
    deadline = time.monotonic() + timeout
    while not cond():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError("condition not met before the deadline")
        changed.clear()
        if cond():
            return
        wait = remaining if poll is None else min(remaining, poll)
        # A timeout here is the normal "nothing changed yet": the loop checks the deadline.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), wait)
