"""jupyter_cs3 against real processes: revad (reva v2.27.7), the hub on CS3, and one real Jupyter
server per CS3 user. Clients talk to the Jupyter servers only, as JupyterLab does."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import websockets
from pycrdt import Map, Text

from devkit.revad.launcher import USERS, home_path
from devkit.yclient import YClient
from storage_bridge.cs3 import CS3Storage
from tests.jupyter_cs3.devstack import DevStack, cs3_config
from tests.jupyter_cs3.jupyterproc import JupyterProcess
from tests.jupyter_cs3.stack import (
    EMPTY_NB,
    Stack,
    new_name,
    open_from_shares,
    put_notebook,
    share,
)

pytest_plugins = ["tests.revad.fixture"]
pytestmark = pytest.mark.revad


@pytest.fixture
async def cs3(stack: Stack) -> AsyncIterator[CS3Storage]:
    storage = CS3Storage(stack.revad.gateway)
    yield storage
    await storage.aclose()


async def token_of(cs3: CS3Storage, user: str) -> str:
    return await cs3.authenticate(user, USERS[user][0])


def _mtime(model: dict[str, Any]) -> float:
    return datetime.fromisoformat(model["last_modified"].replace("Z", "+00:00")).timestamp()


def _sources(nb: dict[str, Any]) -> list[str]:
    return ["".join(c["source"]) if isinstance(c["source"], list) else c["source"]
            for c in nb["cells"]]  # fmt: skip


async def _in_cs3(cs3: CS3Storage, token: str, path: str, pred: Any) -> bytes:
    """Poll the file in CS3 with a plain download (not through Jupyter or the hub)."""
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        data, _ = await cs3.read(token, path)
        if pred(data):
            return data
        assert asyncio.get_running_loop().time() < deadline, f"never reached CS3: {data[:500]!r}"
        await asyncio.sleep(0.2)


# ---------------------------------------------------------------- contents API


async def test_contents_round_trip(stack: Stack, cs3: CS3Storage) -> None:
    einstein = stack["einstein"]
    token = await token_of(cs3, "einstein")
    folder = new_name("dir", "")
    made = einstein.request("PUT", f"/api/contents/{folder}", json={"type": "directory"})
    assert made.status_code == 201, made.text
    nb_path = f"{folder}/{new_name()}"
    nb = {**EMPTY_NB, "cells": [{**EMPTY_NB["cells"][0], "source": "print('ünïcode')"}]}
    put_notebook(einstein, nb_path, nb)

    # what Jupyter reports is what CS3 holds
    got = einstein.contents(nb_path, hash=1).json()
    data, _ = await cs3.read(token, f"{home_path('einstein')}/{nb_path}")
    st = await cs3.stat(token, f"{home_path('einstein')}/{nb_path}")
    assert got["type"] == "notebook" and got["writable"] is True
    assert _sources(got["content"]) == ["print('ünïcode')"]
    assert got["hash"] == hashlib.sha256(data).hexdigest() and got["hash_algorithm"] == "sha256"
    assert abs(_mtime(got) - st.mtime) < 1e-3
    assert got["size"] == len(data)

    # text and binary files, listing, download
    einstein.request("PUT", f"/api/contents/{folder}/a.txt",
                     json={"type": "file", "format": "text", "content": "hello\n"})  # fmt: skip
    blob = bytes(range(256))
    einstein.request("PUT", f"/api/contents/{folder}/b.bin",
                     json={"type": "file", "format": "base64",
                           "content": base64.b64encode(blob).decode()})  # fmt: skip
    listing = einstein.contents(folder).json()
    assert listing["type"] == "directory"
    names = {c["name"]: c["type"] for c in listing["content"]}
    assert names == {nb_path.split("/")[1]: "notebook", "a.txt": "file", "b.bin": "file"}
    assert einstein.contents(f"{folder}/a.txt").json()["content"] == "hello\n"
    b = einstein.contents(f"{folder}/b.bin").json()
    assert (b["format"], base64.b64decode(b["content"])) == ("base64", blob)
    download = einstein.request("GET", f"/files/{folder}/b.bin")
    assert download.status_code == 200 and download.content == blob

    # new untitled, rename (keeps the CS3 resource id), delete
    created = einstein.request("POST", f"/api/contents/{folder}", json={"type": "notebook"})
    assert created.status_code == 201, created.text
    untitled = created.json()["path"]
    before = await cs3.stat(token, f"{home_path('einstein')}/{untitled}")
    renamed = einstein.request(
        "PATCH", f"/api/contents/{untitled}", json={"path": f"{folder}/r.ipynb"}
    )
    assert renamed.status_code == 200, renamed.text
    after = await cs3.stat(token, f"{home_path('einstein')}/{folder}/r.ipynb")
    assert after.id == before.id
    assert einstein.request("DELETE", f"/api/contents/{folder}/a.txt").status_code == 204
    assert einstein.contents(f"{folder}/a.txt").status_code == 404

    # the root lists the received-shares folder, read-only
    root = {c["name"]: c for c in einstein.contents("").json()["content"]}
    assert root["Shares"]["type"] == "directory" and root["Shares"]["writable"] is False
    assert folder in root


async def test_contents_refuses_escape_and_unauthenticated(stack: Stack) -> None:
    einstein = stack["einstein"]
    assert einstein.contents("../../etc").status_code in (400, 404)
    r = einstein.request("GET", "/api/contents/", headers={"Authorization": "token wrong"})
    assert r.status_code == 403
    r = einstein.request("PUT", "/api/collaboration/session/x.ipynb",
                         json={"format": "json", "type": "notebook"},
                         headers={"Authorization": "token wrong"})  # fmt: skip
    assert r.status_code == 403


# ---------------------------------------------------------------- co-editing


async def test_two_users_two_servers_one_room(stack: Stack, cs3: CS3Storage) -> None:
    einstein, marie = stack["einstein"], stack["marie"]
    name = new_name()
    put_notebook(einstein, name)
    shared = share(einstein, name, "marie", "editor")
    assert shared["grantee"]["username"] == "marie" and shared["role"] == "editor"
    marie_path = open_from_shares(marie, name)
    assert marie_path == f"Shares/{name}"
    assert marie.contents(marie_path).json()["writable"] is True

    e_info = einstein.session(name).json()
    m_info = marie.session(marie_path).json()
    # two servers, two paths, two users: one resource, one room, one lineage
    assert e_info["fileId"] == m_info["fileId"]
    assert e_info["sessionId"] == m_info["sessionId"]

    e = await YClient(einstein.room_url(e_info)).connect()
    m = await YClient(marie.room_url(m_info)).connect()
    await e.set_awareness({"user": {"name": "einstein"}, "autosave": True})
    await m.set_awareness({"user": {"name": "marie"}, "autosave": True})
    e.append_source(0, "E = m c^2\n")
    m.append_source(0, "Po, Ra\n")
    both = ("E = m c^2", "Po, Ra")
    for c in (e, m):
        await c.wait_for(lambda c=c: all(w in c.sources()[0] for w in both))
    assert e.sources() == m.sources()
    await m.wait_for(lambda: any(s.get("user", {}).get("name") == "einstein"
                                 for s in m.awareness.states.values()))  # fmt: skip

    # after the debounce CS3 has both edits (plain gRPC download, as einstein)
    token = await token_of(cs3, "einstein")
    data = await _in_cs3(cs3, token, f"{home_path('einstein')}/{name}",
                         lambda d: all(w in _sources(json.loads(d))[0] for w in both))  # fmt: skip
    # ... and the hash in the room's state is the one Jupyter's contents API reports
    digest = hashlib.sha256(data).hexdigest()
    state = e.doc.get("state", type=Map)
    await e.wait_for(lambda: state.get("hash") == digest and state.get("dirty") is False)
    for server, path in ((einstein, name), (marie, marie_path)):
        model = server.contents(path, content=0, hash=1).json()
        assert model["hash"] == digest
    await e.close()
    await m.close()


async def test_same_user_two_tabs(stack: Stack) -> None:
    einstein = stack["einstein"]
    name = new_name()
    put_notebook(einstein, name)
    info = einstein.session(name).json()
    tab1 = await YClient(einstein.room_url(info)).connect()
    tab2 = await YClient(einstein.room_url(einstein.session(name).json())).connect()
    tab1.append_source(0, "one ")
    tab2.append_source(0, "two ")
    for c in (tab1, tab2):
        await c.wait_for(lambda c=c: "one" in c.sources()[0] and "two" in c.sources()[0])
    assert tab1.sources() == tab2.sources() and len(tab1.sources()) == 1
    await tab1.close()
    await tab2.close()


async def test_jupyter_restart_loses_nothing(stack: Stack, cs3: CS3Storage) -> None:
    """einstein's Jupyter server restarts while marie keeps typing; einstein's client reconnects
    with its Y history (as y-websocket does) and nothing is lost or duplicated."""
    einstein, marie = stack["einstein"], stack["marie"]
    name = new_name()
    put_notebook(einstein, name)
    share(einstein, name, "marie")
    marie_path = open_from_shares(marie, name)
    e_info = einstein.session(name).json()
    e = await YClient(einstein.room_url(e_info)).connect()
    m = await YClient(marie.room_url(marie.session(marie_path).json())).connect()
    e.append_source(0, "a")
    await m.wait_for(lambda: m.sources()[0] == "a")

    einstein.stop()
    code = await e.wait_closed()
    assert code != 1003
    for ch in "bcdef":
        m.append_source(0, ch)  # marie keeps typing meanwhile
    e.append_source(0, "X")  # einstein types offline
    einstein.start()

    # reconnect like y-websocket: same URL (old sessionId), same Y doc
    again = YClient(einstein.room_url(e_info))
    again.doc.apply_update(e.doc.get_update())
    await again.connect()
    for c in (again, m):
        await c.wait_for(lambda c=c: sorted(c.sources()[0]) == sorted("abcdefX"))
    assert again.sources() == m.sources() and len(m.sources()) == 1
    await again.close()
    await m.close()


# ---------------------------------------------------------------- refusals and close codes


async def test_user_without_access_gets_nothing(stack: Stack) -> None:
    einstein, richard = stack["einstein"], stack["richard"]
    name = new_name()
    secret = {**EMPTY_NB, "cells": [{**EMPTY_NB["cells"][0], "source": "secret"}]}
    put_notebook(einstein, name, secret)
    info = einstein.session(name).json()
    # richard has no share: his contents and session calls find nothing under his paths
    assert richard.contents(f"Shares/{name}").status_code == 404
    assert richard.session(f"Shares/{name}").status_code == 404
    # ... and a leaked fileId does not open the room through his server: the hub refuses him
    # (reva does not even tell a stranger that the file exists) and no content arrives
    stranger = YClient(richard.room_url(info))
    await stranger.connect(wait_synced=False)
    assert await stranger.wait_closed() in (4403, 4404)
    assert not stranger.synced.is_set()
    assert "secret" not in json.dumps(stranger.notebook())


async def test_close_codes_and_reasons_are_relayed(stack: Stack) -> None:
    einstein = stack["einstein"]
    name = new_name()
    put_notebook(einstein, name)
    info = einstein.session(name).json()
    stale = YClient(einstein.room_url(info, session_id="stale-lineage"))
    await stale.connect(wait_synced=False)
    assert await stale.wait_closed() == 1003
    reason = json.loads(stale.close_reason)
    assert reason == {"reason": "unknown_session", "sessionId": "stale-lineage", "reloadable": True}
    # a malformed room name: the hub's 4400 arrives unchanged
    bad = YClient(f"{einstein.ws_url}/api/collaboration/room/json:notebook?token={einstein.token}")
    await bad.connect(wait_synced=False)
    assert await bad.wait_closed() == 4400
    # the browser's token is Jupyter's, not a hub credential: no token, no websocket
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(einstein.room_url(info).split("&token=")[0])
    assert refused.value.response.status_code == 403


async def test_large_frames_pass_both_legs(stack: Stack) -> None:
    einstein = stack["einstein"]
    name = new_name("big", ".txt")
    r = einstein.request("PUT", f"/api/contents/{name}",
                         json={"type": "file", "format": "text", "content": ""})  # fmt: skip
    assert r.status_code == 201
    info = einstein.session(name, fmt="text", typ="file").json()
    a = await YClient(einstein.room_url(info), kind="file").connect()
    b = await YClient(einstein.room_url(info), kind="file").connect()
    big = "x" * (12 * 1024 * 1024)  # > tornado's 10 MiB default, < the 64 MiB limit
    text = a.doc.get("source", type=Text)
    text.insert(0, big)
    other = b.doc.get("source", type=Text)
    await b.wait_for(lambda: len(other) == len(big), timeout=60)
    await a.close()
    await b.close()


# ---------------------------------------------------------------- shares / users REST


async def test_shares_and_users_rest(stack: Stack) -> None:
    einstein, marie = stack["einstein"], stack["marie"]
    me = einstein.request("GET", "/api/cs3/me").json()
    assert me["username"] == "einstein" and "token" not in json.dumps(me)
    # JupyterLab shows the CS3 user (avatar, collaborators, remote cursors)
    identity = marie.request("GET", "/api/me").json()["identity"]
    assert (identity["username"], identity["display_name"]) == ("marie", "Marie Curie")
    users = einstein.request("GET", "/api/cs3/users", params={"query": "mar"}).json()
    assert [u["username"] for u in users] == ["marie"]
    name = new_name()
    put_notebook(einstein, name)
    created = share(einstein, name, "marie", "viewer")
    mine = einstein.request("GET", "/api/cs3/shares").json()["by_me"]
    assert any(s["id"] == created["id"] and s["path"] == name and s["role"] == "viewer"
               for s in mine)  # fmt: skip
    with_me = marie.request("GET", "/api/cs3/shares").json()["with_me"]
    received = next(s for s in with_me if s["id"] == created["id"])
    assert received["owner"]["username"] == "einstein" and received["state"] == "pending"
    accepted = marie.request("POST", f"/api/cs3/shares/received/{created['id']}", json={})
    assert accepted.status_code == 200 and accepted.json()["path"] == f"Shares/{name}"
    # a viewer's copy is read-only in the file browser
    assert marie.contents(f"Shares/{name}").json()["writable"] is False
    assert einstein.request("DELETE", f"/api/cs3/shares/{created['id']}").status_code == 204
    assert marie.contents(f"Shares/{name}").status_code == 404
    bad = einstein.request("POST", "/api/cs3/shares",
                           json={"path": name, "grantee": "marie", "role": "owner"})  # fmt: skip
    assert bad.status_code == 400


# ---------------------------------------------------------------- credentials


async def test_refused_token_is_renewed_with_the_password(stack: DevStack, tmp_path: Path) -> None:
    """A stale CS3 token in the config (as after expiry): the server logs in again with the
    configured password, for its own storage calls and for the hub."""
    cfg = {**cs3_config(stack.revad.gateway, stack.hub.http_url, "einstein"), "token": "stale"}
    server = JupyterProcess(tmp_path / "renew", cfg, token="tok-renew").start()
    try:
        assert server.contents("").status_code == 200
        name = new_name()
        put_notebook(server, name)
        info = server.session(name)
        assert info.status_code == 201, info.text
        client = await YClient(server.room_url(info.json())).connect()
        await client.close()
    finally:
        server.stop()


# ---------------------------------------------------------------- the Sharing interface


def _shares_of(server: JupyterProcess, path: str) -> list[dict[str, Any]]:
    r = server.request("GET", "/api/cs3/shares", params={"path": path})
    assert r.status_code == 200, r.text
    return list(r.json()["by_me"])


def _received(server: JupyterProcess, share_id: str) -> dict[str, Any]:
    r = server.request("GET", "/api/cs3/shares")
    assert r.status_code == 200, r.text
    return dict(next(s for s in r.json()["with_me"] if s["id"] == share_id))


async def test_share_role_change_accept_decline_and_plain_errors(stack: Stack) -> None:
    einstein, marie, richard = stack["einstein"], stack["marie"], stack["richard"]
    name = new_name("sharing")
    put_notebook(einstein, name)
    created = share(einstein, name, "marie", "viewer")
    # sharing twice: a sentence for people, not a gRPC status
    again = einstein.request(
        "POST", "/api/cs3/shares", json={"path": name, "grantee": "marie", "role": "editor"}
    )
    assert again.status_code == 409
    assert again.json()["message"] == f"Marie Curie already has access to {name}."
    unknown = einstein.request(
        "POST", "/api/cs3/shares", json={"path": name, "grantee": "nobody-here", "role": "viewer"}
    )
    assert unknown.status_code == 404 and "no user" in unknown.json()["message"]
    assert [(s["grantee"]["username"], s["role"]) for s in _shares_of(einstein, name)] == [
        ("marie", "viewer")
    ]
    # not accepted silently: it waits under Pending, and the Shares folder does not show it
    pending = _received(marie, created["id"])
    assert pending["state"] == "pending" and pending["name"] == name and pending["path"] is None
    assert name not in {c["name"] for c in marie.contents("Shares").json()["content"]}
    # UpdateShare: viewer -> editor
    updated = einstein.request("PATCH", f"/api/cs3/shares/{created['id']}", json={"role": "editor"})
    assert updated.status_code == 200 and updated.json()["role"] == "editor", updated.text
    assert [s["role"] for s in _shares_of(einstein, name)] == ["editor"]
    accepted = marie.request(
        "PATCH", f"/api/cs3/shares/received/{created['id']}", json={"state": "accepted"}
    )
    assert accepted.status_code == 200 and accepted.json()["path"] == f"Shares/{name}"
    assert marie.contents(f"Shares/{name}").json()["writable"] is True
    # decline
    offered = share(einstein, name, "richard", "viewer")
    declined = richard.request(
        "PATCH", f"/api/cs3/shares/received/{offered['id']}", json={"state": "rejected"}
    )
    assert declined.status_code == 200 and declined.json()["state"] == "rejected", declined.text
    assert _received(richard, offered["id"])["state"] == "rejected"
    assert name not in {c["name"] for c in richard.contents("Shares").json()["content"]}
    bad = richard.request("PATCH", f"/api/cs3/shares/received/{offered['id']}", json={"state": "x"})
    assert bad.status_code == 400


async def test_viewer_cannot_reshare(stack: Stack) -> None:
    einstein, richard = stack["einstein"], stack["richard"]
    name = new_name("view-only")
    put_notebook(einstein, name)
    share(einstein, name, "richard", "viewer")
    path = open_from_shares(richard, name)
    r = richard.request(
        "POST", "/api/cs3/shares", json={"path": path, "grantee": "marie", "role": "viewer"}
    )
    assert r.status_code == 403
    assert r.json()["message"] == f"You cannot share {name}: you only view it."


async def test_find_users_by_part_of_a_name(stack: Stack) -> None:
    found = stack["einstein"].request("GET", "/api/cs3/users", params={"query": "Cur"})
    assert found.status_code == 200
    assert "marie" in {u["username"] for u in found.json()}
    me = stack["marie"].request("GET", "/api/cs3/me").json()
    assert me["username"] == "marie" and me["sharing"] is True and me["idp"]


async def test_file_info_shows_owner_role_shares_and_the_hubs_lock(stack: Stack) -> None:
    einstein, marie = stack["einstein"], stack["marie"]
    name = new_name("info")
    put_notebook(einstein, name)
    share(einstein, name, "marie", "viewer")
    info = einstein.request("GET", "/api/cs3/info", params={"path": name})
    assert info.status_code == 200, info.text
    body = info.json()
    assert body["owner"]["username"] == "einstein" and body["role"] == "owner"
    assert body["size"] > 0 and body["lock"] is None and body["resource_id"]["opaque_id"]
    assert [(s["grantee"]["username"], s["role"]) for s in body["shares"]] == [("marie", "viewer")]
    marie_path = open_from_shares(marie, name)
    seen = marie.request("GET", "/api/cs3/info", params={"path": marie_path}).json()
    assert seen["role"] == "viewer" and seen["owner"]["username"] == "einstein"
    assert seen["permissions"]["write"] is False
    # open the room: the hub locks the file while it is open
    client = await YClient(einstein.room_url(einstein.session(name).json())).connect()
    try:
        deadline = asyncio.get_running_loop().time() + 20
        lock = None
        while lock is None:
            assert asyncio.get_running_loop().time() < deadline, "no lock while the room is open"
            lock = einstein.request("GET", "/api/cs3/info", params={"path": name}).json()["lock"]
            if lock is None:
                await asyncio.sleep(0.2)
        assert lock["app_name"] == "cs3collab" and lock["expiration"] > 0
    finally:
        await client.close()
    missing = einstein.request("GET", "/api/cs3/info", params={"path": "nope.ipynb"})
    assert missing.status_code == 404


async def test_public_links_create_list_revoke(stack: Stack) -> None:
    einstein = stack["einstein"]
    name = new_name("public")
    put_notebook(einstein, name)
    expires = int(datetime.now().timestamp()) + 86400
    created = einstein.request(
        "POST",
        "/api/cs3/links",
        json={"path": name, "password": "s3cret-pw", "expiration": expires},
    )
    assert created.status_code == 201, created.text
    link = created.json()
    assert link["token"] and link["password_protected"] is True and link["path"] == name
    assert abs(link["expiration"] - expires) < 1 and link["url"] is None  # no public_link_url
    plain = einstein.request("POST", "/api/cs3/links", json={"path": name}).json()
    assert plain["password_protected"] is False and plain["expiration"] == 0
    listed = einstein.request("GET", "/api/cs3/links", params={"path": name}).json()
    assert {x["id"] for x in listed} == {link["id"], plain["id"]}
    past = einstein.request("POST", "/api/cs3/links", json={"path": name, "expiration": 1000})
    assert past.status_code == 400 and "future" in past.json()["message"]
    for x in (link, plain):
        assert einstein.request("DELETE", f"/api/cs3/links/{x['id']}").status_code == 204
    assert einstein.request("GET", "/api/cs3/links", params={"path": name}).json() == []
