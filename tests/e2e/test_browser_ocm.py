"""@cs3collab/lab in Chromium, across sites: einstein (site A) shares a notebook with lise
(site B) through the Share dialog's "Other sites" tab, as editor; lise's server sees it pending,
marked with einstein's site. Real parts: two OCM revads (devkit/revad/ocm), einstein's JupyterLab
on A, lise's Jupyter server on B (driven through its REST API, as her Shares panel would).

Then lise's own JupyterLab at B opens einstein's notebook from "Other sites" and they type into
the one room at A's hub (each sees the other's words and cursor).

Screenshots: test-artifacts/e2e/share-dialog-other-sites.png, ocm-room-lise-at-site-b.png.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devkit.hubproc import HubProcess
from devkit.revad.ocm.sites import Site
from tests.e2e.test_browser_coedit import (
    CELL,
    LAB_SETTINGS,
    NOTEBOOK,
    _cell_text,
    _open,
    _wait_cell,
)
from tests.e2e.test_browser_sharing import (
    Recorder,
    _assert_no_tokens,
    _context_menu,
    _new_page,
    _open_lab,
    _put,
)
from tests.jupyter_cs3.jupyterproc import JupyterProcess, start_all

pytestmark = [pytest.mark.e2e, pytest.mark.revad]


@pytest.fixture(scope="module")
def servers(
    ocm_sites: tuple[Site, Site], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, JupyterProcess]]:
    a, b = ocm_sites
    work = tmp_path_factory.mktemp("e2e-ocm")
    settings = work / "lab-settings"
    for name, value in LAB_SETTINGS.items():
        (settings / name).parent.mkdir(parents=True, exist_ok=True)
        (settings / name).write_text(json.dumps(value))
    procs = {}
    for user, site in (("einstein", a), ("lise", b)):
        cs3 = {
            "storage": "cs3",
            "gateway": site.gateway,
            "username": user,
            "password": site.users[user][0],
            "hub_url": "http://127.0.0.1:9",  # no room is opened here
            "ocm_site": site.domain,
        }
        procs[user] = JupyterProcess(
            work / user,
            cs3,
            token=uuid.uuid4().hex,
            extra_config={"LabApp": {"user_settings_dir": str(settings)}},
        )
    try:
        start_all(list(procs.values()))
        yield procs
    finally:
        for p in procs.values():
            p.stop()


def _befriend(einstein: JupyterProcess, lise: JupyterProcess) -> None:
    contacts = einstein.request("GET", "/api/cs3/ocm/contacts").json()
    if any(c["display_name"] == "Lise Meitner" for c in contacts):
        return
    invite = einstein.request("POST", "/api/cs3/ocm/invites", json={}).json()
    r = lise.request("POST", "/api/cs3/ocm/invites/accept",
                     json={"token": invite["token"], "site": invite["site"]})  # fmt: skip
    assert r.status_code in (201, 409), r.text


def test_share_with_a_colleague_at_another_site(
    servers: dict[str, JupyterProcess], browser: Any, artifacts: Path
) -> None:
    einstein, lise = servers["einstein"], servers["lise"]
    _befriend(einstein, lise)
    name = f"fed-{uuid.uuid4().hex[:6]}.ipynb"
    _put(einstein, name)
    rec = Recorder()
    ctx, page = _new_page(browser, rec)
    try:
        _open_lab(page, einstein, None)
        _context_menu(page, name, "Share…")
        page.locator(".jp-Dialog .cs3-tab-sites").click()
        tab = page.locator(".jp-Dialog .cs3-other-sites")
        contact = tab.locator('.cs3-contact[data-site="cs3collab-b.test"]', has_text="Lise Meitner")
        contact.wait_for(timeout=15_000)
        tab.locator(".cs3-ocm-role").select_option("editor")
        contact.locator(".cs3-ocm-add").click()
        tab.locator(".cs3-notice", has_text="Shared with Lise Meitner").wait_for(timeout=15_000)
        grantee = tab.locator(".cs3-ocm-grantee", has_text="Lise Meitner")
        grantee.wait_for(timeout=15_000)
        assert "cs3collab-b.test" in grantee.inner_text() and "can edit" in grantee.inner_text()
        page.screenshot(path=str(artifacts / "share-dialog-other-sites.png"))
        # sharing again is refused in words, in the dialog
        contact.locator(".cs3-ocm-add").click()
        tab.locator(".cs3-error", has_text="already has access").wait_for(timeout=15_000)
        _assert_no_tokens(page, einstein, rec)
    finally:
        ctx.close()
    # lise's site has it, pending, marked with einstein's site
    with_me = lise.request("GET", "/api/cs3/shares").json()["with_me"]
    got = [s for s in with_me if s.get("kind") == "ocm" and s["name"] == name]
    assert len(got) == 1
    assert (got[0]["state"], got[0]["site"], got[0]["role"]) == (
        "pending", "cs3collab-a.test", "editor"
    )  # fmt: skip
    assert got[0]["owner"]["display_name"] == "Albert Einstein"


@pytest.fixture(scope="module")
def room_servers(
    ocm_sites: tuple[Site, Site], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """A's hub; einstein's JupyterLab on A, lise's on B (its ocm_hubs: A's hub)."""
    a, b = ocm_sites
    work = tmp_path_factory.mktemp("e2e-ocm-room")
    settings = work / "lab-settings"
    for name, value in LAB_SETTINGS.items():
        (settings / name).parent.mkdir(parents=True, exist_ok=True)
        (settings / name).write_text(json.dumps(value))
    (work / "hubroot").mkdir()
    hub = HubProcess(root=work / "hubroot", data_dir=work / "hubdata",
                     args=["--storage", "cs3", "--gateway", a.gateway])  # fmt: skip
    hub.start()
    procs = {}
    for user, site in (("einstein", a), ("lise", b)):
        cs3 = {
            "storage": "cs3", "gateway": site.gateway, "username": user,
            "password": site.users[user][0], "ocm_site": site.domain,
            "hub_url": hub.http_url if site is a else "http://127.0.0.1:9",
            "ocm_hubs": {a.domain: hub.http_url},
        }  # fmt: skip
        lab = {"LabApp": {"user_settings_dir": str(settings)}}
        procs[user] = JupyterProcess(work / user, cs3, token=uuid.uuid4().hex, extra_config=lab)
    try:
        start_all(list(procs.values()))
        yield {"hub": hub, **procs}
    finally:
        for p in procs.values():
            p.stop()
        hub.stop()


def test_colleague_at_another_site_coedits_in_chromium(
    room_servers: dict[str, Any], browser: Any, artifacts: Path
) -> None:
    """lise's JupyterLab at B opens einstein's notebook from "Other sites" and both type into the
    one room at A's hub; each sees the other's words."""
    einstein, lise = room_servers["einstein"], room_servers["lise"]
    _befriend(einstein, lise)
    name = f"fed-{uuid.uuid4().hex[:6]}.ipynb"
    r = einstein.request("PUT", f"/api/contents/{name}",
                         json={"type": "notebook", "content": NOTEBOOK})  # fmt: skip
    assert r.status_code in (200, 201), r.text
    contacts = einstein.request("GET", "/api/cs3/ocm/contacts").json()
    lise_c = next(c for c in contacts if c["display_name"] == "Lise Meitner")
    body = {"path": name, "contact": lise_c["address"], "role": "editor"}
    sent = einstein.request("POST", "/api/cs3/ocm/shares", json=body)
    assert sent.status_code == 201, sent.text
    got = next(s for s in lise.request("GET", "/api/cs3/shares").json()["with_me"]
               if s.get("kind") == "ocm" and s["name"] == name)  # fmt: skip
    path = lise.request("POST", f"/api/cs3/ocm/shares/received/{got['id']}").json()["path"]
    ctx_e = browser.new_context(viewport={"width": 1280, "height": 800})
    ctx_l = browser.new_context(viewport={"width": 1280, "height": 800})
    page_e, page_l = ctx_e.new_page(), ctx_l.new_page()
    try:
        _open(page_e, einstein, name)
        _wait_cell(page_e)
        _open(page_l, lise, path)
        _wait_cell(page_l)
        page_e.locator(CELL).first.click()
        page_e.keyboard.type("E=mc2 ")
        page_l.locator(CELL).first.click()
        page_l.keyboard.press("End")
        page_l.keyboard.type(" fission (lise, site B)")
        for page in (page_e, page_l):
            page.wait_for_function(
                "([sel, a, b]) => { const el = document.querySelector(sel);"
                " return el && el.textContent.includes(a) && el.textContent.includes(b); }",
                arg=[CELL, "E=mc2", "fission (lise, site B)"],
                timeout=10_000,
            )
        assert _cell_text(page_e) == _cell_text(page_l)
        page_l.screenshot(path=str(artifacts / "ocm-room-lise-at-site-b.png"))
    finally:
        ctx_e.close()
        ctx_l.close()
