"""Online Collaborators across two hub instances over Redis, on a real revad (§10, presence.py):
users whose Jupyter servers talk to different instances see each other while they share a room,
and stop seeing each other when that ends, when one leaves, or when an instance dies."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from devkit.hubproc import HubProcess
from devkit.redisproc import RedisProcess
from devkit.revad.launcher import RevadHandle
from devkit.yclient import YClient
from tests.collab_server.scaleout.test_hubs_cs3 import _hub
from tests.collab_server.test_presence import _names, _online, _others, _state
from tests.revad.sharing import Shared, Tokens

pytestmark = [pytest.mark.revad, pytest.mark.timeout(180)]


async def test_users_on_two_instances_see_each_other_while_they_share_a_room(
    tmp_path: Path,
    hubs: Callable[..., HubProcess],
    revad: RevadHandle,
    redis_server: RedisProcess,
    cs3_tokens: Tokens,
    cs3_shared: Shared,
) -> None:
    t = cs3_tokens
    a = _hub(hubs, tmp_path, revad, redis_server, "a")
    b = _hub(hubs, tmp_path, revad, redis_server, "b")
    einstein = await _online(a, t.einstein, "einstein")
    marie = await _online(b, t.marie, "marie")
    richard = await _online(b, t.richard, "richard")
    einstein_on_b = await _online(b, t.einstein, "einstein")  # his second tab, other instance
    docs: list[YClient] = []
    try:
        # the same user's tabs see each other whole across instances; strangers see nothing
        await einstein.wait_for(lambda: _names(einstein) == {"einstein"}, timeout=10)
        assert list(_others(einstein).values()) == [_state("einstein")]
        await asyncio.sleep(2.5)  # > two visibility ticks
        assert _names(marie) == set() and _names(richard) == set()

        # einstein opens the shared notebook on a, marie on b: they see each other's user only
        owner = a.session(cs3_shared.owner.path, token=t.einstein).json()
        sharee = b.session(cs3_shared.marie_path, token=t.marie).json()
        docs.append(await YClient(a.room_url(owner, token=t.einstein)).connect())
        docs.append(await YClient(b.room_url(sharee, token=t.marie)).connect())
        await einstein.wait_for(lambda: "marie" in _names(einstein), timeout=10)
        await marie.wait_for(lambda: _names(marie) == {"einstein"}, timeout=10)
        seen = [s for s in _others(einstein).values() if s["user"]["username"] == "marie"]
        assert seen == [{"user": _state("marie")["user"]}]  # her paths stay hers
        assert all("current" not in s for s in _others(marie).values())
        await asyncio.sleep(1.5)
        assert _names(richard) == set()  # not in that room

        # an update crosses too
        renamed = {**_state("marie"), "user": {**_state("marie")["user"], "display_name": "MC"}}
        await marie.set_awareness(renamed)
        await einstein.wait_for(
            lambda: any(s["user"].get("display_name") == "MC" for s in _others(einstein).values()),
            timeout=10,
        )

        # marie closes the notebook: gone for einstein within a few ticks, shown again after
        await docs.pop().close()
        await einstein.wait_for(lambda: "marie" not in _names(einstein), timeout=10)
        docs.append(await YClient(b.room_url(sharee, token=t.marie)).connect())
        await einstein.wait_for(lambda: "marie" in _names(einstein), timeout=10)

        # instance b dies with marie's tabs and einstein's second one: both go from a
        # (b's liveness key expires), without any goodbye from b
        b.kill9()
        await einstein.wait_for(lambda: _names(einstein) == set(), timeout=40)
    finally:
        for client in (*docs, einstein, marie, richard, einstein_on_b):
            await client.close()
