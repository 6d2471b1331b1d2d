"""Callers from other sites: an OCM share's id and secret as the hub credential.

A colleague at another site (B) opens a notebook einstein (site A) shared with them through OCM.
Their Jupyter server cannot hold a token of A's gateway, but it holds what OCM gave B: the share's
id at A and its WebDAV secret. It sends ``ocmshare:<share id>:<secret>`` as its bearer token to
A's hub; this authenticator exchanges it at A's gateway (reva's ``ocmshares`` auth manager) for a
token *scoped to that share*, with the share's role, and from then on the caller is an ordinary
principal: the scoped token stats ``/public/<share id>`` as einstein's resource (same resource id,
so the same room), and a viewer share has no write permission (a read-only connection).

Revoking the share makes the exchange fail: new sessions and sockets are refused (after at most
``cache_seconds``). See docs/ARCHITECTURE.md §9.
"""

from __future__ import annotations

import time

from collab_server.auth import Authenticator, Principal
from storage_bridge.cs3_ocm import OCM_CREDENTIAL_PREFIX as OCM_PREFIX
from storage_bridge.cs3_ocm import share_token
from storage_bridge.errors import Unauthenticated


class OCMShareAuthenticator:
    """``inner`` for ordinary tokens; ``ocmshare:<id>:<secret>`` exchanged at ``gateway``."""

    def __init__(self, inner: Authenticator, gateway: str, *, cache_seconds: float) -> None:
        self._inner = inner
        self._gateway = gateway
        self._ttl = cache_seconds
        self._cache: dict[str, tuple[float, str]] = {}  # credential -> (until, scoped token)

    async def authenticate(self, token: str | None) -> Principal:
        if not token or not token.startswith(OCM_PREFIX):
            return await self._inner.authenticate(token)
        share_id, sep, secret = token[len(OCM_PREFIX) :].partition(":")
        if not sep or not share_id or not secret:
            raise Unauthenticated("malformed OCM share credential (ocmshare:<share id>:<secret>)")
        now = time.monotonic()
        hit = self._cache.get(token)
        if hit is not None and hit[0] > now:
            scoped = hit[1]
        else:
            try:
                scoped = await share_token(self._gateway, share_id, secret)
            except Unauthenticated as exc:
                self._cache.pop(token, None)
                raise Unauthenticated(f"OCM share refused (revoked?): {exc.message}") from exc
            if len(self._cache) > 10_000:
                self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
            self._cache[token] = (now + self._ttl, scoped)
        return await self._inner.authenticate(scoped)
