"""What a room's previous writer instance left in Redis for its successor (§10)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class WriterMeta:
    """What the previous writer left in Redis for its successor."""

    lock_id: str | None
    base_etag: str | None
    base_hash: str | None
