"""Sharing across sites through the jupyter_cs3 REST API: two real Reva sites (devkit/revad/ocm),
einstein's Jupyter server on site A, lise's and niels's on site B (each on its own site's gateway;
no hub needed: nothing here opens a room)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devkit.revad.ocm.sites import Site
from tests.jupyter_cs3.jupyterproc import JupyterProcess, start_all

pytestmark = pytest.mark.revad

NB = {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


@pytest.fixture(scope="module")
def servers(
    ocm_sites: tuple[Site, Site], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, JupyterProcess]]:
    a, b = ocm_sites
    workdir = tmp_path_factory.mktemp("ocm-jupyter")
    procs: dict[str, JupyterProcess] = {}
    for user, site in (("einstein", a), ("lise", b), ("niels", b)):
        cs3 = {
            "storage": "cs3",
            "gateway": site.gateway,
            "username": user,
            "password": site.users[user][0],
            "hub_url": "http://127.0.0.1:9",  # unused here
            "ocm_site": site.domain,
        }
        procs[user] = JupyterProcess(Path(workdir / user), cs3, token=f"tok-{user}")
    try:
        start_all(list(procs.values()))
        yield procs
    finally:
        for p in procs.values():
            p.stop()


def befriend(inviter: JupyterProcess, invitee: JupyterProcess) -> dict[str, Any]:
    """inviter invites, invitee accepts (once); the invitee as the inviter's contact."""
    me = invitee.request("GET", "/api/cs3/me").json()
    contacts = inviter.request("GET", "/api/cs3/ocm/contacts").json()
    known = [c for c in contacts if c["display_name"] == me["display_name"]]
    if known:
        return known[0]
    invite = inviter.request("POST", "/api/cs3/ocm/invites", json={"description": "hi"})
    assert invite.status_code == 201, invite.text
    body = invite.json()
    accepted = invitee.request(
        "POST", "/api/cs3/ocm/invites/accept", json={"token": body["token"], "site": body["site"]}
    )
    assert accepted.status_code == 201, accepted.text
    contacts = inviter.request("GET", "/api/cs3/ocm/contacts").json()
    return next(c for c in contacts if c["display_name"] == me["display_name"])


def put_notebook(server: JupyterProcess, name: str) -> None:
    r = server.request(
        "PUT", f"/api/contents/{name}", json={"type": "notebook", "format": "json", "content": NB}
    )
    assert r.status_code in (200, 201), r.text


def test_invite_accept_and_contacts(servers: dict[str, JupyterProcess]) -> None:
    einstein, lise = servers["einstein"], servers["lise"]
    invite = einstein.request("POST", "/api/cs3/ocm/invites", json={}).json()
    assert invite["site"] == "cs3collab-a.test" and invite["token"]
    accepted = lise.request(
        "POST",
        "/api/cs3/ocm/invites/accept",
        json={"token": invite["token"], "site": invite["site"]},
    )
    if accepted.status_code == 409:  # lise befriended einstein in an earlier test of the session
        assert "already in contact" in accepted.json()["message"]
    else:
        assert accepted.status_code == 201, accepted.text
        assert accepted.json()["site"] == "cs3collab-a.test"
    at_b = lise.request("GET", "/api/cs3/ocm/contacts").json()
    assert [c["display_name"] for c in at_b] == ["Albert Einstein"]
    at_a = einstein.request("GET", "/api/cs3/ocm/contacts", params={"query": "lise"}).json()
    assert [(c["display_name"], c["site"]) for c in at_a] == [("Lise Meitner", "cs3collab-b.test")]
    # plain refusals
    bad_site = lise.request("POST", "/api/cs3/ocm/invites/accept",
                            json={"token": "x", "site": "nowhere.example"})  # fmt: skip
    assert bad_site.status_code == 404 and "no site" in bad_site.json()["message"]
    bad_token = lise.request("POST", "/api/cs3/ocm/invites/accept",
                             json={"token": uuid.uuid4().hex, "site": invite["site"]})  # fmt: skip
    assert (
        bad_token.status_code == 404 and "does not know this invite" in bad_token.json()["message"]
    )
    assert (
        lise.request("POST", "/api/cs3/ocm/invites/accept", json={"site": "x"}).status_code == 400
    )


