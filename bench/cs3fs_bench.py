"""``cs3://`` (storage_bridge.cs3fs) against a running revad: read throughput and ``ls`` of a big
folder.

    scripts/revad-start &                 # prints {"gateway": "127.0.0.1:PORT", ...}
    python -m bench.cs3fs_bench --gateway 127.0.0.1:PORT [--size-mb 200] [--entries 10000]

1. Read throughput of one ``--size-mb`` file, in the same run and interleaved (medians of
   ``--repeat`` rounds): a plain HTTP download from the data server (``InitiateFileDownload`` +
   one ``httpx`` GET; bytes dropped as they arrive, and joined in memory), then
   ``CS3FileSystem.cat_file`` (one GET, returns the bytes) and ``open("rb")`` read in 8 MiB
   pieces (HTTP ranges through fsspec's read-ahead cache, as pandas/xarray read). Ratios are
   against the dropping download. Goal: cs3:// >= 0.8x plain.
2. ``ls`` of a folder with ``--entries`` empty files: ``CS3FileSystem.ls`` (detail) against the
   bare ``ListContainer`` gRPC call (``CS3Storage.list``).

The revad is not started here: bench/ does not import tests/ (``scripts/revad-start`` runs the
test revad; any gateway with a basic-auth user works).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
import uuid
from typing import Any

import httpx
from cs3.storage.provider.v1beta1 import provider_api_pb2 as sp_pb
from cs3.types.v1beta1 import types_pb2

from storage_bridge.cs3 import CS3Storage, to_reference
from storage_bridge.cs3fs import CS3FileSystem
from storage_bridge.cs3fs.transfer import initiate

MB = 1_000_000
PIECE = 8 * 2**20


async def plain_download(storage: CS3Storage, token: str, path: str, *, keep: bool) -> int:
    """InitiateFileDownload + one GET; the bytes are dropped as they come (like ``curl -o
    /dev/null``) or, with ``keep``, joined into one ``bytes`` (what ``cat_file`` returns)."""
    ep = await initiate(storage, token, path)
    total = 0
    chunks: list[bytes] = []
    async with (
        httpx.AsyncClient(timeout=300) as client,
        client.stream("GET", ep.url, headers=ep.headers) as r,
    ):
        r.raise_for_status()
        async for chunk in r.aiter_bytes():
            total += len(chunk)
            if keep:
                chunks.append(chunk)
    if keep:
        total = len(b"".join(chunks))
    return total


def fs_cat(fs: CS3FileSystem, path: str) -> int:
    return len(fs.cat_file(path))


def fs_open_read(fs: CS3FileSystem, path: str) -> int:
    total = 0
    with fs.open(path, "rb", block_size=PIECE) as f:
        while piece := f.read(PIECE):
            total += len(piece)
    return total


async def make_entries(storage: CS3Storage, token: str, folder: str, n: int) -> None:
    """``n`` empty files (Upload-Length 0: decomposedfs creates them in InitiateFileUpload)."""
    sem = asyncio.Semaphore(32)
    opaque = types_pb2.Opaque(
        map={"Upload-Length": types_pb2.OpaqueEntry(decoder="plain", value=b"0")}
    )

    async def one(i: int) -> None:
        async with sem:
            req = sp_pb.InitiateFileUploadRequest(
                ref=to_reference(f"{folder}/e{i:05d}.txt", relative=True), opaque=opaque
            )
            await storage.call("InitiateFileUpload", req, token)

    await asyncio.gather(*(one(i) for i in range(n)))


def timed(fn: Any, *args: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


async def run(args: argparse.Namespace) -> dict[str, Any]:
    storage = CS3Storage(args.gateway, transfer_timeout=600)
    token = await storage.authenticate(args.user, args.password)
    user = await storage.whoami(token)
    home = storage.settings.personal_space_path.format(owner_id=user.id)
    base = f"{home}/bench-cs3fs-{uuid.uuid4().hex[:8]}"
    await storage.mkdir(token, base)
    fs = CS3FileSystem(args.gateway, token=token, skip_instance_cache=True, transfer_timeout=600)
    result: dict[str, Any] = {"size_mb": args.size_mb, "entries": args.entries}
    try:
        big = f"{base}/big.bin"
        size = int(args.size_mb * MB)
        await storage.write(token, big, os.urandom(size))
        names = ("plain_http", "plain_http_to_memory", "cs3fs_cat_file", "cs3fs_open_read")
        runs: dict[str, list[float]] = {k: [] for k in names}
        for _ in range(args.repeat):
            for keep, key in ((False, "plain_http"), (True, "plain_http_to_memory")):
                t0 = time.perf_counter()
                assert await plain_download(storage, token, big, keep=keep) == size
                runs[key].append(time.perf_counter() - t0)
            dt, n = await asyncio.to_thread(timed, fs_cat, fs, big)
            assert n == size
            runs["cs3fs_cat_file"].append(dt)
            dt, n = await asyncio.to_thread(timed, fs_open_read, fs, big)
            assert n == size
            runs["cs3fs_open_read"].append(dt)
        mbps = {k: size / MB / statistics.median(v) for k, v in runs.items()}
        result["read_MBps_median"] = {k: round(v, 1) for k, v in mbps.items()}
        result["read_ratio_vs_plain"] = {
            k: round(v / mbps["plain_http"], 3) for k, v in mbps.items() if k != "plain_http"
        }
        result["load_average_1m"] = round(os.getloadavg()[0], 2)
        await storage.delete(token, big)

        folder = f"{base}/many"
        await storage.mkdir(token, folder)
        t0 = time.perf_counter()
        await make_entries(storage, token, folder, args.entries)
        result["create_entries_s"] = round(time.perf_counter() - t0, 2)
        ls_runs, raw_runs = [], []
        for _ in range(args.repeat):
            dt, names = await asyncio.to_thread(timed, fs.ls, folder)
            assert len(names) == args.entries, len(names)
            ls_runs.append(dt)
            t0 = time.perf_counter()
            assert len(await storage.list(token, folder)) == args.entries
            raw_runs.append(time.perf_counter() - t0)
        result["ls_s_median"] = {
            "cs3fs_ls": round(statistics.median(ls_runs), 3),
            "ListContainer": round(statistics.median(raw_runs), 3),
        }
    finally:
        await storage.delete(token, base)
        await asyncio.to_thread(fs.close)
        await storage.aclose()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gateway", default=os.environ.get("CS3_GATEWAY", ""))
    parser.add_argument("--user", default="einstein")
    parser.add_argument("--password", default=os.environ.get("CS3_PASSWORD", "relativity"))
    parser.add_argument("--size-mb", type=float, default=200)
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if not args.gateway:
        parser.error("--gateway (or CS3_GATEWAY) is required; start one with scripts/revad-start")
    print(json.dumps(asyncio.run(run(args)), indent=2))


if __name__ == "__main__":
    main()
