"""@cs3collab/lab in Chromium: sharing, the Shares panel, file info and the account, on real
revad + the hub + one JupyterLab server per user (einstein, marie).

1. einstein shares a notebook with marie as viewer through the Share dialog, after finding her
   by part of her name (debounced FindUsers); sharing her again says so in plain words.
2. marie sees it under Pending, accepts, opens it: read-only ("can view").
3. einstein makes her an editor in the dialog; her panel shows it; they co-edit.
4. einstein revokes in the Shares panel; marie's next open is refused.
7. File info shows the hub's lock while the notebook is open.
5. (part) A public link with a password and an expiry is created in the Links tab, copied,
   listed and revoked (anonymous download is not served by the test revad).
9. No page, request, websocket URL, local storage or clipboard holds a CS3 token (JWT) or a
   Jupyter token; the stock "Copy Shareable Link" is gone from the context menu.

Screenshots of each dialog go to test-artifacts/e2e/ (named in ``SCREENSHOTS``).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from devkit.revad.launcher import RevadHandle
from tests.e2e.test_browser_coedit import CELL, LAB_SETTINGS, NOTEBOOK, _wait_cell
from tests.jupyter_cs3.devstack import DevStack, running_stack
from tests.jupyter_cs3.jupyterproc import JupyterProcess

pytest_plugins = ["tests.revad.fixture"]
pytestmark = [pytest.mark.e2e, pytest.mark.revad]

JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")
SCREENSHOTS = (
    "share-dialog.png",
    "share-dialog-already-has-access.png",
    "shares-panel-pending.png",
    "shares-panel-shared-with-me.png",
    "file-info-viewer.png",
    "share-dialog-role-editor.png",
    "shares-panel-shared-by-me.png",
    "shares-panel-revoke-while-locked.png",
    "file-info-lock.png",
    "share-dialog-links.png",
    "account.png",
)


@pytest.fixture(scope="module")
def stack(revad: RevadHandle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    work = tmp_path_factory.mktemp("e2e-sharing")
    settings = work / "lab-settings"
    for name, value in LAB_SETTINGS.items():
        (settings / name).parent.mkdir(parents=True, exist_ok=True)
        (settings / name).write_text(json.dumps(value))
    lab = {"LabApp": {"user_settings_dir": str(settings)}}
    # Rooms unload 1 s after their last client (default 60 s): the test revokes a share after
    # closing the notebook, and Reva refuses to change the shares of a locked file.
    hub_env = {"CS3COLLAB_UNLOAD_GRACE": "1"}
    with running_stack(
        work, revad=revad, users=("einstein", "marie"), extra_config=lab, hub_env=hub_env
    ) as s:
        yield s


@dataclass
class Recorder:
    """Everything a browser context sent or opened, to look for tokens afterwards."""

    requests: list[tuple[str, dict[str, str], str]] = field(default_factory=list)
    websockets: list[str] = field(default_factory=list)

    def attach(self, context: Any) -> None:
        context.on(
            "request",
            lambda r: self.requests.append((r.url, dict(r.headers), r.post_data or "")),
        )
        context.on("page", lambda p: p.on("websocket", lambda ws: self.websockets.append(ws.url)))


def _open_lab(page: Any, server: JupyterProcess, path: str | None) -> None:
    """Log in through Jupyter's login form (the token goes once, in that POST, and becomes a
    cookie), then open a workspace of its own without any token in the URL."""
    page.goto(f"{server.url}/login")
    page.locator("#password_input").fill(server.token)
    page.locator("#login_submit").click()
    page.wait_for_url(lambda url: "/login" not in url, timeout=60_000)
    workspace = f"{server.url}/lab/workspaces/w{uuid.uuid4().hex[:8]}"
    page.goto(f"{workspace}/tree/{path}" if path else workspace)


def _assert_no_tokens(page: Any, server: JupyterProcess, rec: Recorder) -> None:
    secret = server.token
    for url, headers, body in rec.requests:
        if url.split("?", 1)[0] == server.url + "/login":
            continue  # the login form the test filled in (Jupyter turns it into a cookie)
        blob = " ".join([url, body, *headers.values()])
        assert secret not in blob, f"the Jupyter token went out in {url}"
        assert not JWT.search(blob), f"a CS3 token (JWT) went out in {url}"
    for url in rec.websockets:
        assert secret not in url and not JWT.search(url), url
    html = str(page.content())
    storage = str(page.evaluate("() => JSON.stringify(Object.assign({}, window.localStorage))"))
    clipboard = str(page.evaluate("() => navigator.clipboard.readText().catch(e => '')"))
    for where, text in (("page", html), ("localStorage", storage), ("clipboard", clipboard)):
        assert secret not in text, f"the Jupyter token is in the {where}"
        assert not JWT.search(text), f"a CS3 token is in the {where}"


def _deadline(seconds: float) -> float:
    return time.monotonic() + seconds


def _new_page(browser: Any, rec: Recorder) -> tuple[Any, Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    rec.attach(context)
    return context, context.new_page()


def _file_item(page: Any, name: str) -> Any:
    return page.locator(".jp-DirListing-item", has_text=name).first


def _context_menu(page: Any, name: str, label: str) -> None:
    item = _file_item(page, name)
    item.wait_for(timeout=60_000)
    item.click(button="right")
    page.locator(".lm-Menu-item", has_text=label).first.click()


def _palette(page: Any, label: str) -> None:
    """Run a command from the command palette (by its label)."""
    page.locator('.jp-SideBar .lm-TabBar-tab[data-id="cs3collab-shares"]').wait_for(timeout=60_000)
    palette = page.locator(".lm-CommandPalette-input")
    deadline = _deadline(30)
    while not palette.is_visible():  # the shortcut is ignored until the shell has focus
        assert time.monotonic() < deadline, "the command palette did not open"
        page.locator("#jp-main-dock-panel").click(position={"x": 5, "y": 5})
        page.keyboard.press("Control+Shift+c")
        page.wait_for_timeout(200)
    palette.fill(label)
    page.locator(".lm-CommandPalette-item.lm-mod-active", has_text=label).wait_for(timeout=10_000)
    palette.press("Enter")


def _open_shares_panel(page: Any) -> Any:
    """Show the Shares panel ("Show Shares" activates it, whatever the restored layout was)."""
    _palette(page, "Show Shares")
    panel = page.locator("#cs3collab-shares")
    panel.wait_for(timeout=30_000)
    return panel


def _close_dialog(page: Any) -> None:
    page.locator(".jp-Dialog .jp-Dialog-button.jp-mod-accept").last.click()
    page.locator(".jp-Dialog").wait_for(state="detached", timeout=10_000)


def _put(server: JupyterProcess, name: str) -> None:
    r = server.request(
        "PUT", f"/api/contents/{name}", json={"type": "notebook", "content": NOTEBOOK}
    )
    assert r.status_code in (200, 201), r.text


def test_share_accept_change_role_coedit_revoke(
    stack: DevStack, browser: Any, artifacts: Path
) -> None:
    einstein, marie = stack["einstein"], stack["marie"]
    name = f"to-share-{uuid.uuid4().hex[:6]}.ipynb"
    _put(einstein, name)
    rec_e, rec_m = Recorder(), Recorder()
    ctx_e, page_e = _new_page(browser, rec_e)
    ctx_m, page_m = _new_page(browser, rec_m)
    try:
        # 1 + 6: einstein finds marie by part of her name and shares as viewer
        _open_lab(page_e, einstein, None)
        _file_item(page_e, name).wait_for(timeout=60_000)
        _file_item(page_e, name).click(button="right")
        menu = page_e.locator(".lm-Menu")
        assert menu.locator(".lm-Menu-item", has_text="Share…").count() == 1
        assert menu.locator(".lm-Menu-item", has_text="Copy Shareable Link").count() == 0
        menu.locator(".lm-Menu-item", has_text="Share…").first.click()
        dialog = page_e.locator(".jp-Dialog .cs3-share")
        dialog.wait_for(timeout=10_000)
        dialog.locator(".cs3-user-search").fill("Cur")
        found = dialog.locator(".cs3-found-user", has_text="Marie Curie")
        found.wait_for(timeout=15_000)
        assert dialog.locator(".cs3-share-search select").input_value() == "viewer"
        found.locator(".cs3-add").click()
        grantee = dialog.locator('.cs3-grantee[data-username="marie"]')
        grantee.wait_for(timeout=15_000)
        assert grantee.locator("select").input_value() == "viewer"
        page_e.screenshot(path=str(artifacts / "share-dialog.png"))
        # sharing her again: the dialog says so in plain words
        dialog.locator(".cs3-user-search").fill("marie")
        dialog.locator(".cs3-found-user", has_text="Marie Curie").locator(".cs3-add").click()
        error = dialog.locator(".cs3-error")
        error.wait_for(timeout=15_000)
        assert error.inner_text() == f"Marie Curie already has access to {name}."
        page_e.screenshot(path=str(artifacts / "share-dialog-already-has-access.png"))
        _close_dialog(page_e)

        # 2: marie sees it under Pending, accepts, opens it read-only
        _open_lab(page_m, marie, None)
        panel = _open_shares_panel(page_m)
        pending = panel.locator(f'.cs3-pending .cs3-share-item[data-name="{name}"]')
        pending.wait_for(timeout=30_000)
        assert "Albert Einstein" in pending.inner_text() and "can view" in pending.inner_text()
        page_m.screenshot(path=str(artifacts / "shares-panel-pending.png"))
        pending.locator(".cs3-accept").click()
        mine = panel.locator(f'.cs3-with-me .cs3-share-item[data-name="{name}"]')
        mine.wait_for(timeout=30_000)
        page_m.screenshot(path=str(artifacts / "shares-panel-shared-with-me.png"))
        mine.locator(".cs3-open").click()
        _wait_cell(page_m)
        assert marie.contents(f"Shares/{name}").json()["writable"] is False
        _palette(page_m, "Current Document Info")
        info = page_m.locator(".jp-Dialog .cs3-info")
        info.wait_for(timeout=15_000)
        assert info.locator('tr[data-field="role"] td').inner_text() == "can view"
        assert "Albert Einstein" in info.locator('tr[data-field="owner"] td').inner_text()
        page_m.screenshot(path=str(artifacts / "file-info-viewer.png"))
        _close_dialog(page_m)

        # 3: einstein makes her an editor from the dialog; her panel follows; they co-edit
        _context_menu(page_e, name, "Share…")
        dialog = page_e.locator(".jp-Dialog .cs3-share")
        grantee = dialog.locator('.cs3-grantee[data-username="marie"]')
        grantee.wait_for(timeout=15_000)
        grantee.locator("select").select_option("editor")
        dialog.locator(".cs3-notice", has_text="can edit").wait_for(timeout=15_000)
        page_e.screenshot(path=str(artifacts / "share-dialog-role-editor.png"))
        _close_dialog(page_e)
        panel.locator(
            f'.cs3-with-me .cs3-share-item[data-name="{name}"]', has_text="can edit"
        ).wait_for(timeout=30_000)  # the panel refreshes itself
        page_m.reload()  # the restored tab opens a fresh connection, now with editor rights
        _wait_cell(page_m)
        _file_item(page_e, name).dblclick()
        _wait_cell(page_e)
        page_m.locator(CELL).first.click()
        page_m.keyboard.type("from marie")
        page_e.locator(CELL, has_text="from marie").first.wait_for(timeout=30_000)
        page_e.locator(CELL).first.click()
        page_e.keyboard.press("Control+End")
        page_e.keyboard.type(" and einstein")
        page_m.locator(CELL, has_text="and einstein").first.wait_for(timeout=30_000)

        # 4: einstein revokes in his Shares panel; marie's next open is refused
        panel_e = _open_shares_panel(page_e)
        by_me = panel_e.locator(
            f'.cs3-by-me .cs3-share-item[data-name="{name}"][data-username="marie"]'
        )
        by_me.wait_for(timeout=30_000)
        assert by_me.locator("select").input_value() == "editor"
        page_e.screenshot(path=str(artifacts / "shares-panel-shared-by-me.png"))
        # while the notebook is open the hub holds its lock: Reva keeps the shares; said plainly
        by_me.locator(".cs3-revoke").click()
        refused = panel_e.locator(".cs3-error", has_text="open for editing right now")
        refused.wait_for(timeout=15_000)
        page_e.screenshot(path=str(artifacts / "shares-panel-revoke-while-locked.png"))
        for page in (page_e, page_m):
            _palette(page, "Close All Tabs")
        deadline = _deadline(60)
        while einstein.request("GET", "/api/cs3/info", params={"path": name}).json()["lock"]:
            assert time.monotonic() < deadline, "the hub kept the lock after the tabs closed"
            page_e.wait_for_timeout(250)
        by_me.locator(".cs3-revoke").click()
        by_me.wait_for(state="detached", timeout=30_000)
        deadline = _deadline(30)
        while marie.contents(f"Shares/{name}").status_code != 404:
            assert time.monotonic() < deadline, "marie still reaches the revoked share"
            page_m.wait_for_timeout(250)
        assert marie.session(f"Shares/{name}").status_code == 404
        # marie's Shares panel (still shown) drops it by itself
        page_m.locator(f'#cs3collab-shares .cs3-share-item[data-name="{name}"]').wait_for(
            state="detached", timeout=30_000
        )
        # 9: no tokens anywhere
        _assert_no_tokens(page_e, einstein, rec_e)
        _assert_no_tokens(page_m, marie, rec_m)
    except BaseException:
        page_e.screenshot(path=str(artifacts / "sharing-einstein-failure.png"))
        page_m.screenshot(path=str(artifacts / "sharing-marie-failure.png"))
        raise
    finally:
        ctx_e.close()
        ctx_m.close()


def test_file_info_shows_the_hubs_lock_and_the_account(
    stack: DevStack, browser: Any, artifacts: Path
) -> None:
    einstein = stack["einstein"]
    name = f"locked-{uuid.uuid4().hex[:6]}.ipynb"
    _put(einstein, name)
    rec = Recorder()
    ctx, page = _new_page(browser, rec)
    try:
        _open_lab(page, einstein, name)
        _wait_cell(page)
        deadline = _deadline(30)
        while (
            einstein.request("GET", "/api/cs3/info", params={"path": name}).json()["lock"] is None
        ):
            assert time.monotonic() < deadline, "the hub took no lock while the notebook is open"
            page.wait_for_timeout(250)
        _context_menu(page, name, "File Info")
        info = page.locator(".jp-Dialog .cs3-info")
        info.wait_for(timeout=15_000)
        lock = info.locator('tr[data-field="lock"] td').inner_text()
        assert "cs3collab" in lock, lock
        assert info.locator('tr[data-field="role"] td').inner_text() == "owner"
        assert "Albert Einstein" in info.locator('tr[data-field="owner"] td').inner_text()
        page.screenshot(path=str(artifacts / "file-info-lock.png"))
        _close_dialog(page)
        # the notebook toolbar's share button opens the Share dialog for this notebook
        page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .cs3-toolbar-share").first.click()
        share_title = page.locator(".jp-Dialog .jp-Dialog-header", has_text=f"Share {name}")
        share_title.wait_for(timeout=15_000)
        page.locator(".jp-Dialog .cs3-no-grantees").wait_for(timeout=15_000)
        # Links tab: a public link with a password and an expiry; copy it, revoke it
        page.locator(".jp-Dialog .cs3-tab-links").click()
        links = page.locator(".jp-Dialog .cs3-links")
        links.locator(".cs3-no-links").wait_for(timeout=15_000)
        links.locator(".cs3-link-password").fill("s3cret-pw")
        links.locator(".cs3-link-expiry").fill("2099-12-31")
        links.locator(".cs3-link-create").click()
        link = links.locator(".cs3-link").first
        link.wait_for(timeout=15_000)
        assert "with password" in link.inner_text() and "expires" in link.inner_text()
        token = str(link.get_attribute("data-token"))
        link.locator(".cs3-link-copy").click()
        links.locator(".cs3-notice", has_text="copied").wait_for(timeout=10_000)
        assert page.evaluate("() => navigator.clipboard.readText()") == token
        page.screenshot(path=str(artifacts / "share-dialog-links.png"))
        made = einstein.request("GET", "/api/cs3/links", params={"path": name}).json()
        assert [(x["token"], x["password_protected"]) for x in made] == [(token, True)]
        link.locator(".cs3-link-revoke").click()
        links.locator(".cs3-no-links").wait_for(timeout=15_000)
        assert einstein.request("GET", "/api/cs3/links", params={"path": name}).json() == []
        _close_dialog(page)
        # the user menu (top right) carries the CS3 account
        page.locator(".jp-MenuBar-anonymousIcon, .jp-MenuBar-imageIcon").first.click()
        page.locator(".lm-Menu-item", has_text="CS3 Account").first.click()
        account = page.locator(".jp-Dialog .cs3-account")
        account.wait_for(timeout=15_000)
        text = account.inner_text()
        assert "Albert Einstein" in text and "einstein" in text and "einstein@example.org" in text
        page.screenshot(path=str(artifacts / "account.png"))
        _close_dialog(page)
        _assert_no_tokens(page, einstein, rec)
    except BaseException:
        page.screenshot(path=str(artifacts / "file-info-failure.png"))
        raise
    finally:
        ctx.close()
