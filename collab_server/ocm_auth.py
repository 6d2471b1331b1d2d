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

import asyncio
import time
from collections.abc import Awaitable, Callable

from collab_server.auth import Authenticator, Principal
from collab_server.logs import get_logger, kv
from collab_server.protocol import CloseCode
from storage_bridge.cs3_ocm import OCM_CREDENTIAL_PREFIX as OCM_PREFIX
from storage_bridge.cs3_ocm import share_token
from storage_bridge.errors import StorageError, Unauthenticated

log = get_logger(__name__)


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
        hit = self._cache.get(token)
        scoped = hit[1] if hit is not None and hit[0] > time.monotonic() else None
        if scoped is None:
            scoped = await self._exchange(token, share_id, secret)
        return await self._inner.authenticate(scoped)

    async def recheck(self, token: str) -> None:
        """Exchange ``token`` again now (no cache); ``Unauthenticated`` once it is revoked."""
        share_id, _, secret = token[len(OCM_PREFIX) :].partition(":")
        await self._exchange(token, share_id, secret)

    async def _exchange(self, token: str, share_id: str, secret: str) -> str:
        now = time.monotonic()
        try:
            scoped = await share_token(self._gateway, share_id, secret)
        except Unauthenticated as exc:
            self._cache.pop(token, None)
            raise Unauthenticated(f"OCM share refused (revoked?): {exc.message}") from exc
        if len(self._cache) > 10_000:
            self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
        self._cache[token] = (now + self._ttl, scoped)
        return scoped


REVOKED = "the owner revoked this share"


async def watch_share(
    authenticator: Authenticator,
    token: str | None,
    close: Callable[[int, str], Awaitable[None]],
    every: float,
) -> None:
    """For a socket opened with an OCM share credential: re-exchange it every ``every`` s and
    ``close(4403, REVOKED)`` once the owner site refuses it (the share was removed), so a
    revoked colleague leaves the room mid-session instead of at their next reconnect.
    Ordinary tokens: returns at once (their expiry is the storage's business)."""
    if not isinstance(authenticator, OCMShareAuthenticator) or not is_ocm_credential(token):
        return
    assert token is not None
    while True:
        await asyncio.sleep(every)
        try:
            await authenticator.recheck(token)
        except Unauthenticated as exc:
            log.info("ocm share revoked mid-session", extra=kv(reason=exc.message))
            await close(CloseCode.FORBIDDEN, REVOKED)
            return
        except StorageError as exc:  # the owner's own gateway is down: the room is too
            log.warning("ocm share recheck failed", extra=kv(error=repr(exc)))


def is_ocm_credential(token: str | None) -> bool:
    return bool(token) and str(token).startswith(OCM_PREFIX)
