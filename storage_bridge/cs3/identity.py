"""Who a token belongs to: the cache of ``WhoAmI``-verified tokens and JWT expiry.

The Reva v2 gateway does not reject an invalid token by itself (it answers e.g. NOT_FOUND), so
the backend verifies every token with ``WhoAmI``; this cache keeps that to one call per token
per ``token_cache_seconds``, and never past the token's own ``exp``.
"""

from __future__ import annotations

import base64
import binascii
import json
import time

from storage_bridge.types import User


def jwt_expiry(token: str) -> float | None:
    """The ``exp`` claim of a JWT, without verifying it (only used to bound our cache)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        exp = payload.get("exp") if isinstance(payload, dict) else None
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    return float(exp) if isinstance(exp, int | float) else None


class TokenCache:
    """token -> (user, monotonic deadline)."""

    MAX_ENTRIES = 1024

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._tokens: dict[str, tuple[User, float]] = {}

    def get(self, token: str) -> User | None:
        cached = self._tokens.get(token)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        return None

    def remember(self, token: str, user: User) -> None:
        now = time.monotonic()
        until = now + self._seconds
        exp = jwt_expiry(token)
        if exp is not None:
            until = min(until, now + (exp - time.time()))
        if len(self._tokens) > self.MAX_ENTRIES:
            self._tokens = {t: v for t, v in self._tokens.items() if v[1] > now}
        self._tokens[token] = (user, until)

    def forget(self, token: str) -> None:
        self._tokens.pop(token, None)
