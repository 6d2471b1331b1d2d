"""Awareness updates from one socket, checked before pycrdt sees them.

An awareness update is ``varUint n`` then ``n`` entries ``(varUint client, varUint clock,
varString state JSON)``. Three rules keep one socket from costing the others:

- **Ownership.** A socket owns the client ids it introduced (JupyterLab: one per tab). Entries
  for an id another live socket owns are dropped: y-websocket clients echo every state they
  receive and announce remote states they time out, and none of that may overwrite or remove
  another socket's state.
- **Caps**, in count and bytes: at most ``max_clients`` owned ids per socket and at most
  ``max_state_bytes`` per state. Exceeding them is a protocol error (4400).
- **Only what changed is broadcast.** pycrdt ignores an entry whose clock is not newer (a stock
  Yjs client's first state has clock 0, which every peer ignores too); such an id must not be
  queued for the fan-out, whose encoder has no clock for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from pycrdt import Awareness, Decoder, Encoder

from collab_server.protocol import ProtocolError


class Owner(Protocol):
    """A socket that owns client ids (a ``Connection``)."""

    awareness_ids: set[int]


@dataclass(frozen=True, slots=True)
class Entry:
    client: int
    clock: int
    state: str  # the JSON text as sent ("null" removes)


def parse_entries(payload: bytes) -> list[Entry]:
    try:
        decoder = Decoder(payload)
        entries = []
        for _ in range(decoder.read_var_uint()):
            client = decoder.read_var_uint()
            clock = decoder.read_var_uint()
            entries.append(Entry(client, clock, decoder.read_var_string()))
    except (ValueError, IndexError, RuntimeError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"malformed awareness update: {exc}") from exc
    return entries


def encode_entries(entries: list[Entry]) -> bytes:
    encoder = Encoder()
    encoder.write_var_uint(len(entries))
    for entry in entries:
        encoder.write_var_uint(entry.client)
        encoder.write_var_uint(entry.clock)
        encoder.write_var_string(entry.state)
    return encoder.to_bytes()


@dataclass(frozen=True, slots=True)
class Checked:
    payload: bytes | None  # what to hand to pycrdt (None: nothing left)
    claimed: set[int]  # ids this socket owns from now on
    named: set[int]  # ids the payload names


def check_update(
    payload: bytes,
    *,
    meta: Mapping[int, Mapping[str, Any]],
    owned: set[int],
    owned_by_others: set[int],
    max_clients: int,
    max_state_bytes: int,
) -> Checked:
    """Filter one socket's awareness update by the rules above (raises ``ProtocolError``)."""
    entries = parse_entries(payload)
    kept: list[Entry] = []
    claimed: set[int] = set()
    for entry in entries:
        chars = len(entry.state)  # chars <= UTF-8 bytes <= 4 chars: encode only if in doubt
        if chars > max_state_bytes or (
            chars * 4 > max_state_bytes and len(entry.state.encode()) > max_state_bytes
        ):
            raise ProtocolError(f"awareness state over {max_state_bytes} bytes")
        if entry.client in owned_by_others:
            continue
        known = meta.get(entry.client)
        newer = known is None or entry.clock > known["clock"]
        if entry.client not in owned and newer and entry.state != "null":
            # A state that will be applied: the socket's own. Echoed removals and stale
            # echoes of departed clients are not claims (else an editor of a busy room
            # would collect every departed colleague's id and hit the cap).
            claimed.add(entry.client)
        kept.append(entry)
    if len(owned) + len(claimed) > max_clients:
        raise ProtocolError(f"awareness for more than {max_clients} clients on one socket")
    if not kept:
        return Checked(None, set(), set())
    payload = payload if len(kept) == len(entries) else encode_entries(kept)
    return Checked(payload, claimed, {entry.client for entry in kept})


def clocks(awareness: Awareness, ids: set[int]) -> dict[int, tuple[int, bool] | None]:
    """(clock, has a state) pycrdt holds for each id (None: unknown), to see what an update
    changed: a newer clock, or a removal with the same clock."""
    meta, states = awareness.meta, awareness.states
    return {i: ((meta[i]["clock"], i in states) if i in meta else None) for i in ids}


class RoomAwareness:
    """A room's awareness and which socket owns which client id (the rules above)."""

    def __init__(self, awareness: Awareness, *, max_clients: int, max_state_bytes: int) -> None:
        self.awareness = awareness
        self._max_clients = max_clients
        self._max_state_bytes = max_state_bytes
        self._owner: dict[int, Owner] = {}

    def apply(self, conn: Owner, payload: bytes) -> list[int]:
        """Apply ``conn``'s update (raises ``ProtocolError``); the ids whose state changed."""
        checked = check_update(
            payload,
            meta=self.awareness.meta,
            owned=conn.awareness_ids,
            owned_by_others=self._owner.keys() - conn.awareness_ids,
            max_clients=self._max_clients,
            max_state_bytes=self._max_state_bytes,
        )
        if checked.payload is None:
            return []
        touched = checked.named
        before = clocks(self.awareness, touched)
        try:
            self.awareness.apply_awareness_update(checked.payload, conn)
        except (ValueError, RecursionError) as exc:  # a state that is not JSON
            raise ProtocolError(f"malformed awareness state: {exc}") from exc
        for client_id in checked.claimed:
            conn.awareness_ids.add(client_id)
            self._owner[client_id] = conn
        after = clocks(self.awareness, touched)
        return [i for i in touched if after[i] is not None and after[i] != before[i]]

    def apply_remote(self, payload: bytes, origin: object) -> tuple[list[int], list[int]]:
        """Another hub instance's update (it checked its own sockets' rules): the client ids it
        names, and those whose state changed. ``ProtocolError`` if it does not parse."""
        ids = [entry.client for entry in parse_entries(payload)]
        before = clocks(self.awareness, set(ids))
        try:
            self.awareness.apply_awareness_update(payload, origin)
        except (ValueError, RecursionError) as exc:
            raise ProtocolError(f"malformed awareness state: {exc}") from exc
        after = clocks(self.awareness, set(ids))
        return ids, [i for i in ids if after[i] is not None and after[i] != before[i]]

    def remove(self, conn: Owner) -> list[int]:
        """``conn`` left: its states go; the ids removed (to broadcast)."""
        for client_id in conn.awareness_ids:
            if self._owner.get(client_id) is conn:
                del self._owner[client_id]
        if not conn.awareness_ids:
            return []
        ids = [i for i in conn.awareness_ids if i in self.awareness.states]
        self.awareness.remove_awareness_states(ids, conn)
        return ids
