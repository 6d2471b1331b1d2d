"""Stream entries: what one instance tells the others about a room's document."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class EntryKind(enum.Enum):
    UPDATE = b"u"  # an incremental Y update made on the origin instance
    FULL_STATE = b"f"  # the origin's whole doc state: safe to broadcast (content with every delete)
    RESYNC = b"r"  # "I saw a gap": every instance hosting the room answers with FULL_STATE


@dataclass(frozen=True, slots=True)
class Entry:
    origin: str  # instance id
    seq: int  # per room and origin, from 1, no gaps: lets a reader detect what it missed
    lineage: str  # the room's lineage (sessionId): entries of another lineage are never applied
    kind: EntryKind
    payload: bytes = b""


class BadEntry(ValueError):
    pass


def encode(entry: Entry) -> dict[bytes, bytes]:
    return {
        b"o": entry.origin.encode(),
        b"s": str(entry.seq).encode(),
        b"l": entry.lineage.encode(),
        b"k": entry.kind.value,
        b"p": entry.payload,
    }


def decode(fields: dict[bytes, bytes]) -> Entry:
    """An entry from XREAD's field map; BadEntry for anything we did not write."""
    try:
        seq = int(fields[b"s"])
        kind = EntryKind(fields[b"k"])
        origin = fields[b"o"].decode()
        lineage = fields[b"l"].decode()
        payload = fields.get(b"p", b"")
    except (KeyError, ValueError, UnicodeDecodeError) as exc:
        raise BadEntry(f"not a cs3collab stream entry: {sorted(fields)!r}") from exc
    if seq < 1 or not origin or not lineage:
        raise BadEntry(f"entry fields out of range: origin={origin!r} seq={seq}")
    return Entry(origin=origin, seq=seq, lineage=lineage, kind=kind, payload=payload)
