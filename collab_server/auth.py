"""Who is calling, and what may they do with a resource.

Local mode has one shared token. With CS3 the token *is* the user's CS3 token: the gateway
verifies it (WhoAmI), cached briefly so a burst of connects costs one round trip.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from storage_bridge.base import Storage
from storage_bridge.errors import Unauthenticated
from storage_bridge.types import Resource, User


@dataclass(frozen=True, slots=True)
class Principal:
    user: User
    token: str  # passed to storage on the user's behalf


class Access(Enum):
    NONE = 0
    VIEW = 1
    EDIT = 2


def access_for(resource: Resource) -> Access:
    perms = resource.permissions
    if perms.write:
        return Access.EDIT
    if perms.read or perms.stat:
        return Access.VIEW
    return Access.NONE


class Authenticator(Protocol):
    async def authenticate(self, token: str | None) -> Principal:
        """The caller; raises ``Unauthenticated``."""
        ...


class StaticTokenAuthenticator:
    """Local mode: one token, one user."""

    def __init__(self, token: str, user: User) -> None:
        self._token = token
        self._user = user

    async def authenticate(self, token: str | None) -> Principal:
        if not token or not hmac.compare_digest(token.encode(), self._token.encode()):
            raise Unauthenticated("invalid or missing token")
        return Principal(self._user, token)


class StorageAuthenticator:
    """CS3 mode: the storage (gateway) vouches for the token."""

    def __init__(self, storage: Storage, *, cache_seconds: float) -> None:
        self._storage = storage
        self._ttl = cache_seconds
        self._cache: dict[str, tuple[float, User]] = {}

    async def authenticate(self, token: str | None) -> Principal:
        if not token:
            raise Unauthenticated("missing token")
        now = time.monotonic()
        hit = self._cache.get(token)
        if hit is not None and hit[0] > now:
            return Principal(hit[1], token)
        user = await self._storage.whoami(token)
        if len(self._cache) > 10_000:
            self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
        self._cache[token] = (now + self._ttl, user)
        return Principal(user, token)
