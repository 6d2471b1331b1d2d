"""Open ``cs3://`` files: fsspec's ``AbstractBufferedFile`` on ``CS3FileSystem``.

- ``rb``: blocks are fetched with HTTP ranges (fsspec's read-ahead cache); the download endpoint
  is reused between blocks and renewed when refused, so a token refreshed during a long read is
  picked up without failing it.
- ``wb`` / ``xb``: the bytes are kept until ``close()`` and uploaded in one request (CS3's simple
  upload protocol takes the whole file); a file open in a cs3collab room goes through the hub.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from fsspec.asyn import sync
from fsspec.spec import AbstractBufferedFile

from storage_bridge.cs3fs.transfer import Endpoint


class _FileSystem(Protocol):
    """What a file needs of ``CS3FileSystem`` (named here so fs and file do not import each
    other: the filesystem creates its files, a file only calls back)."""

    loop: asyncio.AbstractEventLoop

    def info(self, path: str) -> dict[str, Any]: ...

    async def _read_range(
        self, path: str, start: int | None, end: int | None, ep: Endpoint | None = None
    ) -> tuple[bytes, Endpoint]: ...

    async def _write(self, path: str, data: bytes, *, create: bool = False) -> str: ...


class CS3File(AbstractBufferedFile):  # type: ignore[misc]  # fsspec is untyped
    fs: _FileSystem

    def __init__(
        self,
        fs: _FileSystem,
        path: str,
        mode: str = "rb",
        block_size: int | None = None,
        autocommit: bool = True,
        cache_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._endpoint: Endpoint | None = None
        if mode == "rb" and "size" not in kwargs:
            self._details = fs.info(path)  # one Stat gives the size (and a clear 404 at open)
            kwargs["size"] = self._details["size"]
        super().__init__(
            fs, path, mode, block_size or "default", autocommit,
            cache_options=cache_options, **kwargs,
        )  # fmt: skip

    def _fetch_range(self, start: int, end: int) -> bytes:
        data, self._endpoint = sync(
            self.fs.loop, self.fs._read_range, self.path, start, end, self._endpoint
        )
        assert isinstance(data, bytes)
        return data

    def _initiate_upload(self) -> None:
        """Nothing to do: the whole file is uploaded at ``close()``."""

    def _upload_chunk(self, final: bool = False) -> bool:
        if not final:
            return False  # keep buffering (fsspec then keeps the buffer as it is)
        data = self.buffer.getvalue()
        sync(self.fs.loop, self.fs._write, self.path, data, create=self.mode == "xb")
        return True
