"""The Redis keys of one room; all share one hash tag so they live in one Cluster slot."""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "cs3collab"


@dataclass(frozen=True, slots=True)
class RoomKeys:
    room: str  # the room's stable identity: the storage resource id (owner and sharees meet)

    @property
    def tag(self) -> str:
        # Braces make Redis Cluster hash only this part: multi-key scripts over a room's keys
        # stay in one slot (y-redis #63 broke on multi-slot commands).
        return f"{PREFIX}:{{r:{self.room}}}"

    @property
    def stream(self) -> str:
        return f"{self.tag}:u"

    @property
    def meta(self) -> str:
        return f"{self.tag}:meta"

    @property
    def state(self) -> str:
        return f"{self.tag}:state"

    @property
    def writer(self) -> str:
        return f"{self.tag}:writer"

    @property
    def fence(self) -> str:
        return f"{self.tag}:fence"

    @property
    def awareness(self) -> str:
        return f"{self.tag}:a"


PRESENCE_CHANNEL = f"{PREFIX}:presence"  # Online Collaborators, every instance (presence.py)


def instance_key(instance: str) -> str:
    return f"{PREFIX}:instance:{instance}"


def as_bytes(value: object) -> bytes:
    """A reply of a client made without ``decode_responses`` (redis-py types it bytes | str)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    raise TypeError(f"unexpected redis reply {value!r}")
