"""The hub on CS3 storage against a real revad: auth by CS3 token, roles, one room per resource."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import nbformat
import pytest
from websockets.exceptions import InvalidStatus

from devkit.hubproc import HubProcess
from devkit.revad.launcher import USERS, RevadHandle, home_path, start_revad
from devkit.yclient import YClient
from storage_bridge.cs3 import CS3Storage
from storage_bridge.errors import Unavailable
from tests.revad.sharing import EMPTY_NB, Shared, Tokens

pytestmark = pytest.mark.revad


def _cs3_hub(hubs: Callable[..., HubProcess], tmp_path: Path, gateway: str) -> HubProcess:
    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    return hubs(
        root=root,
        data_dir=tmp_path / "data",
        args=["--storage", "cs3", "--gateway", gateway],
        env={"CS3COLLAB_SNAPSHOT_RETRY_MAX": "1"},
    )


@pytest.fixture
def cs3_hub(hubs: Callable[..., HubProcess], tmp_path: Path, revad: RevadHandle) -> HubProcess:
    return _cs3_hub(hubs, tmp_path, revad.gateway)


def _open(hub: HubProcess, path: str, token: str) -> dict[str, str]:
    r = hub.session(path, token=token)
    assert r.status_code in (200, 201), r.text
    return dict(r.json())


def _sources(nb: dict) -> list[str]:
    return ["".join(c["source"]) if isinstance(c["source"], list) else c["source"]
            for c in nb["cells"]]  # fmt: skip


async def _stored(storage: CS3Storage, token: str, path: str, pred) -> dict:
    """Poll the file in CS3 (a plain download, not through the hub) until ``pred`` holds."""
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        try:
            data, _ = await storage.read(token, path)
        except Unavailable:  # our own client reconnecting after an outage
            data = b'{"cells": []}'
        nb = json.loads(data)
        if nb["cells"] and pred(nb):
            return dict(nb)
        assert asyncio.get_running_loop().time() < deadline, f"snapshot never reached CS3: {nb}"
        await asyncio.sleep(0.2)


async def test_owner_and_sharee_coedit_in_one_room(
    cs3_hub: HubProcess, cs3_storage: CS3Storage, cs3_tokens: Tokens, cs3_shared: Shared
) -> None:
    t = cs3_tokens
    owner = _open(cs3_hub, cs3_shared.owner.path, t.einstein)
    sharee = _open(cs3_hub, cs3_shared.marie_path, t.marie)
    # different paths, one resource: one room, one lineage
    assert owner["fileId"] == sharee["fileId"]
    assert owner["sessionId"] == sharee["sessionId"]
    einstein = await YClient(cs3_hub.room_url(owner, token=t.einstein)).connect()
    marie = await YClient(cs3_hub.room_url(sharee, token=t.marie)).connect()
    einstein.append_source(0, "E=mc^2\n")
    await marie.wait_for(lambda: "E=mc^2" in marie.sources()[0])
    marie.append_source(0, "polonium\n")
    both = ("E=mc^2", "polonium")
    for c in (einstein, marie):
        await c.wait_for(lambda c=c: all(w in c.sources()[0] for w in both))
    assert einstein.sources() == marie.sources()
    nb = await _stored(cs3_storage, t.einstein, cs3_shared.owner.path,
                       lambda nb: all(w in _sources(nb)[0] for w in both))  # fmt: skip
    nbformat.validate(nbformat.from_dict(nb))
    await einstein.close()
    await marie.close()


async def test_viewer_sees_live_edits_but_cannot_edit(
    cs3_hub: HubProcess, cs3_tokens: Tokens, cs3_shared: Shared
) -> None:
    t = cs3_tokens
    owner = _open(cs3_hub, cs3_shared.owner.path, t.einstein)
    viewer_info = _open(cs3_hub, cs3_shared.richard_path, t.richard)
    assert viewer_info["fileId"] == owner["fileId"]
    einstein = await YClient(cs3_hub.room_url(owner, token=t.einstein)).connect()
    richard = await YClient(cs3_hub.room_url(viewer_info, token=t.richard)).connect()
    einstein.append_source(0, "live")
    await richard.wait_for(lambda: richard.sources()[0] == "live")
    # awareness works for viewers
    await richard.set_awareness({"user": {"name": "richard"}})
    await einstein.wait_for(lambda: any(s.get("user", {}).get("name") == "richard"
                                        for s in einstein.awareness.states.values()))  # fmt: skip
    richard.append_source(0, " vandalism")
    refusal = await richard.wait_raw(lambda m: m.get("type") == "refused")
    assert refusal["reason"] == "read_only"
    # typing is taken back on the viewer's own screen, live: it converges to the room
    await richard.wait_for(lambda: richard.sources() == ["live"], timeout=2)
    einstein.append_source(0, "!")
    await richard.wait_for(lambda: richard.sources() == ["live!"], timeout=2)
    richard.append_source(0, " again")  # later typing too (its Y clocks follow the first)
    await richard.wait_for(lambda: richard.sources() == ["live!"], timeout=2)
    assert richard.close_code is None
    # deleting room text cannot be taken back in Y: refused, the room and others keep it
    refusals = sum(m.get("type") == "refused" for m in richard.raw)
    ytext = richard.view.ycells[0]["source"]
    del ytext[0:2]
    await richard.wait_for(lambda: sum(m.get("type") == "refused" for m in richard.raw) > refusals)
    assert richard.close_code is None
    again = await YClient(cs3_hub.room_url(viewer_info, token=t.richard)).connect()
    assert again.sources() == ["live!"]
    await again.close()
    # the refused edit never reached the room: a fresh client sees only einstein's text
    probe = await YClient(cs3_hub.room_url(owner, token=t.einstein)).connect()
    assert probe.sources() == ["live!"]
    for c in (einstein, richard, probe):
        await c.close()


async def test_stranger_and_bad_tokens_are_refused(
    cs3_hub: HubProcess, cs3_tokens: Tokens, cs3_shared: Shared
) -> None:
    t = cs3_tokens
    owner = _open(cs3_hub, cs3_shared.owner.path, t.einstein)
    # reva does not reveal to a stranger that the file exists: 404, not 403
    assert cs3_hub.session(cs3_shared.owner.path, token=t.admin).status_code == 404
    stranger = YClient(cs3_hub.room_url(owner, token=t.admin))
    await stranger.connect(wait_synced=False)
    assert await stranger.wait_closed() in (4403, 4404)
    assert not stranger.synced.is_set()
    # garbage and missing tokens
    assert cs3_hub.session(cs3_shared.owner.path, token="garbage").status_code == 401
    bad = YClient(cs3_hub.room_url(owner, token="garbage.jwt.token"))
    with pytest.raises(InvalidStatus) as refused:  # checked before the upgrade
        await bad.connect(wait_synced=False)
    assert refused.value.response.status_code == 401


def _snapshot_failures(hub: HubProcess) -> float:
    metrics = httpx.get(f"{hub.http_url}/metrics").text
    return sum(
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("cs3collab_snapshot_failures_total")
    )


@pytest.fixture
def private_revad(tmp_path: Path, revad: RevadHandle) -> Iterator[RevadHandle]:
    """A revad of this test's own, to stop and restart (the session one stays up)."""
    handle = start_revad(tmp_path / "revad", binary=revad.binary)
    try:
        yield handle
    finally:
        handle.stop()


