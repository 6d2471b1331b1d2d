"""Event-loop lag: how late a timer fires is how long every socket of the hub waited.

Every edit of every room goes through one event loop, so a stall (a long export, a garbage
collection, a blocking call) delays all of them; this makes such stalls visible in /metrics
(``cs3collab_event_loop_lag_seconds``) instead of only in client-side latency figures.
"""

from __future__ import annotations

import asyncio
import time

from prometheus_client import Histogram


async def watch_loop_lag(histogram: Histogram, interval: float = 0.05) -> None:
    """Observe the oversleep of an ``interval`` timer until cancelled."""
    while True:
        start = time.perf_counter()
        await asyncio.sleep(interval)
        histogram.observe(max(0.0, time.perf_counter() - start - interval))
