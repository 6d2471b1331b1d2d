"""Background tasks that cannot die in silence.

A task the hub starts in the background (a room's dispatcher, its storage watcher, a snapshot,
the registry's loads and unloads) runs through ``supervised``: when it raises anything but a
cancellation, the exception is logged with its context, counted in
``cs3collab_task_failures{task}``, and the owner's ``on_failure`` runs (a room then closes its
clients with a reconnectable code and reloads from its log). A task whose result nobody awaits
would otherwise only print "Task exception was never retrieved" at garbage collection, if ever:
exactly how a room once stopped without a trace.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from prometheus_client import Counter

from collab_server.logs import get_logger, kv

log = get_logger("supervise")
T = TypeVar("T")


def supervised(
    coro: Coroutine[Any, Any, T],
    *,
    task: str,
    failures: Counter,
    on_failure: Callable[[BaseException], None] | None = None,
    **context: object,
) -> asyncio.Task[T]:
    """Start ``coro`` as a task whose unexpected end is logged, counted and reported."""
    handle = asyncio.get_running_loop().create_task(coro, name=task)

    def done(finished: asyncio.Task[T]) -> None:
        if finished.cancelled():
            return
        exc = finished.exception()
        if exc is None:
            return
        failures.labels(task).inc()
        log.error(
            "background task failed",
            exc_info=exc,
            extra=kv(task=task, error=repr(exc), **context),
        )
        if on_failure is not None:
            try:
                on_failure(exc)
            except Exception as handler_exc:  # the handler itself must not hide the first error
                failures.labels(f"{task}.on_failure").inc()
                log.exception(
                    "failure handler failed",
                    extra=kv(task=task, error=repr(handler_exc), **context),
                )

    handle.add_done_callback(done)
    return handle
