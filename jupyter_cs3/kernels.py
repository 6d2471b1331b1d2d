"""Kernels started by this Jupyter server reach CS3 through ``cs3://`` (storage_bridge.cs3fs).

``CS3KernelManager`` (installed by the extension in place of the default kernel manager) adds to
every kernel's environment what ``storage_bridge.cs3fs.env`` reads:

- ``CS3_GATEWAY`` (+ TLS settings) and ``CS3_HUB_URL``;
- ``CS3_TOKEN_FILE``: a file (mode 0600 in a 0700 folder) holding the user's CS3 token.
  ``KernelTokenFile`` writes it and keeps it fresh: on every new login of the server, and with
  a password, by logging in again at half the token's lifetime (at most every
  ``CS3Config.kernel_token_refresh`` seconds). No password and no token is put in the
  environment; the server's own secrets (``JUPYTER_CS3_PASSWORD`` ...) are removed from it;
- ``CS3_HOME`` (the file browser's top folder) and ``CS3_CWD`` (the notebook's CS3 folder), so
  ``cs3://Shares/x`` and ``cs3://./x`` mean what the file browser shows.

With local storage kernels start in the notebook's own folder (the served folder, not the
server's ``root_dir``) and get no ``CS3_*`` variables.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager

from jupyter_cs3.backend import Backend
from storage_bridge.cs3 import jwt_expiry
from storage_bridge.cs3fs import env as cs3env

log = logging.getLogger(__name__)

# The server's own credentials: never handed down to kernels.
SECRET_ENV = ("JUPYTER_CS3_PASSWORD", "JUPYTER_CS3_TOKEN", "JUPYTER_CS3_HUB_TOKEN", cs3env.TOKEN)
MIN_REFRESH = 1.0  # seconds between two refreshes, however short the token's life
RETRY_REFRESH = 5.0  # after a failed refresh


class KernelTokenFile:
    """The token file kernels read; refreshed in one supervised background task."""

    def __init__(self, backend: Backend, directory: str = "") -> None:
        self.backend = backend
        self._parent_dir = directory
        self.dir: Path | None = None
        self.path: Path | None = None
        self.refreshes = 0  # logins made for the kernels
        self.failures = 0  # failed refreshes (retried)
        self.writes = 0
        self._task: asyncio.Task[None] | None = None
        self._ready: asyncio.Lock | None = None

    async def ensure(self) -> Path:
        """The file, written with a valid token; starts the refresher on first use."""
        if self._ready is None:
            self._ready = asyncio.Lock()
        async with self._ready:
            if self.path is None:
                parent = self._parent_dir or None
                if parent:
                    os.makedirs(parent, mode=0o700, exist_ok=True)
                self.dir = Path(tempfile.mkdtemp(prefix="cs3-kernels-", dir=parent))  # 0700
                self.path = self.dir / "token"
                self.write(await self.backend.token())
                self.backend.on_new_token(self.write)
                if self.backend.can_login:
                    self._task = asyncio.get_running_loop().create_task(self._refresh_loop())
                    self._task.add_done_callback(self._task_done)
            return self.path

    def write(self, token: str) -> None:
        """Replace the file atomically (readers see the old or the new token), mode 0600."""
        if self.path is None or self.dir is None:
            return
        fd, tmp = tempfile.mkstemp(prefix=".token-", dir=self.dir)  # created 0600
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(token + "\n")
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        self.writes += 1

    def next_delay(self, token: str, interval: float) -> float:
        """Half of what is left of the token's life, at most ``interval``."""
        exp = jwt_expiry(token)
        if exp is None:
            return interval
        return max(MIN_REFRESH, min(interval, (exp - time.time()) / 2))

    async def _refresh_loop(self) -> None:
        interval = self.backend.config.kernel_token_refresh
        delay = self.next_delay(self.backend.current_token, interval)
        while True:
            await asyncio.sleep(delay)
            try:
                # renew(stale=current) logs in again; the listener rewrites the file
                token = await self.backend.renew(self.backend.current_token)
            except Exception as exc:  # storage down: the old token may still be good; retry
                self.failures += 1
                log.warning("jupyter_cs3: refreshing the kernels' token failed: %r", exc)
                delay = RETRY_REFRESH
                continue
            self.refreshes += 1
            delay = self.next_delay(token, interval)
            log.debug("jupyter_cs3: kernels' token refreshed; next in %.1fs", delay)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("jupyter_cs3: the kernels' token refresher died: %r", exc, exc_info=exc)

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.dir is not None:
            try:
                shutil.rmtree(self.dir)
            except OSError as exc:
                log.warning("jupyter_cs3: could not remove the kernels' token dir: %r", exc)
            self.dir = self.path = None


class KernelWiring:
    """What the kernel manager needs from the extension."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.token_file = KernelTokenFile(backend, backend.config.kernel_token_dir)

    async def environment(self, base: dict[str, str], api_dir: str) -> dict[str, str]:
        """``base`` without the server's secrets, plus the cs3:// settings for a kernel whose
        notebook is in the contents folder ``api_dir``."""
        env = {k: v for k, v in base.items() if k not in SECRET_ENV}
        if self.backend.kind != "cs3":
            return env
        config = self.backend.config
        token_path = await self.token_file.ensure()
        env[cs3env.GATEWAY] = config.gateway
        env[cs3env.TOKEN_FILE] = str(token_path)
        env[cs3env.HOME] = await self.backend.root()
        env[cs3env.CWD] = await self.backend.storage_path(api_dir)
        env[cs3env.HUB_URL] = config.hub_url
        env[cs3env.TLS] = "1" if config.gateway_tls else ""
        env[cs3env.CA_FILE] = config.gateway_ca_file
        return env

    def local_dir(self, api_dir: str) -> str | None:
        """Local storage: the OS folder of ``api_dir`` (the nearest existing one)."""
        root = getattr(self.backend, "local_root", None)
        if self.backend.kind != "local" or root is None:
            return None
        parts = [p for p in api_dir.strip("/").split("/") if p not in ("", ".", "..")]
        folder = Path(root, *parts)
        while not folder.is_dir() and folder != root:
            folder = folder.parent
        return str(folder)

    async def aclose(self) -> None:
        await self.token_file.aclose()


class CS3KernelManager(AsyncMappingKernelManager):
    """The default kernel manager, plus ``KernelWiring`` (set by the extension)."""

    wiring: KernelWiring | None = None

    def cwd_for_path(self, path: str, **kwargs: Any) -> str:
        local = self.wiring.local_dir(path or "") if self.wiring is not None else None
        if local is not None:
            return local
        base: Any = super()  # jupyter_server's cwd_for_path is untyped
        return str(base.cwd_for_path(path, **kwargs))

    # The async manager's start_kernel is a coroutine (typed as the sync one of its base).
    async def start_kernel(self, *args: Any, **kwargs: Any) -> str:  # type: ignore[override]
        kernel_id, path = kwargs.get("kernel_id"), kwargs.get("path")
        if self.wiring is not None and (kernel_id is None or kernel_id not in self):
            base = kwargs.get("env") or dict(os.environ)
            kwargs["env"] = await self.wiring.environment(base, path or "")
        parent: Any = super()
        started: str = await parent.start_kernel(*args, **kwargs)
        return started
