"""Files created beside a document: conflict copies and work copies (ARCHITECTURE §5)."""

from __future__ import annotations

from datetime import UTC, datetime

from storage_bridge.base import Storage
from storage_bridge.errors import AlreadyExists
from storage_bridge.naming import conflict_copy_name
from storage_bridge.types import Resource


def numbered(name: str, n: int) -> str:
    """``a.ipynb.u.T.conflict.ipynb`` -> ``a.ipynb.u.T.conflict-2.ipynb``."""
    head, sep, ext = name.rpartition(".conflict")
    return f"{head}.conflict-{n}{ext}" if sep else f"{name}-{n}"


async def create_copy_beside(
    storage: Storage, token: str, original: Resource, who: str, data: bytes
) -> Resource:
    """Create ``<name>.<who>.<UTC time>.conflict<ext>`` next to ``original`` (never overwrites)."""
    name = conflict_copy_name(original.name, who, datetime.now(UTC))
    parent = original.path.rsplit("/", 1)[0] if "/" in original.path else ""
    for attempt in range(1, 100):
        candidate = name if attempt == 1 else numbered(name, attempt)  # two in one second
        try:
            return await storage.create(token, f"{parent}/{candidate}", data)
        except AlreadyExists:
            continue
    raise AlreadyExists(f"no free copy name for {name}")
