"""The shared SQLite thread (storage_bridge.sqlite_executor): one thread, calls in order, a last
call on close, and a clear error after it."""

from __future__ import annotations

import asyncio
import threading

import pytest

from storage_bridge.sqlite_executor import ExecutorClosed, SQLiteExecutor


async def test_calls_run_in_submission_order_on_one_named_thread() -> None:
    ex = SQLiteExecutor("test-sqlite")
    seen: list[tuple[int, str]] = []

    def record(i: int) -> int:
        seen.append((i, threading.current_thread().name))
        return i * 2

    results = await asyncio.gather(*(ex.run(record, i) for i in range(50)))
    await ex.aclose()
    assert results == [i * 2 for i in range(50)]
    assert [i for i, _ in seen] == list(range(50))
    names = {name for _, name in seen}
    assert len(names) == 1 and next(iter(names)).startswith("test-sqlite")


async def test_aclose_runs_last_after_queued_calls_then_refuses() -> None:
    ex = SQLiteExecutor("test-sqlite")
    order: list[str] = []
    gate = threading.Event()

    def slow() -> None:
        gate.wait(5)
        order.append("slow")

    pending = asyncio.ensure_future(ex.run(slow))
    await asyncio.sleep(0)  # submitted before the close
    closing = asyncio.ensure_future(ex.aclose(lambda: order.append("last")))
    await asyncio.sleep(0.05)
    gate.set()
    await pending
    await closing
    assert order == ["slow", "last"]
    assert ex.closed
    with pytest.raises(ExecutorClosed):
        await ex.run(order.append, "late")
    assert isinstance(ExecutorClosed("x"), RuntimeError)  # what run_in_executor raised before
    await ex.aclose()  # idempotent
    assert order == ["slow", "last"]


async def test_a_runtime_error_of_the_call_itself_is_not_taken_for_closing() -> None:
    ex = SQLiteExecutor("test-sqlite")

    def boom() -> None:
        raise RuntimeError("from the call")

    with pytest.raises(RuntimeError, match="from the call") as info:
        await ex.run(boom)
    assert not isinstance(info.value, ExecutorClosed)
    await ex.aclose()


async def test_submit_queues_behind_run_and_shutdown_refuses_new_calls() -> None:
    # submit() and shutdown() are what the model test's simulated kill -9 uses.
    ex = SQLiteExecutor("test-sqlite")
    order: list[str] = []
    first = asyncio.ensure_future(ex.run(order.append, "run"))
    await asyncio.sleep(0)
    await asyncio.wrap_future(ex.submit(order.append, "submit"))
    await first
    ex.shutdown(wait=True)
    assert order == ["run", "submit"]
    with pytest.raises(ExecutorClosed):
        await ex.run(order.append, "late")
