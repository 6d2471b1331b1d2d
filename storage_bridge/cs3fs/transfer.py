"""Downloads from the CS3 data servers: ranges, streams, and the endpoint of one file.

``InitiateFileDownload`` (gRPC) hands out an HTTP endpoint and a transfer token; the bytes are
then fetched with ``httpx``. Reva v2.27.7's data servers honour a single ``Range`` (decomposedfs
files are seekable: ``pkg/rhttp/datatx/utils/download`` answers 206 with ``Content-Range``); a
server that answers 200 instead is handled by slicing the whole body (buffered fallback).

An open file reuses its endpoint for several ranges (one gRPC call per file, not per block) and
asks for a new one when the data server refuses it (expired transfer token, new access token)
or when it is older than ``ENDPOINT_MAX_AGE``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
from cs3.storage.provider.v1beta1 import provider_api_pb2 as sp_pb

from storage_bridge.cs3 import CS3Storage, to_reference
from storage_bridge.cs3.errors import download_error
from storage_bridge.cs3.transfers import download_endpoint
from storage_bridge.errors import Unavailable

log = logging.getLogger(__name__)

ENDPOINT_MAX_AGE = 30.0  # seconds; reva's transfer tokens live transfer_expires (default 100 s)
STREAM_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class Endpoint:
    url: str
    headers: dict[str, str]
    born: float

    @property
    def stale(self) -> bool:
        return time.monotonic() - self.born > ENDPOINT_MAX_AGE


async def initiate(storage: CS3Storage, token: str, path: str) -> Endpoint:
    resp = await storage.call(
        "InitiateFileDownload",
        sp_pb.InitiateFileDownloadRequest(ref=to_reference(path, relative=True)),
        token,
        idempotent=True,
    )
    url, headers = download_endpoint(resp, token)
    return Endpoint(url, headers, time.monotonic())


class Downloads:
    """One ``httpx.AsyncClient`` per event loop for the data servers."""

    def __init__(self, *, verify: str | bool = True, timeout: float = 120.0) -> None:
        self._verify = verify
        self._timeout = timeout
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self._timeout, connect=5.0),
                verify=self._verify,
                follow_redirects=False,
            )
            self._loop = loop
        return self._client

    async def aclose(self) -> None:
        client, self._client, self._loop = self._client, None, None
        if client is not None:
            await client.aclose()

    async def fetch(
        self, ep: Endpoint, start: int | None = None, end: int | None = None
    ) -> tuple[bytes, str]:
        """Bytes ``[start, end)`` (the whole file when both are None) and the etag sent."""
        headers = dict(ep.headers)
        ranged = start is not None or end is not None
        lo = start or 0
        if ranged:
            headers["Range"] = f"bytes={lo}-" + ("" if end is None else str(end - 1))
        chunks: list[bytes] = []
        try:
            # streamed and joined once: httpx's non-streaming .content is much slower for
            # big bodies (bench/cs3fs_bench.py)
            async with self.client().stream("GET", ep.url, headers=headers) as r:
                etag = r.headers.get("etag") or r.headers.get("oc-etag") or ""
                if r.status_code not in (200, 206):
                    body = (await r.aread()).decode(errors="replace")
                    if r.status_code == 416:  # the range starts at or after the end
                        return b"", etag
                    raise download_error(r.status_code, body)
                async for chunk in r.aiter_bytes():
                    chunks.append(chunk)
        except httpx.TransportError as exc:
            raise Unavailable(f"GET download: {exc!r}") from exc
        data = b"".join(chunks)
        if ranged and r.status_code == 200:  # the server ignored Range: buffered fallback
            log.debug("data server ignored Range for %s; slicing", ep.url)
            return data[lo:end], etag
        return data, etag

    async def stream(self, ep: Endpoint, write: Callable[[bytes], Awaitable[None]]) -> int:
        """The whole file, chunk by chunk, to ``write``; the number of bytes."""
        total = 0
        try:
            async with self.client().stream("GET", ep.url, headers=ep.headers) as r:
                if r.status_code != 200:
                    body = (await r.aread()).decode(errors="replace")
                    raise download_error(r.status_code, body)
                async for chunk in r.aiter_bytes(STREAM_CHUNK):
                    await write(chunk)
                    total += len(chunk)
        except httpx.TransportError as exc:
            raise Unavailable(f"GET download: {exc!r}") from exc
        return total
