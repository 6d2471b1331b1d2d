from __future__ import annotations

import pytest

from collab_server.scaleout.entries import BadEntry, Entry, EntryKind, decode, encode


def test_entries_round_trip() -> None:
    original = Entry(
        origin="hub-1", seq=42, lineage="abc", kind=EntryKind.FULL_STATE, payload=b"\x00\x01"
    )
    assert decode(encode(original)) == original


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {b"o": b"a", b"s": b"x", b"l": b"L", b"k": b"u"},
        {b"o": b"a", b"s": b"0", b"l": b"L", b"k": b"u"},
        {b"o": b"a", b"s": b"1", b"l": b"L", b"k": b"?"},
        {b"o": b"\xff", b"s": b"1", b"l": b"L", b"k": b"u"},
        {b"o": b"", b"s": b"1", b"l": b"L", b"k": b"u"},
    ],
)
def test_anything_else_in_the_stream_is_a_bad_entry(fields: dict[bytes, bytes]) -> None:
    with pytest.raises(BadEntry):
        decode(fields)