def test_editor_share_listed_accepted_opened_and_revoked(
    servers: dict[str, JupyterProcess],
) -> None:
    einstein, lise = servers["einstein"], servers["lise"]
    contact = befriend(einstein, lise)
    name = f"fed-{uuid.uuid4().hex[:8]}.ipynb"
    put_notebook(einstein, name)
    created = einstein.request(
        "POST", "/api/cs3/ocm/shares",
        json={"path": name, "contact": contact["address"], "role": "editor"},
    )  # fmt: skip
    assert created.status_code == 201, created.text
    share = created.json()
    assert (share["kind"], share["site"], share["role"], share["path"]) == (
        "ocm", "cs3collab-b.test", "editor", name
    )  # fmt: skip
    assert share["grantee"]["display_name"] == "Lise Meitner"
    by_me = einstein.request("GET", "/api/cs3/shares").json()["by_me"]
    assert any(s["id"] == share["id"] and s.get("kind") == "ocm" for s in by_me)

    # B sees it with the local shares, pending, marked with einstein's site
    with_me = lise.request("GET", "/api/cs3/shares").json()["with_me"]
    got = next(s for s in with_me if s.get("kind") == "ocm" and s["name"] == name)
    assert (got["state"], got["site"], got["role"], got["path"]) == (
        "pending", "cs3collab-a.test", "editor", None
    )  # fmt: skip
    accepted = lise.request("POST", f"/api/cs3/ocm/shares/received/{got['id']}", json={})
    assert accepted.status_code == 200, accepted.text
    path = accepted.json()["path"]
    assert path == f"Other sites/{got['id']}/{name}" and accepted.json()["state"] == "accepted"

    # B opens it through its own Jupyter server (contents API -> site B -> OCM -> site A)
    model = lise.contents(path, content=1)
    assert model.status_code == 200, model.text
    assert model.json()["type"] == "notebook" and model.json()["writable"] is True
    edited = {**NB, "metadata": {"by": "lise"}}
    saved = lise.request(
        "PUT",
        f"/api/contents/{path}",
        json={"type": "notebook", "format": "json", "content": edited},
    )
    assert saved.status_code == 200, saved.text
    at_a = einstein.contents(name, content=1).json()["content"]
    assert at_a["metadata"]["by"] == "lise"

    # revoke at A: B's copy of the list may lag, the content does not
    assert einstein.request("DELETE", f"/api/cs3/ocm/shares/{share['id']}").status_code == 204
    assert lise.contents(path, content=1).status_code in (403, 404)


def test_viewer_share_is_read_only_at_b(servers: dict[str, JupyterProcess]) -> None:
    einstein, niels = servers["einstein"], servers["niels"]
    contact = befriend(einstein, niels)
    name = f"fed-{uuid.uuid4().hex[:8]}.ipynb"
    put_notebook(einstein, name)
    share = einstein.request(
        "POST", "/api/cs3/ocm/shares", json={"path": name, "contact": contact["id"]}
    ).json()
    assert share["role"] == "viewer"
    got = next(
        s for s in niels.request("GET", "/api/cs3/shares").json()["with_me"]
        if s.get("kind") == "ocm" and s["name"] == name
    )  # fmt: skip
    path = niels.request("POST", f"/api/cs3/ocm/shares/received/{got['id']}").json()["path"]
    model = niels.contents(path, content=1).json()
    assert model["writable"] is False
    refused = niels.request(
        "PUT", f"/api/contents/{path}",
        json={"type": "notebook", "format": "json", "content": {**NB, "metadata": {"x": 1}}},
    )  # fmt: skip
    assert refused.status_code >= 400
    assert json.dumps(einstein.contents(name, content=1).json()["content"]["metadata"]) == "{}"
    # sharing again with the same contact is refused in words
    again = einstein.request(
        "POST", "/api/cs3/ocm/shares", json={"path": name, "contact": contact["address"]}
    )
    assert again.status_code == 409 and "already has access" in again.json()["message"]
    unknown = einstein.request(
        "POST", "/api/cs3/ocm/shares", json={"path": name, "contact": "nobody@nowhere"}
    )
    assert unknown.status_code == 404 and "invite them first" in unknown.json()["message"]
