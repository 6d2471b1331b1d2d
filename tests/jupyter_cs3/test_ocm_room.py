"""One live room across sites (issue 17, ARCHITECTURE §9): einstein (site A) and lise (site B)
co-edit einstein's notebook in ONE room at A's hub, each through their own site's Jupyter server.

Real parts only: two revads federated through OCM (devkit/revad/ocm), A's hub (uvicorn, on A's
gateway), einstein's Jupyter server on A, lise's and niels's on B (CS3Config.ocm_hubs points them
at A's hub; their own hub_url points nowhere, so nothing can silently open a room at B).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devkit.hubproc import HubProcess
from devkit.revad.ocm.sites import Site
from devkit.yclient import YClient
from storage_bridge.cs3 import CS3Storage
from tests.jupyter_cs3.jupyterproc import JupyterProcess, start_all
from tests.jupyter_cs3.stack import EMPTY_NB, new_name, put_notebook

pytestmark = pytest.mark.revad


@pytest.fixture(scope="module")
def mesh(
    ocm_sites: tuple[Site, Site], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    a, b = ocm_sites
    workdir = tmp_path_factory.mktemp("ocm-room")
    (workdir / "hubroot").mkdir()
    hub = HubProcess(
        root=workdir / "hubroot",
        data_dir=workdir / "hubdata",
        args=["--storage", "cs3", "--gateway", a.gateway],
        env={"CS3COLLAB_AUTH_CACHE_SECONDS": "0"},  # a revoked share is refused at once
    )
    hub.start()
    procs: dict[str, JupyterProcess] = {}
    for user, site in (("einstein", a), ("lise", b), ("niels", b)):
        cs3 = {
            "storage": "cs3",
            "gateway": site.gateway,
            "username": user,
            "password": site.users[user][0],
            "hub_url": hub.http_url if site is a else "http://127.0.0.1:9",
            "ocm_site": site.domain,
            "ocm_hubs": {a.domain: hub.http_url},
        }
        procs[user] = JupyterProcess(Path(workdir / user), cs3, token=f"tok-{user}")
    try:
        start_all(list(procs.values()))
        yield {"a": a, "b": b, "hub": hub, **procs}
    finally:
        for p in procs.values():
            p.stop()
        hub.stop()


def befriend(inviter: JupyterProcess, invitee: JupyterProcess) -> dict[str, Any]:
    me = invitee.request("GET", "/api/cs3/me").json()
    contacts = inviter.request("GET", "/api/cs3/ocm/contacts").json()
    known = [c for c in contacts if c["display_name"] == me["display_name"]]
    if known:
        return known[0]
    invite = inviter.request("POST", "/api/cs3/ocm/invites", json={}).json()
    r = invitee.request("POST", "/api/cs3/ocm/invites/accept",
                        json={"token": invite["token"], "site": invite["site"]})  # fmt: skip
    assert r.status_code in (201, 409), r.text
    contacts = inviter.request("GET", "/api/cs3/ocm/contacts").json()
    return next(c for c in contacts if c["display_name"] == me["display_name"])


def share_across(
    owner: JupyterProcess, grantee: JupyterProcess, name: str, role: str
) -> dict[str, Any]:
    """owner shares ``name`` with grantee at the other site, who accepts; grantee's entry."""
    contact = befriend(owner, grantee)
    body = {"path": name, "contact": contact["address"], "role": role}
    sent = owner.request("POST", "/api/cs3/ocm/shares", json=body)
    assert sent.status_code == 201, sent.text
    got = next(s for s in grantee.request("GET", "/api/cs3/shares").json()["with_me"]
               if s.get("kind") == "ocm" and s["name"] == name)  # fmt: skip
    accepted = grantee.request("POST", f"/api/cs3/ocm/shares/received/{got['id']}")
    assert accepted.status_code == 200, accepted.text
    return {**accepted.json(), "sent_id": sent.json()["id"]}


def sources_at_a(nb: bytes) -> str:
    return "".join(json.loads(nb)["cells"][0]["source"])


