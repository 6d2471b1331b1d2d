"""``CS3FileSystem``: the fsspec filesystem for ``cs3://`` (an ``AsyncFileSystem``).

Metadata goes over gRPC (``storage_bridge.cs3.CS3Storage``), bytes over HTTP from the data
servers (``transfer``). Paths are described in ``paths``, settings in ``env``. Every call takes
the token from the ``TokenSource`` at the moment it runs, so a token file refreshed by the
Jupyter server is picked up by running kernels; a refusal re-reads the file and retries once.

Writes upload the whole file in one request (CS3 "simple" protocol). A file locked by a
cs3collab room is written through the hub (``hubwrite``) when ``CS3_HUB_URL`` is known, and
refused with ``LockedError`` ("locked by cs3collab: ...") otherwise.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from fsspec.asyn import AsyncFileSystem, sync
from fsspec.utils import stringify_path

from storage_bridge.cs3 import CS3Storage
from storage_bridge.cs3fs import paths
from storage_bridge.cs3fs.env import Settings, TokenSource
from storage_bridge.cs3fs.errors import ROOM_APP, LockedError, room_locked, to_oserror
from storage_bridge.cs3fs.hubwrite import write_document
from storage_bridge.cs3fs.transfer import Downloads, Endpoint, initiate
from storage_bridge.errors import (
    Locked,
    NotFound,
    PreconditionFailed,
    StorageError,
    Unauthenticated,
)
from storage_bridge.types import Resource

log = logging.getLogger(__name__)

T = TypeVar("T")
_MAX_REMEMBERED = 1024  # etags of reads kept as merge bases for writes through the hub


def _info(name: str, res: Resource) -> dict[str, Any]:
    return {
        "name": name,
        "size": 0 if res.is_dir else res.size,
        "type": "directory" if res.is_dir else "file",
        "etag": res.etag,
        "mtime": res.mtime,
        "path": res.path,  # the absolute CS3 path
        "id": res.id.to_file_id(),
        "writable": res.permissions.create_container if res.is_dir else res.permissions.write,
        "locked_by": res.lock.app_name if res.lock else None,
        "checksum": res.checksum,
    }


class CS3FileSystem(AsyncFileSystem):  # type: ignore[misc]  # fsspec is untyped
    """``cs3://`` on a CS3 gateway (Reva), as one user (the token's)."""

    protocol = (paths.PROTOCOL,)
    root_marker = ""

    def __init__(
        self,
        gateway: str | None = None,
        *,
        token: str | None = None,
        token_file: str | None = None,
        home: str | None = None,
        cwd: str | None = None,
        hub_url: str | None = None,
        tls: bool | None = None,
        ca_file: str | None = None,
        timeout: float = 10.0,
        transfer_timeout: float = 120.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.settings = Settings.resolve(
            gateway=gateway,
            token=token,
            token_file=token_file,
            home=home,
            cwd=cwd,
            hub_url=hub_url,
            tls=tls,
            ca_file=ca_file,
        )
        s = self.settings
        self.tokens = TokenSource(s.token, s.token_file)
        self.storage = CS3Storage(
            s.gateway, tls=s.tls, ca_file=s.ca_file or None, timeout=timeout,
            transfer_timeout=transfer_timeout,
        )  # fmt: skip
        self.downloads = Downloads(verify=s.ca_file or True, timeout=transfer_timeout)
        self._home: str | None = "/" + s.home.strip("/") if s.home.startswith("/") else None
        self._read_etags: dict[str, str] = {}
        self.hub_writes = 0  # writes handed to the hub because a room held the file

    # ---- paths ----

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        return paths.strip(stringify_path(path))

    @classmethod
    def _parent(cls, path: str) -> str:
        return paths.parent(path)

    def unstrip_protocol(self, name: str) -> str:
        return f"{paths.PROTOCOL}://{self._strip_protocol(name)}"

    async def _home_path(self) -> str:
        if self._home is None:
            user = await self._call("", self.storage.whoami)
            home = self.storage.settings.personal_space_path.format(owner_id=user.id)
            if self.settings.home:  # relative to the personal space
                home = paths.absolute(paths.strip(self.settings.home), home=home, cwd=home)
            self._home = home
        return self._home

    async def _abs(self, path: str) -> str:
        """The absolute CS3 path of a user path (any form)."""
        p = self._strip_protocol(path)
        if p.startswith("/"):
            return str(p)
        home = await self._home_path()
        cwd = self.settings.cwd
        if not cwd.startswith("/"):
            cwd = paths.absolute(paths.strip(cwd), home=home, cwd=home)
        return paths.absolute(p, home=home, cwd=cwd)

    # ---- calls ----

    async def _call(self, path: str, op: Callable[[str], Awaitable[T]]) -> T:
        """``op(token)``; storage errors become ``OSError``s. A refused token is read again
        from the token file (the Jupyter server may have refreshed it) and tried once more."""
        token = self.tokens.get()
        try:
            return await op(token)
        except Unauthenticated as exc:
            fresh = self.tokens.reload()
            if fresh == token:
                raise to_oserror(exc, path) from exc
            log.info("cs3://: token refused, retrying with the refreshed token file")
            try:
                return await op(fresh)
            except StorageError as again:
                raise to_oserror(again, path) from again
        except StorageError as exc:
            raise to_oserror(exc, path) from exc

    async def _stat(self, path: str) -> Resource:
        ap = await self._abs(path)
        return await self._call(path, lambda t: self.storage.stat(t, ap))

    # ---- metadata ----

    async def _info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        p = self._strip_protocol(path)
        return _info(p, await self._stat(p))

    async def _ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        p = self._strip_protocol(path)
        ap = await self._abs(p)
        res = await self._call(p, lambda t: self.storage.stat(t, ap))
        if not res.is_dir:
            entries = [_info(p, res)]
        else:
            children = await self._call(p, lambda t: self.storage.list(t, ap))
            entries = [_info(paths.child(p, c.name), c) for c in children]
            entries.sort(key=lambda e: str(e["name"]))
        return entries if detail else [e["name"] for e in entries]

    def checksum(self, path: str) -> str:
        """The etag: it changes whenever the content does."""
        return str(self.info(path)["etag"])

    def ukey(self, path: str) -> str:
        return self.checksum(path)

    # ---- reads ----

    def _remember(self, ap: str, etag: str) -> None:
        if not etag:
            return
        if len(self._read_etags) >= _MAX_REMEMBERED:
            self._read_etags.pop(next(iter(self._read_etags)))
        self._read_etags[ap] = etag

    async def _read_range(
        self, path: str, start: int | None, end: int | None, ep: Endpoint | None = None
    ) -> tuple[bytes, Endpoint]:
        """Bytes ``[start, end)`` of ``path``, reusing the download endpoint ``ep`` if it is
        still good; returns the endpoint used."""
        ap = await self._abs(path)
        current = self.tokens.get()
        if ep is not None and not ep.stale and ep.headers.get("x-access-token") == current:
            try:
                data, etag = await self.downloads.fetch(ep, start, end)
            except StorageError as exc:  # expired transfer token, ...: ask for a new endpoint
                log.info("cs3://%s: download endpoint refused (%s); renewing it", path, exc)
            else:
                self._remember(ap, etag)
                return data, ep

        async def attempt(token: str) -> tuple[bytes, Endpoint]:
            fresh = await initiate(self.storage, token, ap)
            data, etag = await self.downloads.fetch(fresh, start, end)
            self._remember(ap, etag)
            return data, fresh

        # a read racing a write of the same file is refused now and then (download_error)
        return await self._call(path, lambda t: self.storage.retrying("read", lambda: attempt(t)))

    async def _cat_file(
        self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any
    ) -> bytes:
        if (start is not None and start < 0) or (end is not None and end < 0):
            size = int((await self._info(path))["size"])
            start = None if start is None else (start if start >= 0 else max(0, size + start))
            end = None if end is None else (end if end >= 0 else max(0, size + end))
        if start is not None and end is not None and end <= start:
            return b""
        data, _ = await self._read_range(path, start, end)
        return data

    async def _get_file(self, rpath: str, lpath: str, **kwargs: Any) -> None:
        res = await self._stat(rpath)
        if res.is_dir:
            await asyncio.to_thread(os.makedirs, lpath, exist_ok=True)
            return
        ap = res.path
        out = await asyncio.to_thread(open, lpath, "wb")
        try:

            async def write(chunk: bytes) -> None:
                await asyncio.to_thread(out.write, chunk)

            async def attempt(token: str) -> int:
                await asyncio.to_thread(out.seek, 0)
                await asyncio.to_thread(out.truncate)
                return await self.downloads.stream(await initiate(self.storage, token, ap), write)

            await self._call(rpath, lambda t: self.storage.retrying("get", lambda: attempt(t)))
        finally:
            await asyncio.to_thread(out.close)

    # ---- writes ----

    async def _write(self, path: str, data: bytes, *, create: bool = False) -> str:
        """Upload ``data`` as the new content of ``path``; the new etag."""
        p = self._strip_protocol(path)
        ap = await self._abs(p)

        async def attempt(token: str) -> str:
            try:
                if create:
                    return (await self.storage.create(token, ap, data)).etag
                return await self.storage.write(token, ap, data)
            except Locked as exc:
                if isinstance(exc, PreconditionFailed):
                    raise
                return await self._write_locked(token, p, ap, data, exc)

        return await self._call(p, attempt)

    async def _write_locked(
        self, token: str, path: str, ap: str, data: bytes, refusal: Locked
    ) -> str:
        """The upload was refused because of a lock: whose lock, and what now."""
        try:
            lock = (await self.storage.stat(token, ap)).lock
        except NotFound:
            raise refusal from None
        if lock is None:
            raise refusal
        if lock.app_name != ROOM_APP:
            text = f"cs3://{path}: locked by {lock.app_name or 'another application'}"
            raise LockedError(path, lock.app_name, text) from refusal
        if not self.settings.hub_url:
            raise room_locked(path, "no hub known: set CS3_HUB_URL") from refusal
        self.hub_writes += 1
        return await write_document(
            self.downloads.client(),
            self.settings.hub_url,
            token,
            ap,
            data,
            based_on=self._read_etags.get(ap),
            user_path=path,
        )

    async def _pipe_file(
        self, path: str, value: bytes, mode: str = "overwrite", **kwargs: Any
    ) -> None:
        await self._write(path, bytes(value), create=mode == "create")

    async def _put_file(
        self, lpath: str, rpath: str, mode: str = "overwrite", **kwargs: Any
    ) -> None:
        if await asyncio.to_thread(os.path.isdir, lpath):
            await self._makedirs(rpath, exist_ok=True)
            return
        data = await asyncio.to_thread(Path(lpath).read_bytes)
        await self._write(rpath, data, create=mode == "create")

    async def _cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        await self._write(path2, await self._cat_file(path1))

    # ---- folders, delete, move ----

    async def _mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        if create_parents:
            await self._makedirs(path, exist_ok=False)
            return
        ap = await self._abs(path)
        await self._call(path, lambda t: self.storage.mkdir(t, ap))

    async def _makedirs(self, path: str, exist_ok: bool = False) -> None:
        p = self._strip_protocol(path)
        ap = await self._abs(p)

        async def mkdir(token: str) -> None:
            await self.storage.mkdir(token, ap)

        # Look first: reva refuses CreateContainer on an existing share root or a viewer's
        # folder with other errors than AlreadyExists.
        try:
            found = await self._info(p)
        except FileNotFoundError:
            pass
        else:
            if found["type"] == "directory" and exist_ok:
                return
            raise FileExistsError(errno.EEXIST, "File exists", p)
        try:
            await self._call(p, mkdir)
        except FileNotFoundError:  # the parent is missing
            if paths.parent(p) == p:
                raise
            await self._makedirs(paths.parent(p), exist_ok=True)
            await self._call(p, mkdir)
        except FileExistsError:
            if not exist_ok or not (await self._info(p))["type"] == "directory":
                raise

    async def _rm_file(self, path: str, **kwargs: Any) -> None:
        ap = await self._abs(path)
        await self._call(path, lambda t: self.storage.delete(t, ap))

    async def _rm(
        self, path: str | list[str], recursive: bool = False, maxdepth: int | None = None,
        **kwargs: Any,
    ) -> None:  # fmt: skip
        """A folder is deleted with one call (with what it holds, if ``recursive``)."""
        for p in await self._expand_path(path, recursive=False):
            info = await self._info(p)
            is_dir = info["type"] == "directory"
            if is_dir and not recursive and await self._ls(p, detail=False):
                raise OSError(errno.ENOTEMPTY, "Directory not empty (recursive=False)", p)
            await self._rm_file(p)

    async def _mv(self, path1: str, path2: str, **kwargs: Any) -> None:
        src, dst = await self._abs(path1), await self._abs(path2)
        try:
            await self._call(path1, lambda t: self.storage.move(t, src, dst))
        except FileExistsError as exc:
            raise FileExistsError(errno.EEXIST, "destination exists", path2) from exc

    def mv(self, path1: str, path2: str, recursive: bool = False, **kwargs: Any) -> None:
        """Rename/move with CS3 ``Move`` (keeps the resource id, shares and versions)."""
        sync(self.loop, self._mv, path1, path2)

    # ---- files ----

    def _open(
        self,
        path: str,
        mode: str = "rb",
        block_size: int | None = None,
        autocommit: bool = True,
        cache_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        from storage_bridge.cs3fs.file import CS3File

        return CS3File(
            self, self._strip_protocol(path), mode, block_size, autocommit,
            cache_options=cache_options, **kwargs,
        )  # fmt: skip

    async def _close(self) -> None:
        """Close connections; the instance stays usable (fsspec caches it) and reconnects."""
        old, self.storage = self.storage, CS3Storage(self.storage.settings)
        await self.downloads.aclose()
        await old.aclose()

    def close(self) -> None:
        sync(self.loop, self._close)
