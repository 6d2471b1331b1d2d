"""Snapshot latency of the hub to a real revad for a notebook of a given size.

    python -m bench.cs3_snapshot [--size-mb 1] [--saves 20]

Starts revad (devkit/revad, built by scripts/revad-build) and the hub with --storage cs3, opens a
notebook as einstein, and times explicit ``save`` round trips after a one-character edit: each
is export (nbformat validation) + InitiateFileUpload + PUT + Stat. Also reports the hub's own
``cs3collab_snapshot_seconds`` histogram.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from bench.notebooks import make_notebook
from devkit.hubproc import HubProcess
from devkit.revad.launcher import USERS, build_revad, home_path, start_revad
from devkit.yclient import YClient
from storage_bridge.cs3 import CS3Storage


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=float, default=1.0)
    parser.add_argument("--saves", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        revad = start_revad(Path(tmp) / "revad", binary=build_revad())
        storage = CS3Storage(revad.gateway)
        hub = None
        try:
            token = await storage.authenticate("einstein", USERS["einstein"][0])
            data = json.dumps(make_notebook(int(args.size_mb * 1e6)), indent=1).encode()
            path = f"{home_path('einstein')}/bench.ipynb"
            await storage.create(token, path, data)
            hub = HubProcess(
                root=Path(tmp) / "root",
                data_dir=Path(tmp) / "data",
                args=["--storage", "cs3", "--gateway", revad.gateway],
                env={
                    "CS3COLLAB_SNAPSHOT_DEBOUNCE": "600",
                    "CS3COLLAB_SNAPSHOT_MAX_DEBOUNCE": "600",
                },
            ).start()
            r = hub.session(path, token=token)
            client = await YClient(hub.room_url(r.json(), token=token)).connect()
            times = []
            for i in range(args.saves):
                client.append_source(0, str(i % 10))
                await client.wait_for(lambda: client.view.ystate.get("dirty") is True)
                started = time.perf_counter()
                reply = await client.save(i + 1)
                times.append(time.perf_counter() - started)
                assert reply["status"] == "success", reply
            await client.close()
            metrics = (await asyncio.to_thread(httpx.get, f"{hub.http_url}/metrics")).text
            count = next(float(x.split()[-1]) for x in metrics.splitlines()
                         if x.startswith("cs3collab_snapshot_seconds_count"))  # fmt: skip
            total = next(float(x.split()[-1]) for x in metrics.splitlines()
                         if x.startswith("cs3collab_snapshot_seconds_sum"))  # fmt: skip
            print(json.dumps({
                "notebook_bytes": len(data),
                "save_round_trip_ms": {"median": round(statistics.median(times) * 1000, 1),
                                       "p90": round(sorted(times)[int(0.9 * len(times))] * 1000, 1),
                                       "min": round(min(times) * 1000, 1)},
                "hub_snapshot_ms_mean": round(total / count * 1000, 1),
                "snapshots": int(count),
            }, indent=2))  # fmt: skip
        finally:
            if hub is not None:
                hub.stop()
            await storage.aclose()
            revad.stop()


if __name__ == "__main__":
    asyncio.run(main())
