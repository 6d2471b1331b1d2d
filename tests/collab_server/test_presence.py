"""The hub's global awareness room (collab_server/presence.py) on a real hub + real revad.

Users see each other's ``user`` while they have a document room in common, never otherwise;
the same user's tabs see each other's whole state; ids another socket owns cannot be
overwritten; a query is answered; bad input costs only its socket.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import websockets
from pycrdt import write_var_uint
from websockets.exceptions import InvalidStatus

from collab_server.awareness import Entry, encode_entries
from tests.collab_server.test_hub_cs3 import _cs3_hub, _open
from tests.hubproc import HubProcess
from tests.revad.launcher import RevadHandle
from tests.revad.sharing import Shared, Tokens
from tests.yclient import YClient

pytestmark = pytest.mark.revad


def _url(hub: HubProcess, token: str) -> str:
    return f"{hub.ws_url}/api/collaboration/awareness?token={token}"


def _state(user: str) -> dict[str, Any]:
    return {
        "user": {"username": user, "display_name": user.title(), "color": "#123456"},
        "current": f"notebook:private-{user}.ipynb",
    }


def _others(client: YClient) -> dict[int, Any]:
    """The states ``client`` holds of other awareness ids."""
    return {i: s for i, s in client.awareness.states.items() if i != client.doc.client_id}


def _names(client: YClient) -> set[str]:
    return {s["user"]["username"] for s in _others(client).values() if "user" in s}


async def _online(hub: HubProcess, token: str, user: str) -> YClient:
    client = await YClient(_url(hub, token)).connect()
    await client.set_awareness(_state(user))
    return client


def _frame(entries: list[Entry]) -> bytes:
    payload = encode_entries(entries)
    return b"\x01" + write_var_uint(len(payload)) + payload


async def test_users_see_each_other_while_they_share_a_room(
    hubs: Callable[..., HubProcess],
    tmp_path: Path,
    revad: RevadHandle,
    cs3_tokens: Tokens,
    cs3_shared: Shared,
) -> None:
    t = cs3_tokens
    hub = _cs3_hub(hubs, tmp_path, revad.gateway)
    einstein = await _online(hub, t.einstein, "einstein")
    marie = await _online(hub, t.marie, "marie")
    richard = await _online(hub, t.richard, "richard")
    einstein_tab2 = await _online(hub, t.einstein, "einstein")
    docs: list[YClient] = []
    try:
        # the same user's tabs see each other whole; nobody else is announced to strangers
        await einstein.wait_for(lambda: len(_others(einstein)) == 1)
        (tab2_state,) = _others(einstein).values()
        assert tab2_state == _state("einstein")
        await asyncio.sleep(2.5)  # > two visibility ticks
        assert _names(marie) == set() and _names(richard) == set()
        assert _names(einstein) == {"einstein"}

        # einstein and marie open the shared notebook: they see each other's user, no path
        owner = _open(hub, cs3_shared.owner.path, t.einstein)
        sharee = _open(hub, cs3_shared.marie_path, t.marie)
        docs.append(await YClient(hub.room_url(owner, token=t.einstein)).connect())
        docs.append(await YClient(hub.room_url(sharee, token=t.marie)).connect())
        await einstein.wait_for(lambda: "marie" in _names(einstein))
        await marie.wait_for(lambda: _names(marie) == {"einstein"})
        marie_seen = [s for s in _others(einstein).values() if s["user"]["username"] == "marie"]
        assert marie_seen == [{"user": _state("marie")["user"]}]  # "current" stays hers
        assert all("current" not in s for s in _others(marie).values())
        await asyncio.sleep(1.5)
        assert _names(richard) == set()  # not in that room

        # an update is forwarded (renewals too: a viewer would time the state out otherwise)
        renamed = {**_state("marie"), "user": {**_state("marie")["user"], "display_name": "MC"}}
        await marie.set_awareness(renamed)
        await einstein.wait_for(
            lambda: any(s["user"].get("display_name") == "MC" for s in _others(einstein).values())
        )

        # richard cannot overwrite or remove marie's state by naming her awareness id
        marie_id = marie.doc.client_id
        assert richard.ws is not None
        spoof = json.dumps({"user": {"username": "evil"}})
        await richard.ws.send(_frame([Entry(marie_id, 10_000, spoof)]))
        await richard.ws.send(_frame([Entry(marie_id, 10_001, "null")]))
        await asyncio.sleep(1.0)
        assert einstein.awareness.states[marie_id]["user"]["display_name"] == "MC"

        # marie closes the notebook: einstein is told she is gone (within a tick)
        await docs.pop().close()
        await einstein.wait_for(lambda: "marie" not in _names(einstein), timeout=10)
        await marie.wait_for(lambda: _names(marie) == set(), timeout=10)
        # she opens it again: shown again (the hub's clock beats the removal it sent)
        docs.append(await YClient(hub.room_url(sharee, token=t.marie)).connect())
        await einstein.wait_for(lambda: "marie" in _names(einstein), timeout=10)
        # her last tab leaves the hub: removed at once
        await marie.close()
        await einstein.wait_for(lambda: "marie" not in _names(einstein), timeout=5)
    finally:
        for client in (*docs, einstein, marie, richard, einstein_tab2):
            await client.close()


async def test_bad_input_costs_only_that_socket(
    hubs: Callable[..., HubProcess], tmp_path: Path, revad: RevadHandle, cs3_tokens: Tokens
) -> None:
    t = cs3_tokens
    hub = _cs3_hub(hubs, tmp_path, revad.gateway)
    with pytest.raises(InvalidStatus) as refused:
        await websockets.connect(_url(hub, "not-a-token"))
    assert refused.value.response.status_code == 401
    einstein = await _online(hub, t.einstein, "einstein")
    tab2 = await _online(hub, t.einstein, "einstein")
    try:
        await einstein.wait_for(lambda: len(_others(einstein)) == 1)
        cases: list[tuple[bytes, str]] = [
            (b"\x01\x05\x01", "truncated"),  # a payload shorter than it says
            (b"\x07", "unknown message type"),
            (_frame([Entry(5_000_000, 1, "[" * 60_000)]), "not JSON"),  # nested too deep
            (_frame([Entry(5_000_001, 1, "[1]")]), "JSON object"),
        ]
        big = json.dumps({"user": {"username": "x" * (70 * 1024)}})
        for data, why in cases:
            bad = await _online(hub, t.einstein, "einstein")
            assert bad.ws is not None
            await bad.ws.send(data)
            assert await bad.wait_closed() == 4400
            assert why in bad.close_reason, bad.close_reason
        bad = await YClient(_url(hub, t.einstein)).connect()
        await bad.set_awareness({"user": json.loads(big)["user"]})
        assert await bad.wait_closed() == 4400 and "bytes" in bad.close_reason
        # more awareness ids than one socket may own
        bad = await YClient(_url(hub, t.einstein)).connect()
        assert bad.ws is not None
        await bad.ws.send(_frame([Entry(1_000_000 + i, 1, "{}") for i in range(17)]))
        assert await bad.wait_closed() == 4400 and "clients" in bad.close_reason
        # the others are unharmed and still hear each other
        await tab2.set_awareness({**_state("einstein"), "current": "notebook:after.ipynb"})
        await einstein.wait_for(
            lambda: any(
                s.get("current") == "notebook:after.ipynb" for s in _others(einstein).values()
            )
        )
        # a query (message type 3) is answered with every state the socket may see
        frames = einstein.awareness_frames
        assert einstein.ws is not None
        await einstein.ws.send(b"\x03")
        await einstein.wait_for(lambda: einstein.awareness_frames > frames)
        assert len(_others(einstein)) == 1
    finally:
        await einstein.close()
        await tab2.close()
