"""One dedicated thread for a SQLite connection's blocking calls (``SQLiteExecutor``).

Shared by the local backend's index (``storage_bridge.local``) and the hub's update log
(``collab_server.update_log``): both keep one connection that only this thread touches. A
single worker also serialises the calls in submission order, which SQLite wants anyway and
which lets the callers do check-then-act sequences without an asyncio lock.

It lives in storage_bridge because collab_server may import storage_bridge, not the reverse
(docs/ARCHITECTURE.md §2).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class ExecutorClosed(RuntimeError):
    """A call after ``aclose`` (or after ``shutdown``): nothing runs any more.

    A ``RuntimeError``, as ``run_in_executor`` on a shut-down pool raised before, so callers
    that did not translate it see the same exception type."""


class SQLiteExecutor:
    """Runs blocking calls one at a time, in order, on one thread named ``name``-N."""

    def __init__(self, name: str) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args, **kwargs)`` on the thread, after every call submitted before it."""
        if self._closed:
            raise ExecutorClosed("the SQLite thread is closed")
        call = functools.partial(fn, *args, **kwargs)
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, call)
        except RuntimeError as exc:
            # The pool refuses new work once shut down (a concurrent aclose() or shutdown(),
            # both of which set _closed first); a RuntimeError raised by ``fn`` goes through.
            if self._closed:
                raise ExecutorClosed("the SQLite thread is closed") from exc
            raise

    def submit(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        """Queue a call from any thread (tests use it to interleave with the owner's calls)."""
        return self._pool.submit(fn, *args, **kwargs)

    async def aclose(self, last: Callable[[], object] | None = None) -> None:
        """Refuse new calls, run ``last`` (e.g. closing the connection) after every call already
        queued, then stop the thread. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            if last is not None:
                await asyncio.get_running_loop().run_in_executor(self._pool, last)
        finally:
            # Nothing is queued behind ``last``: the join below waits for an idle thread only.
            self._pool.shutdown(wait=True)

    def shutdown(self, wait: bool = True) -> None:
        """Stop the thread without a last call (the model tests' simulated ``kill -9``)."""
        self._closed = True
        self._pool.shutdown(wait=wait)
