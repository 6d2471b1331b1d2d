"""Online Collaborators across hub instances (scale-out, ARCHITECTURE §10): the wire format of
one user's presence on one instance, and what an instance knows of the others' users.

Each instance publishes, per user it serves, a whole snapshot: the rooms that user has sockets
in *on that instance* and the user's global awareness states there. A snapshot replaces the
previous one of the same (instance, user), so a lost message is healed by the next; each is
renewed every ``RENEW_S`` and forgotten ``EXPIRE_S`` after the last (an instance that died
also has its states dropped at once by the relay's liveness check). Pure logic, no I/O.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

RENEW_S = 10.0
EXPIRE_S = 30.0
MAX_ROOMS = 10_000  # rooms named in one snapshot (a user with more is cut, not refused)
MAX_SNAPSHOT_BYTES = 4 << 20
MAX_STATES = 1024  # one user's states on one instance (tabs x ids); more are left out


@dataclass(slots=True)
class RemoteUser:
    """One user as another instance serves them."""

    instance: str
    user: str
    rooms: frozenset[str]
    owned: dict[int, tuple[int, str, str]] = field(default_factory=dict)  # id: clock, full, public
    expires: float = 0.0


@dataclass(frozen=True, slots=True)
class Snapshot:
    instance: str
    user: str
    rooms: frozenset[str]
    states: dict[int, tuple[int, str]]  # client id -> (clock, state JSON)

    @property
    def empty(self) -> bool:
        return not self.rooms and not self.states

    def encode(self) -> bytes:
        """The wire form, within what ``decode_snapshot`` accepts: states beyond the bounds
        are left out (shown again by the next snapshot that fits), never the whole user."""
        rooms = sorted(self.rooms)[:MAX_ROOMS]
        budget = MAX_SNAPSHOT_BYTES // 2 - sum(len(r) + 4 for r in rooms)  # JSON escapes
        states = []
        for client, (clock, state) in sorted(self.states.items())[:MAX_STATES]:
            budget -= 2 * len(state.encode()) + 48
            if budget < 0:
                break
            states.append([client, clock, state])
        return json.dumps({"i": self.instance, "u": self.user, "r": rooms, "s": states}).encode()


def decode_snapshot(data: bytes, *, max_states: int, max_state_bytes: int) -> Snapshot:
    """Parse (and bound) another instance's snapshot; ValueError if it is not one."""
    if len(data) > MAX_SNAPSHOT_BYTES:
        raise ValueError(f"presence snapshot over {MAX_SNAPSHOT_BYTES} bytes")
    try:
        value: Any = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"presence snapshot is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ValueError("presence snapshot must be an object")
    instance, user, rooms, states = value.get("i"), value.get("u"), value.get("r"), value.get("s")
    if not isinstance(instance, str) or not isinstance(user, str):
        raise ValueError("presence snapshot without instance or user")
    if not isinstance(rooms, list) or not all(isinstance(r, str) for r in rooms):
        raise ValueError("presence snapshot rooms must be strings")
    if not isinstance(states, list) or len(states) > max_states:
        raise ValueError(f"presence snapshot states must be a list of at most {max_states}")
    parsed: dict[int, tuple[int, str]] = {}
    for item in states:
        if not (
            isinstance(item, list)
            and len(item) == 3
            and all(isinstance(x, int) and not isinstance(x, bool) for x in item[:2])
            and isinstance(item[2], str)
        ):
            raise ValueError("a presence state is [client, clock, state]")
        client, clock, state = item
        if len(state.encode()) > max_state_bytes:
            raise ValueError(f"a presence state over {max_state_bytes} bytes")
        parsed[client] = (clock, state)
    return Snapshot(instance, user, frozenset(rooms[:MAX_ROOMS]), parsed)


class RemoteUsers:
    """What this instance knows of the users other instances serve."""

    def __init__(self) -> None:
        self._users: dict[tuple[str, str], RemoteUser] = {}
        self._owner: dict[int, tuple[str, str]] = {}  # client id -> (instance, user)

    def __iter__(self) -> Any:
        return iter(list(self._users.values()))

    def __len__(self) -> int:
        return len(self._users)

    def ids_of(self, instance: str) -> list[int]:
        """Every client id held from ``instance`` (all its users)."""
        return [c for c, (i, _) in self._owner.items() if i == instance]

    def rooms_of(self, instance: str, user: str) -> frozenset[str]:
        held = self._users.get((instance, user))
        return held.rooms if held is not None else frozenset()

    def owns(self, client: int) -> bool:
        return client in self._owner

    def apply(self, snap: Snapshot, public: dict[int, str], now: float) -> list[int]:
        """Replace (instance, user) with ``snap`` (``public``: each state's shareable part);
        the client ids it now has (for the relay's clean-up when that instance dies)."""
        key = (snap.instance, snap.user)
        self._drop(key)
        if snap.empty:
            return []
        owned = {}
        for client, (clock, state) in snap.states.items():
            holder = self._owner.get(client)
            if holder is not None and holder != key:
                continue  # another instance's user has that id: never theirs to change
            owned[client] = (clock, state, public[client])
            self._owner[client] = key
        if not owned and not snap.rooms:
            return []
        self._users[key] = RemoteUser(snap.instance, snap.user, snap.rooms, owned, now + EXPIRE_S)
        return list(owned)

    def drop_clients(self, clients: list[int]) -> bool:
        """An instance died: every user that held one of ``clients`` goes. True if any did."""
        keys = {self._owner[c] for c in clients if c in self._owner}
        for key in keys:
            self._drop(key)
        return bool(keys)

    def expire(self, now: float) -> bool:
        """Forget snapshots not renewed in time; True if any went."""
        old = [key for key, u in self._users.items() if u.expires <= now]
        for key in old:
            self._drop(key)
        return bool(old)

    def _drop(self, key: tuple[str, str]) -> None:
        gone = self._users.pop(key, None)
        if gone is not None:
            for client in gone.owned:
                if self._owner.get(client) == key:
                    del self._owner[client]
