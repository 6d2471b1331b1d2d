"""What a received stream entry means for a room (pure: no I/O, property-tested).

redis-py may replay an ``XADD`` when it retries, and ``XREAD`` from an id that was trimmed
returns the next surviving entry with no error. Per-origin sequence numbers turn both into
something we can see: a replay is a sequence number already seen, a loss is a gap.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from collab_server.scaleout.entries import Entry


class Verdict(enum.Enum):
    OWN = "own"  # made here: already applied and sent
    FOREIGN_LINEAGE = "foreign_lineage"  # another lineage of the room: never applied
    DUPLICATE = "duplicate"  # a replayed XADD or an overlap after a resync
    APPLY = "apply"  # the next one from its origin
    GAP = "gap"  # entries of its origin are missing: apply it, and ask for a resync


@dataclass(slots=True)
class OriginSequences:
    """Per-origin bookkeeping of one room on one instance."""

    instance: str
    lineage: str
    last_seen: dict[str, int] = field(default_factory=dict)
    published: int = 0  # the last sequence number this instance gave its own entries

    def next_own(self) -> int:
        self.published += 1
        return self.published

    def classify(self, entry: Entry) -> Verdict:
        if entry.origin == self.instance:
            return Verdict.OWN
        if entry.lineage != self.lineage:
            return Verdict.FOREIGN_LINEAGE
        last = self.last_seen.get(entry.origin)
        if last is not None and entry.seq <= last:
            return Verdict.DUPLICATE
        self.last_seen[entry.origin] = entry.seq
        # The first entry seen from an origin is a gap unless it is its first ever: whatever
        # came before it is not in our doc unless a join read it (the join sets last_seen).
        expected = 1 if last is None else last + 1
        return Verdict.APPLY if entry.seq == expected else Verdict.GAP

    def joined_at(self, seen: dict[str, int]) -> None:
        """The entries a join read (state + stream range) count as seen."""
        for origin, seq in seen.items():
            if seq > self.last_seen.get(origin, 0):
                self.last_seen[origin] = seq
