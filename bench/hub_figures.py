"""Two hub figures: time to first SyncStep2 for a large notebook, and RSS with N open rooms.

    python -m bench.hub_figures [--size-mb 5] [--rooms 100] [--repeat 3]

Runs the real hub (uvicorn subprocess) on a temporary folder. Peer comparisons live in
bench/run.py; this is the quick single-server check.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import websockets
from pycrdt import Doc, create_sync_message

from bench.notebooks import make_notebook
from devkit.hubproc import HubProcess


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def time_to_sync_step2(url: str) -> float:
    started = time.perf_counter()
    async with websockets.connect(url, max_size=2**28) as ws:
        await ws.send(create_sync_message(Doc()))
        async for message in ws:
            assert isinstance(message, bytes)
            if message[:2] == b"\x00\x01":
                return time.perf_counter() - started
    raise RuntimeError("closed before SyncStep2")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=float, default=5)
    parser.add_argument("--rooms", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        root.mkdir()
        nb_bytes = json.dumps(make_notebook(int(args.size_mb * 1e6)), indent=1).encode()
        cold, warm = [], []
        for r in range(args.repeat):
            (root / f"big{r}.ipynb").write_bytes(nb_bytes)
        hub = HubProcess(root=root, data_dir=Path(tmp) / "data").start()
        try:
            for r in range(args.repeat):
                info = hub.open(f"big{r}.ipynb")
                cold.append(await time_to_sync_step2(hub.room_url(info)))  # room loads
                warm.append(await time_to_sync_step2(hub.room_url(info)))  # room in memory
            results["notebook_bytes"] = len(nb_bytes)
            results["cold_sync_step2_s"] = {"median": statistics.median(cold), "all": cold}
            results["warm_sync_step2_s"] = {"median": statistics.median(warm), "all": warm}
        finally:
            hub.stop()

        small = json.dumps(make_notebook(20_000), indent=1).encode()
        for i in range(args.rooms):
            (root / f"room{i}.ipynb").write_bytes(small)
        hub = HubProcess(root=root, data_dir=Path(tmp) / "data2").start()
        assert hub.proc is not None
        try:
            base = rss_kib(hub.proc.pid)
            sockets = []
            for i in range(args.rooms):
                info = hub.open(f"room{i}.ipynb")
                ws = await websockets.connect(hub.room_url(info), max_size=2**28)
                await ws.send(create_sync_message(Doc()))
                async for message in ws:
                    if isinstance(message, bytes) and message[:2] == b"\x00\x01":
                        break
                sockets.append(ws)
            loaded = rss_kib(hub.proc.pid)
            results["rooms"] = args.rooms
            results["room_notebook_bytes"] = len(small)
            results["rss_idle_mib"] = round(base / 1024, 1)
            results["rss_with_rooms_mib"] = round(loaded / 1024, 1)
            results["rss_per_room_kib"] = round((loaded - base) / args.rooms, 1)
            for ws in sockets:
                await ws.close()
        finally:
            hub.stop()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
