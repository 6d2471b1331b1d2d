"""The deployed topology (docker-compose.yml, scripts/dev-stack): two hub instances over one
redis-server, einstein's Jupyter server on one and marie's on the other, one room (§10)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator

import pytest

from devkit.revad.launcher import USERS, RevadHandle, home_path
from devkit.yclient import YClient
from storage_bridge.cs3 import CS3Storage
from tests.jupyter_cs3.devstack import DevStack, running_stack
from tests.jupyter_cs3.stack import new_name, open_from_shares, put_notebook, share

pytestmark = [pytest.mark.revad, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def replicas(revad: RevadHandle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    with running_stack(
        tmp_path_factory.mktemp("replicas"), revad=revad, users=("einstein", "marie"), replicas=2
    ) as stack:
        yield stack


@pytest.fixture
async def cs3(replicas: DevStack) -> AsyncIterator[CS3Storage]:
    storage = CS3Storage(replicas.revad.gateway)
    yield storage
    await storage.aclose()


async def test_users_on_two_hub_instances_share_one_room(
    replicas: DevStack, cs3: CS3Storage
) -> None:
    assert len(replicas.hubs) == 2 and replicas.redis is not None
    einstein, marie = replicas["einstein"], replicas["marie"]
    name = new_name()
    put_notebook(einstein, name)
    share(einstein, name, "marie", "editor")
    marie_path = open_from_shares(marie, name)
    e_info = einstein.session(name).json()
    m_info = marie.session(marie_path).json()
    assert (e_info["fileId"], e_info["sessionId"]) == (m_info["fileId"], m_info["sessionId"])
    e = await YClient(einstein.room_url(e_info)).connect()
    m = await YClient(marie.room_url(m_info)).connect()
    await e.set_awareness({"user": {"name": "einstein"}})
    e.append_source(0, "E = m c^2\n")
    m.append_source(0, "Po, Ra\n")
    both = ("E = m c^2", "Po, Ra")
    await e.wait_for(lambda: all(w in e.sources()[0] for w in both))
    await m.wait_for(lambda: all(w in m.sources()[0] for w in both))
    await m.wait_for(
        lambda: any(
            isinstance(s, dict) and s.get("user", {}).get("name") == "einstein"
            for s in m.awareness.states.values()
        )
    )
    token = await cs3.authenticate("einstein", USERS["einstein"][0])
    path = f"{home_path('einstein')}/{name}"
    async with asyncio.timeout(30):
        while True:
            data, _ = await cs3.read(token, path)
            cells = json.loads(data)["cells"]
            text = "".join("".join(c["source"]) for c in cells)
            if all(w in text for w in both):
                break
            await asyncio.sleep(0.2)
    await e.close()
    await m.close()
