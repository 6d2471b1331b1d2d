"""The wire format JupyterLab's collaborative mode speaks (ARCHITECTURE §6).

pycrdt provides the y-sync framing; this module adds the RAW messages (type 2) Jupyter uses for
``save`` and ``conflict``, our close codes, and a parser that rejects malformed frames with a
clear error instead of an IndexError deep inside a handler.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from pycrdt import Decoder, YMessageType, YSyncMessageType, write_var_uint

RAW = 2  # y-websocket's "auth" slot, reused by Jupyter for raw JSON/string messages
QUERY_AWARENESS = 3


class CloseCode(IntEnum):
    NORMAL = 1000
    GOING_AWAY = 1001
    UNSUPPORTED = 1003  # + JSON reason: the client disposes its doc and offers reload
    TOO_BIG = 1009
    RECONNECT = 1011  # a hub-side failure after the open: every client reconnects (and reloads)
    BAD_REQUEST = 4400
    UNAUTHENTICATED = 4401
    FORBIDDEN = 4403
    NOT_FOUND = 4404
    DOC_TOO_LARGE = 4413
    TOO_MANY = 4429  # too many connections, or a send queue the client does not drain
    INTERNAL = 4500


class ProtocolError(ValueError):
    """A frame that does not parse."""


@dataclass(frozen=True, slots=True)
class SyncFrame:
    step: YSyncMessageType
    payload: bytes  # state vector (step 1) or update (step 2 / update)


@dataclass(frozen=True, slots=True)
class AwarenessFrame:
    payload: bytes


@dataclass(frozen=True, slots=True)
class RawFrame:
    text: str
    save_id: int | None  # set for the ``save`` request


@dataclass(frozen=True, slots=True)
class QueryAwarenessFrame:
    pass


Frame = SyncFrame | AwarenessFrame | RawFrame | QueryAwarenessFrame


def parse_frame(data: bytes) -> Frame:
    try:
        if not data:
            raise ProtocolError("empty frame")
        kind = data[0]
        if kind == YMessageType.SYNC:
            if len(data) < 2:
                raise ProtocolError("truncated sync message")
            step = YSyncMessageType(data[1])
            payload = _read_payload(data[2:])
            return SyncFrame(step, payload)
        if kind == YMessageType.AWARENESS:
            return AwarenessFrame(_read_payload(data[1:]))
        if kind == RAW:
            decoder = Decoder(data[1:])
            text = decoder.read_var_string()
            save_id = decoder.read_var_uint() if text == "save" and decoder.length > 0 else None
            return RawFrame(text, save_id)
        if kind == QUERY_AWARENESS:
            return QueryAwarenessFrame()
    except ProtocolError:
        raise
    except (ValueError, IndexError, RuntimeError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"malformed message: {exc}") from exc
    raise ProtocolError(f"unknown message type {kind}")


def _read_payload(data: bytes) -> bytes:
    decoder = Decoder(data)
    length = decoder.read_var_uint()
    payload = data[decoder.i0 : decoder.i0 + length]
    if len(payload) != length:
        raise ProtocolError("truncated payload")
    return payload


def sync_step2_message(update: bytes) -> bytes:
    return (
        bytes([YMessageType.SYNC, YSyncMessageType.SYNC_STEP2])
        + write_var_uint(len(update))
        + update
    )


def raw_message(payload: dict[str, Any]) -> bytes:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return bytes([RAW]) + write_var_uint(len(body)) + body


def save_request(save_id: int) -> bytes:
    """What the client sends (used by tests and tools)."""
    return bytes([RAW]) + write_var_uint(4) + b"save" + write_var_uint(save_id)


def parse_command(text: str, *, max_bytes: int, max_depth: int) -> dict[str, Any]:
    """A JSON raw command, bounded in size and nesting before it is parsed."""
    if len(text) > max_bytes or len(text.encode()) > max_bytes:
        raise ProtocolError(f"JSON command over {max_bytes} bytes")
    depth = deepest = 0
    for char in text:  # brackets inside strings count too: stricter, never looser
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    if deepest > max_depth:
        raise ProtocolError(f"JSON command nested deeper than {max_depth}")
    try:
        command = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"bad JSON command: {exc}") from exc
    if not isinstance(command, dict):
        raise ProtocolError("a JSON command must be an object")
    return command


def close_reason(reason: str, session_id: str, **extra: Any) -> str:
    """The JSON reason of a 1003 close; kept under the 123-byte limit of close frames."""
    payload = {"reason": reason, "sessionId": session_id, "reloadable": True, **extra}
    text = json.dumps(payload, separators=(",", ":"))
    if len(text.encode()) > 123:
        payload.pop("errorReason", None)
        text = json.dumps(payload, separators=(",", ":"))
    return text