async def test_editing_continues_while_revad_is_down(
    hubs: Callable[..., HubProcess], tmp_path: Path, private_revad: RevadHandle
) -> None:
    storage = CS3Storage(private_revad.gateway)
    try:
        token = await storage.authenticate("einstein", USERS["einstein"][0])
        path = f"{home_path('einstein')}/outage.ipynb"
        await storage.create(token, path, EMPTY_NB)
        hub = _cs3_hub(hubs, tmp_path, private_revad.gateway)
        info = _open(hub, path, token)
        client = await YClient(hub.room_url(info, token=token)).connect()
        peer = await YClient(hub.room_url(info, token=token)).connect()

        await asyncio.to_thread(private_revad.stop)
        down_since = time.monotonic()
        with pytest.raises(Unavailable):
            await storage.stat(token, path)
        # storage is gone, the room is not: edits flow between clients and are logged
        for word in ("written ", "while ", "revad ", "was ", "down"):
            client.append_source(0, word)
        await peer.wait_for(lambda: peer.sources()[0] == "written while revad was down")

        # keep revad down for 60 s (issue 11), editing on; the hub fails and retries meanwhile
        await peer.wait_for(lambda: _snapshot_failures(hub) > 0, 30)
        for word in (" for", " a", " minute"):
            client.append_source(0, word)
            until = down_since + 20 * (1 + (" for", " a", " minute").index(word))
            await peer.wait_for(lambda until=until: time.monotonic() >= until, 70)
        text = "written while revad was down for a minute"
        await peer.wait_for(lambda: peer.sources()[0] == text)
        assert time.monotonic() - down_since >= 60

        await asyncio.to_thread(private_revad.start)
        recovered = time.monotonic()
        nb = await _stored(storage, token, path, lambda nb: _sources(nb) == [text])
        assert time.monotonic() - recovered < 10, "the snapshot came more than 10 s late"
        nbformat.validate(nbformat.from_dict(nb))
        await client.close()
        await peer.close()
    finally:
        await storage.aclose()
