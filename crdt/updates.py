"""Reading Y updates without applying them: does an update change a document at all?

The hub refuses a viewer's edits, but a viewer's client also sends updates that change nothing:
its SyncStep2 on every (re)connect carries the whole delete set it knows, and a stale resend
carries items the room already has. Only an update that *would* change the room is an edit to
refuse (and then the viewer's screen must be reset, see Room). pycrdt offers the diff of an
update against a state vector, which drops the items a doc already has; what is left to check
is the delete set, which lib0 encodes as plain varUints (update format v1):

    structs:    varUint clients, then per client its structs   (here: 0 clients)
    delete set: varUint clients, then per client: varUint client, varUint ranges,
                then per range: varUint clock, varUint length
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pycrdt import Decoder, Doc, get_state, get_update, write_var_uint

DeleteSet = dict[int, list[tuple[int, int]]]  # client -> sorted, merged [start, end) ranges


def _read_delete_set(decoder: Decoder) -> DeleteSet:
    result: DeleteSet = {}
    for _ in range(decoder.read_var_uint()):
        client = decoder.read_var_uint()
        ranges = result.setdefault(client, [])
        for _ in range(decoder.read_var_uint()):
            clock = decoder.read_var_uint()
            length = decoder.read_var_uint()
            ranges.append((clock, clock + length))
    return {client: _merged(ranges) for client, ranges in result.items()}


def _merged(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def _covered(ranges: list[tuple[int, int]], within: list[tuple[int, int]]) -> bool:
    """Every range of ``ranges`` lies inside one range of ``within`` (both merged)."""
    j = 0
    for start, end in ranges:
        while j < len(within) and within[j][1] < end:
            j += 1
        if j == len(within) or within[j][0] > start:
            return False
    return True


def delete_set_of(update_without_structs: bytes) -> DeleteSet:
    """The delete set of an update whose struct section is empty."""
    decoder = Decoder(update_without_structs)
    if decoder.read_var_uint() != 0:
        raise ValueError("the update carries structs")
    return _read_delete_set(decoder)


def _read_state(state: bytes) -> dict[int, int]:
    decoder = Decoder(state)
    return {
        decoder.read_var_uint(): decoder.read_var_uint() for _ in range(decoder.read_var_uint())
    }


def _encode_delete_set(ranges: dict[int, tuple[int, int]]) -> bytes:
    """An update without structs whose delete set is one [start, end) range per client."""
    out = bytearray(write_var_uint(0) + write_var_uint(len(ranges)))
    for client, (start, end) in ranges.items():
        out += write_var_uint(client) + write_var_uint(1)
        out += write_var_uint(start) + write_var_uint(end - start)
    return bytes(out)


@dataclass(frozen=True, slots=True)
class Refusal:
    """What refusing an update means for the client that made it."""

    changes: bool  # False: the update changes nothing in the doc (nothing to refuse)
    # An update that, applied by the client, takes its refused edit off its screen: the
    # delete set of the items it added. None when that is impossible: the update deletes
    # content the doc has, and Y cannot bring deleted items back.
    undo: bytes | None


def refuse(update: bytes, doc: Doc[Any]) -> Refusal:
    """Analyse an update ``doc`` will not apply (raises ValueError if it is malformed)."""
    state = doc.get_state()
    try:
        rest = get_update(update, state)  # what ``doc`` lacks, plus the whole delete set
        added_to = _read_state(get_state(rest))
    except Exception as exc:  # yrs rejects a malformed update
        raise ValueError(f"malformed update: {exc}") from exc
    decoder = Decoder(rest)
    has_structs = decoder.read_var_uint() != 0
    try:
        theirs = delete_set_of(_only_delete_set(rest)) if has_structs else _read_delete_set(decoder)
    except ValueError:
        # Structs the doc cannot place (the update depends on items it lacks) hide the delete
        # set from this reader: what it would delete is unknown, so no undo is offered.
        return Refusal(changes=True, undo=None)
    known = _read_state(state)
    ours = delete_set_of(doc.get_update(state)) if theirs else {}
    deletes_ours = False
    for client, ranges in theirs.items():
        # only the part of each range that the doc has items for: the rest are the
        # client's own new items (deleting what it just typed is part of its edit)
        have = known.get(client, 0)
        clipped = [(a, min(b, have)) for a, b in ranges if a < have]
        if clipped and not _covered(_merged(clipped), ours.get(client, [])):
            deletes_ours = True
            break
    added = {c: (known.get(c, 0), end) for c, end in added_to.items() if end > known.get(c, 0)}
    if not added and not deletes_ours:
        return Refusal(changes=False, undo=None)
    return Refusal(changes=True, undo=None if deletes_ours else _encode_delete_set(added))


def _only_delete_set(update: bytes) -> bytes:
    """The delete set of an update with structs, as an update without them.

    Skipping structs needs the full struct decoder; instead the update is diffed against a
    state vector beyond every clock it has, which drops every struct. (Its own state vector
    is not enough: an update with gaps keeps structs it cannot place.)
    """
    beyond = 1 << 53
    clients = _read_state(get_state(update))
    state = write_var_uint(len(clients)) + b"".join(
        write_var_uint(client) + write_var_uint(beyond) for client in clients
    )
    return get_update(update, state)  # structs it cannot place may remain: delete_set_of says


def changes_doc(update: bytes, doc: Doc[Any]) -> bool:
    """Whether applying ``update`` would change ``doc`` (raises ValueError if malformed)."""
    return refuse(update, doc).changes