async def test_one_room_across_sites(mesh: dict[str, Any]) -> None:
    einstein, lise = mesh["einstein"], mesh["lise"]
    name = new_name("fed")
    put_notebook(einstein, name, {**EMPTY_NB, "cells": [
        {"cell_type": "markdown", "id": "c0", "metadata": {}, "source": ""}]})  # fmt: skip
    received = share_across(einstein, lise, name, "editor")
    e_info = einstein.session(name).json()
    l_resp = lise.session(received["path"])
    assert l_resp.status_code in (200, 201), l_resp.text
    l_info = l_resp.json()
    # two sites, two Jupyter servers, one room at A's hub
    assert (l_info["fileId"], l_info["sessionId"]) == (e_info["fileId"], e_info["sessionId"])

    e = await YClient(einstein.room_url(e_info)).connect()
    li = await YClient(lise.room_url(l_info)).connect()
    await e.set_awareness({"user": {"name": "einstein"}, "autosave": True})
    await li.set_awareness({"user": {"name": "lise"}, "autosave": True})
    e.append_source(0, "E = m c^2\n")
    li.append_source(0, "fission\n")
    for c in (e, li):
        await c.wait_for(lambda c=c: all(w in c.sources()[0] for w in ("E = m", "fission")), 2)
    # cross-site latency: lise types at B, einstein sees it at A (through B's Jupyter, A's hub)
    lat = []
    for i in range(30):
        mark = f"<{i}>"
        t0 = time.perf_counter()
        li.append_source(0, mark)
        await e.wait_for(lambda m=mark: m in e.sources()[0], timeout=2)
        lat.append((time.perf_counter() - t0) * 1000)
    lat.sort()
    p95 = lat[int(0.95 * (len(lat) - 1))]
    print(
        f"\ncross-site edit latency B->A: median {statistics.median(lat):.1f} ms, p95 {p95:.1f} ms"
    )
    assert p95 < 2000

    # A's hub wrote the snapshot to A's storage: both edits are in einstein's file
    a: Site = mesh["a"]
    storage = CS3Storage(a.gateway)
    try:
        token = await storage.authenticate("einstein", a.users["einstein"][0])
        path = f"{a.home('einstein')}/{name}"
        deadline = time.monotonic() + 15
        while True:
            data, _ = await storage.read(token, path)
            if all(w in sources_at_a(data) for w in ("E = m", "fission", "<29>")):
                break
            assert time.monotonic() < deadline, sources_at_a(data)
            await asyncio.sleep(0.3)
    finally:
        await storage.aclose()

    # revoke mid-session: A's hub closes lise's socket with a reason (B's relay passes it on);
    # einstein stays, and lise's next session is refused
    revoked = einstein.request("DELETE", f"/api/cs3/ocm/shares/{received['sent_id']}")
    assert revoked.status_code == 204
    t0 = time.perf_counter()
    assert await li.wait_closed(timeout=5) == 4403
    print(f"revoked socket closed after {time.perf_counter() - t0:.2f} s")
    assert li.close_reason == "the owner revoked this share"
    assert e.close_code is None
    e.append_source(0, "still here")
    await e.wait_for(lambda: "still here" in e.sources()[0], timeout=2)
    await e.close()
    again = lise.session(received["path"])
    assert again.status_code in (403, 404), again.text


async def test_viewer_across_sites_is_read_only_in_the_room(mesh: dict[str, Any]) -> None:
    einstein, niels = mesh["einstein"], mesh["niels"]
    name = new_name("fed")
    put_notebook(einstein, name, {**EMPTY_NB, "cells": [
        {"cell_type": "markdown", "id": "c0", "metadata": {}, "source": ""}]})  # fmt: skip
    received = share_across(einstein, niels, name, "viewer")
    e_info = einstein.session(name).json()
    n_info = niels.session(received["path"]).json()
    assert n_info["fileId"] == e_info["fileId"]
    e = await YClient(einstein.room_url(e_info)).connect()
    n = await YClient(niels.room_url(n_info)).connect()
    e.append_source(0, "live")
    await n.wait_for(lambda: n.sources()[0] == "live", timeout=2)
    n.append_source(0, " from B")
    refusal = await n.wait_raw(lambda m: m.get("type") == "refused")
    assert refusal["reason"] == "read_only"
    await n.wait_for(lambda: n.sources() == ["live"], timeout=2)
    assert e.sources() == ["live"]
    await e.close()
    await n.close()


def test_no_hub_for_the_owner_site_refuses_instead_of_forking(
    mesh: dict[str, Any], tmp_path: Path
) -> None:
    """A B server without ocm_hubs: the session is refused with words, no room at B."""
    b: Site = mesh["b"]
    lone = JupyterProcess(tmp_path / "lise-alone", {
        "storage": "cs3", "gateway": b.gateway, "username": "lise",
        "password": b.users["lise"][0], "hub_url": "http://127.0.0.1:9",
        "ocm_site": b.domain,
    }, token="tok-alone")  # fmt: skip
    name = new_name("fed")
    put_notebook(mesh["einstein"], name)
    received = share_across(mesh["einstein"], mesh["lise"], name, "editor")
    # ... and one whose hub entry for site A points at nothing (A's hub down / unreachable)
    cut_off = JupyterProcess(tmp_path / "lise-cut-off", {
        **lone.cs3, "ocm_hubs": {mesh["a"].domain: "http://127.0.0.1:9"},
    }, token="tok-cut-off")  # fmt: skip
    start_all([lone, cut_off])
    try:
        r = lone.session(received["path"])
        assert r.status_code == 409
        assert "not set up" in r.json()["message"] and mesh["a"].domain in r.json()["message"]
        # the notebook still opens (contents), just not in a room
        assert lone.contents(received["path"]).status_code == 200
        r = cut_off.session(received["path"])
        assert r.status_code == 503
        assert r.json()["message"] == f"the collaboration hub of {mesh['a'].domain} unreachable"
        # the fallback the user asks for: a copy, clearly named, in lise's own files at B
        copy = cut_off.request("POST", f"/api/cs3/ocm/shares/received/{received['id']}/copy")
        assert copy.status_code == 201, copy.text
        copy_path = copy.json()["path"]
        assert f"(copy from {mesh['a'].domain}, " in copy_path and copy_path.endswith(".ipynb")
        assert "/" not in copy_path  # in her home, not under "Other sites"
        original = mesh["einstein"].contents(name, content=1).json()["content"]["cells"]
        copied = cut_off.contents(copy_path, content=1).json()["content"]["cells"]
        # same cells; not "trusted" at B (Jupyter's trust is per server: a copy from elsewhere)
        assert [c["source"] for c in copied] == [c["source"] for c in original] != []
        # and the copy is an ordinary file of site B: its room would be at B's hub, not A's
        assert cut_off.contents(copy_path).json()["writable"] is True
    finally:
        lone.stop()
        cut_off.stop()
