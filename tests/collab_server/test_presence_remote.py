"""What an instance keeps of the others' users (collab_server/presence_remote.py): snapshots
replace each other, are bounded, cannot take another instance's ids, and expire."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collab_server.presence_remote import (
    EXPIRE_S,
    MAX_STATES,
    RemoteUsers,
    Snapshot,
    decode_snapshot,
)


def _snap(
    instance: str, user: str, rooms: set[str], states: dict[int, tuple[int, str]]
) -> Snapshot:
    return Snapshot(instance, user, frozenset(rooms), states)


def _decode(data: bytes) -> Snapshot:
    return decode_snapshot(data, max_states=4, max_state_bytes=100)


@given(
    rooms=st.sets(st.text(max_size=20), max_size=5),
    states=st.dictionaries(
        st.integers(0, 2**53), st.tuples(st.integers(0, 2**31), st.text(max_size=30)), max_size=4
    ),
)
def test_a_snapshot_survives_the_wire(rooms: set[str], states: dict[int, tuple[int, str]]) -> None:
    snap = _snap("a-1", "marie", rooms, states)
    assert decode_snapshot(snap.encode(), max_states=4, max_state_bytes=200) == snap


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b"[]",
        b'{"i": "a", "u": "m", "r": "x", "s": []}',
        b'{"i": "a", "u": 1, "r": [], "s": []}',
        b'{"i": "a", "u": "m", "r": [], "s": [[1, 2]]}',
        b'{"i": "a", "u": "m", "r": [], "s": [[true, 2, "{}"]]}',
        json.dumps({"i": "a", "u": "m", "r": [], "s": [[i, 1, "{}"] for i in range(5)]}).encode(),
        json.dumps({"i": "a", "u": "m", "r": [], "s": [[1, 1, "x" * 101]]}).encode(),
        b"[" * 100_000,
    ],
)
def test_what_is_not_a_bounded_snapshot_is_refused(data: bytes) -> None:
    with pytest.raises(ValueError):
        _decode(data)


def test_snapshots_replace_each_other_and_expire() -> None:
    users = RemoteUsers()
    pub = {1: "{}", 2: "{}"}
    assert users.apply(_snap("a", "marie", {"r1"}, {1: (1, "{}"), 2: (1, "{}")}), pub, 0.0) == [
        1,
        2,
    ]
    assert users.owns(1) and users.owns(2)
    assert users.apply(_snap("a", "marie", {"r1"}, {2: (2, "{}")}), pub, 5.0) == [2]
    assert not users.owns(1) and users.owns(2)  # the newer snapshot no longer has tab 1
    # another instance's user cannot take marie's id
    assert users.apply(_snap("b", "evil", set(), {2: (9, "{}")}), pub, 5.0) == []
    assert [u.user for u in users] == ["marie"]  # evil's snapshot held nothing: not kept
    assert not users.expire(5.0 + EXPIRE_S - 1)
    assert users.expire(5.0 + EXPIRE_S) and len(users) == 0 and not users.owns(2)


def test_an_empty_snapshot_and_a_dead_instance_remove_the_user() -> None:
    users = RemoteUsers()
    users.apply(_snap("a", "marie", {"r1"}, {1: (1, "{}")}), {1: "{}"}, 0.0)
    users.apply(_snap("a", "einstein", {"r1"}, {}), {}, 0.0)  # in a room, no states here
    users.apply(_snap("a", "einstein", set(), {}), {}, 1.0)  # left it
    assert [u.user for u in users] == ["marie"]
    users.apply(_snap("b", "richard", {"r2"}, {7: (1, "{}")}), {7: "{}"}, 1.0)
    assert users.ids_of("a") == [1] and users.ids_of("b") == [
        7
    ]  # what the relay drops per instance
    users.drop_clients([7])
    assert users.drop_clients([1]) and len(users) == 0
    assert not users.drop_clients([1])


def test_a_user_with_more_states_than_fit_is_cut_not_refused() -> None:
    big = json.dumps({"user": {"name": "é" * 5_000}})  # escaped to \\u00e9 on the wire
    states = {i: (1, big) for i in range(2_000)}
    data = _snap("a", "marie", {"r1"}, states).encode()
    snap = decode_snapshot(data, max_states=MAX_STATES, max_state_bytes=64 << 10)
    assert 0 < len(snap.states) < 2_000 and snap.rooms == {"r1"}
