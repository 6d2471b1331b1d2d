"""Frame parsing: every malformed frame is a ProtocolError, never an IndexError in a handler."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pycrdt import Doc, create_sync_message

from collab_server.protocol import (
    AwarenessFrame,
    ProtocolError,
    RawFrame,
    SyncFrame,
    close_reason,
    parse_frame,
    raw_message,
    save_request,
)


def test_known_frames() -> None:
    sync = parse_frame(create_sync_message(Doc()))
    assert isinstance(sync, SyncFrame) and sync.step == 0
    save = parse_frame(save_request(42))
    assert save == RawFrame("save", 42)
    assert isinstance(parse_frame(b"\x01\x02ab"), AwarenessFrame)
    reply = parse_frame(raw_message({"type": "save", "responseTo": 1}))
    assert isinstance(reply, RawFrame) and json.loads(reply.text)["responseTo"] == 1


@pytest.mark.parametrize("frame", [b"", b"\x00", b"\x00\x07x", b"\x00\x01\x05ab", b"\x09", b"\x01"])
def test_malformed_frames(frame: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_frame(frame)


@given(st.binary(max_size=64))
def test_any_bytes_parse_or_raise_protocol_error(data: bytes) -> None:
    try:
        parse_frame(data)
    except ProtocolError:
        pass


def test_close_reason_fits_a_close_frame() -> None:
    reason = close_reason("initialization_error", "s" * 32, errorReason="x" * 200)
    assert len(reason.encode()) <= 123 and json.loads(reason)["reloadable"] is True
