"""One user's view of storage: the backend, the user's token, and contents-path mapping.

A Jupyter server runs for one user (as under JupyterHub), so there is one ``Backend`` per
server, shared by the contents manager, the collaboration relay and the shares REST.

Paths: Jupyter contents paths are relative ("", "a/b.ipynb"); storage paths are absolute
("/users/<id>/a/b.ipynb" with cs3, "/a/b.ipynb" with the local backend). With cs3 the received
shares appear under ``<home>/Shares`` (reva's share jail); the file browser shows them as a
top-level folder ``Shares`` (``CS3Config.shares_folder``).
"""

from __future__ import annotations

import asyncio
import posixpath
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlsplit, urlunsplit

from jupyter_cs3.config import CS3Config
from storage_bridge.base import Storage
from storage_bridge.errors import InvalidArgument, NotFound, Unauthenticated
from storage_bridge.types import User

if TYPE_CHECKING:
    from jupyter_cs3.sharing import Sharing
    from storage_bridge.cs3 import CS3Storage

T = TypeVar("T")


class Backend:
    def __init__(self, config: CS3Config, *, local_root: str = "") -> None:
        self.config = config
        self.kind = config.storage
        self.storage: Storage
        # What only a CS3 gateway has (a password login, the home path template) is kept here,
        # typed, when the backend is built, so nothing later has to ask which storage it is.
        self._authenticate: Callable[[str, str], Awaitable[str]] | None = None
        self._home_template = ""
        cs3: CS3Storage | None = None
        if self.kind == "cs3":
            from storage_bridge.cs3 import CS3Storage

            cs3 = CS3Storage(
                config.gateway,
                tls=config.gateway_tls,
                ca_file=config.gateway_ca_file or None,
                timeout=config.timeout,
            )
            if not (config.token or (config.username and config.password)):
                raise ValueError("CS3Config needs a token, or a username and a password")
            self.storage = cs3
            self._authenticate = cs3.authenticate
            self._home_template = cs3.settings.personal_space_path
        else:
            from storage_bridge.local import LocalStorage

            root = Path(config.root or local_root or ".").resolve()
            data_dir = Path(config.data_dir) if config.data_dir else None
            self.local_root = root
            self.storage = LocalStorage(root, data_dir)
        self._token: str = config.token
        self._token_listeners: list[Callable[[str], None]] = []
        self._login: asyncio.Lock | None = None
        self._user: User | None = None
        self._root: str | None = None
        self._ocm_kinds: dict[str, tuple[bool, str]] = {}  # received OCM share -> (is_dir, name)
        from jupyter_cs3.sharing import make_sharing

        self.sharing: Sharing = make_sharing(self, cs3)
        self.cs3 = cs3  # the CS3 storage when that is the backend (file versions), else None

    # ---- identity ----

    @property
    def can_login(self) -> bool:
        return bool(self.config.username and self.config.password)

    @property
    def current_token(self) -> str:
        """The token in use ("" before the first login); no I/O."""
        return self._token

    def on_new_token(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(token)`` after every new login (the kernels' token file)."""
        self._token_listeners.append(listener)

    async def token(self) -> str:
        """The user's storage token (logs in with basic auth on first use)."""
        if self.kind != "cs3":
            return "local"
        if self._token:
            return self._token
        return await self.renew(None)

    async def renew(self, stale: str | None) -> str:
        """Log in again unless the token already changed since ``stale`` was handed out."""
        if self._login is None:
            self._login = asyncio.Lock()
        async with self._login:
            if self._token and self._token != stale:
                return self._token  # someone else logged in meanwhile
            if not self.can_login or self._authenticate is None:
                raise Unauthenticated("the CS3 token was refused; no password to renew it")
            self._token = await self._authenticate(self.config.username, self.config.password)
            for listener in self._token_listeners:
                listener(self._token)
            return self._token

    async def run(self, op: Callable[[str], Awaitable[T]]) -> T:
        """Run ``op(token)``; on ``Unauthenticated`` log in again once (expired token)."""
        token = await self.token()
        try:
            return await op(token)
        except Unauthenticated:
            if self.kind != "cs3" or not self.can_login:
                raise
        token = await self.renew(token)
        return await op(token)

    @property
    def cached_user(self) -> User | None:
        """The user, if ``user()`` has run already (no I/O)."""
        return self._user

    async def user(self) -> User:
        if self._user is None:
            self._user = await self.run(self.storage.whoami)
        return self._user

    async def hub_token(self) -> str:
        """What the hub accepts: the CS3 token itself, or the configured hub token."""
        if self.config.hub_token:
            return self.config.hub_token
        if self.kind == "cs3":
            return await self.token()
        raise ValueError("local storage needs CS3Config.hub_token (the hub's --token)")

    # ---- paths ----

    async def root(self) -> str:
        if self._root is None:
            if self.kind == "local":
                self._root = "/"
            elif self.config.root:
                self._root = "/" + self.config.root.strip("/")
            else:
                user = await self.user()
                self._root = self._home_template.format(owner_id=user.id)
        return self._root

    @property
    def shares_folder(self) -> str:
        """The contents path of the received-shares folder ("" when there is none)."""
        return self.config.shares_folder.strip("/") if self.kind == "cs3" else ""

    def is_shares_folder(self, api_path: str) -> bool:
        return bool(self.shares_folder) and api_path.strip("/") == self.shares_folder

    @property
    def ocm_site(self) -> str:
        return self.config.ocm_site

    @property
    def federated_folder(self) -> str:
        """The contents folder received OCM shares open under ("" when there is none)."""
        return self.config.federated_folder.strip("/") if self.kind == "cs3" else ""

    async def storage_path(self, api_path: str) -> str:
        """The storage path of a contents path; refuses ``..`` and NUL."""
        rel = api_path.strip("/")
        parts = [p for p in rel.split("/") if p not in ("", ".")]
        if any(p == ".." for p in parts) or "\x00" in rel:
            raise InvalidArgument(f"invalid path: {api_path!r}")
        if len(parts) >= 2 and self.federated_folder and parts[0] == self.federated_folder:
            return await self._ocm_storage_path(parts[1], parts[2:])
        root = await self.root()
        return posixpath.join(root, *parts) if parts else root

    async def _ocm_kind(self, share_id: str) -> tuple[bool, str]:
        """(is a folder, name) of a received OCM share, asked once of our gateway."""
        if share_id not in self._ocm_kinds:
            from storage_bridge.cs3_ocm import OCM_MOUNT

            res = await self.run(lambda t: self.storage.stat(t, f"{OCM_MOUNT}/{share_id}"))
            self._ocm_kinds[share_id] = (res.is_dir, res.name)
        return self._ocm_kinds[share_id]

    async def _ocm_storage_path(self, share_id: str, rest: list[str]) -> str:
        # <folder>/<id>/... of a folder share is /ocm/<id>/...; <folder>/<id>/<name> of a file
        # share is the file /ocm/<id> itself (so JupyterLab sees the notebook's extension).
        from storage_bridge.cs3_ocm import OCM_MOUNT

        base = f"{OCM_MOUNT}/{share_id}"
        is_dir, name = await self._ocm_kind(share_id)
        if is_dir:
            return posixpath.join(base, *rest)
        if rest == [name]:
            return base
        raise NotFound(f"no {'/'.join(rest)!r} in the federated share {share_id}")

    async def api_path(self, storage_path: str) -> str | None:
        """The contents path of a storage path, or None if it is outside the root."""
        root = (await self.root()).rstrip("/")
        norm = posixpath.normpath(storage_path)
        ocm = self._ocm_api_path(norm)
        if ocm is not None:
            return ocm
        if norm == root or (root == "" and norm == "/"):
            return ""
        if norm.startswith(root + "/"):
            return norm[len(root) + 1 :]
        return None

    def _ocm_api_path(self, norm: str) -> str | None:
        """The contents path of /ocm/<id>[/...] (a share this server opened before), or None."""
        parts = norm.strip("/").split("/")
        if len(parts) < 2 or parts[0] != "ocm" or not self.federated_folder:  # OCM_MOUNT
            return None
        kind = self._ocm_kinds.get(parts[1])
        if kind is None:
            return None
        is_dir, name = kind
        tail = parts[2:] if is_dir else [name]
        return posixpath.join(self.federated_folder, parts[1], *tail)

    # ---- hub ----

    def hub_http_url(self, path: str) -> str:
        return self.config.hub_url.rstrip("/") + path

    def hub_ws_url(self, path: str) -> str:
        parts = urlsplit(self.config.hub_url.rstrip("/") + path)
        scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
        return urlunsplit((scheme, parts.netloc, parts.path, parts.query, ""))

    async def aclose(self) -> None:
        await self.storage.aclose()
