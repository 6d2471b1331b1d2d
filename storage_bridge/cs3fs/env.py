"""Where a ``cs3://`` filesystem finds its gateway, token and folders.

Every setting is a constructor argument of ``CS3FileSystem`` (fsspec ``storage_options``) and
falls back to an environment variable. jupyter_cs3 sets these for every kernel it starts; a
batch job sets them itself (README "Kernels and batch jobs"):

| variable | meaning |
|---|---|
| ``CS3_GATEWAY`` | gateway ``host:port`` (gRPC) |
| ``CS3_TOKEN_FILE`` | file with the CS3 token, re-read when it changes (kept fresh) |
| ``CS3_TOKEN`` | the token itself (when there is no token file) |
| ``CS3_HOME`` | the folder ``cs3://name`` is relative to (default: the user's home, from WhoAmI) |
| ``CS3_CWD`` | the folder ``cs3://./name`` is relative to (jupyter_cs3: the notebook's folder) |
| ``CS3_HUB_URL`` | the cs3collab hub: writes to files open in a room go through it |
| ``CS3_GATEWAY_TLS``, ``CS3_GATEWAY_CA_FILE`` | TLS to the gateway and data servers |
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass

GATEWAY = "CS3_GATEWAY"
TOKEN_FILE = "CS3_TOKEN_FILE"
TOKEN = "CS3_TOKEN"
HOME = "CS3_HOME"
CWD = "CS3_CWD"
HUB_URL = "CS3_HUB_URL"
TLS = "CS3_GATEWAY_TLS"
CA_FILE = "CS3_GATEWAY_CA_FILE"


@dataclass(frozen=True, slots=True)
class Settings:
    gateway: str
    token: str
    token_file: str
    home: str
    cwd: str
    hub_url: str
    tls: bool
    ca_file: str

    @classmethod
    def resolve(
        cls,
        *,
        gateway: str | None = None,
        token: str | None = None,
        token_file: str | None = None,
        home: str | None = None,
        cwd: str | None = None,
        hub_url: str | None = None,
        tls: bool | None = None,
        ca_file: str | None = None,
    ) -> Settings:
        """Arguments win; what is not given comes from the environment."""
        env = os.environ
        given_token = token is not None or token_file is not None
        settings = cls(
            gateway=gateway or env.get(GATEWAY, ""),
            # an explicit token (file) replaces both environment sources
            token=(token or "") if given_token else env.get(TOKEN, ""),
            token_file=(token_file or "") if given_token else env.get(TOKEN_FILE, ""),
            home=home if home is not None else env.get(HOME, ""),
            cwd=cwd if cwd is not None else env.get(CWD, ""),
            hub_url=hub_url if hub_url is not None else env.get(HUB_URL, ""),
            tls=tls if tls is not None else env.get(TLS, "").lower() in ("1", "true", "yes"),
            ca_file=ca_file if ca_file is not None else env.get(CA_FILE, ""),
        )
        if not settings.gateway:
            raise ValueError(f"cs3://: no gateway; pass gateway= or set {GATEWAY}")
        if not (settings.token or settings.token_file):
            raise ValueError(f"cs3://: no token; pass token= / token_file= or set {TOKEN_FILE}")
        return settings


class TokenSource:
    """The current CS3 token: a fixed one, or the content of a file re-read when it changes."""

    def __init__(self, token: str = "", token_file: str = "") -> None:
        self._fixed = token
        self._file = token_file
        self._seen: tuple[int, int, int] | None = None  # (inode, mtime_ns, size) last read
        self._token = token

    @property
    def from_file(self) -> bool:
        return bool(self._file) and not self._fixed

    def get(self) -> str:
        """The token; a token file is read again if it was replaced or modified."""
        if not self.from_file:
            return self._token
        try:
            st = os.stat(self._file)
        except OSError as exc:
            raise PermissionError(
                errno.EACCES, f"cs3://: cannot read the token file: {exc}", self._file
            ) from exc
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp != self._seen or not self._token:
            with open(self._file, encoding="utf-8") as f:
                token = f.read().strip()
            if not token:
                raise PermissionError(errno.EACCES, "cs3://: the token file is empty", self._file)
            self._token, self._seen = token, stamp
        return self._token

    def reload(self) -> str:
        """Read the token file again even if it looks unchanged (after a refusal)."""
        self._seen = None
        return self.get()
