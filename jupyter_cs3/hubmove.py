"""Rename/move an open document through the cs3collab hub (issue 14).

While a notebook is open, the hub holds its storage lock, and storage refuses a move without the
lock id (409 "locked"). The hub has the id: the contents manager asks it to move the file. The
room is keyed by resource id, so it stays open under the new name with every client in it.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import httpx
from tornado import web

from jupyter_cs3.backend import Backend


async def move_through_hub(backend: Backend, src: str, dst: str) -> None:
    """Move storage path ``src`` to ``dst`` with the open room's lock (raises HTTPError)."""
    token = await backend.hub_token()
    url = backend.hub_http_url("/api/collaboration/move/" + quote(src, safe="/"))
    try:
        async with httpx.AsyncClient(timeout=backend.config.hub_timeout) as http:
            auth = {"Authorization": f"Bearer {token}"}
            r = await http.post(url, json={"to": dst}, headers=auth)
    except httpx.HTTPError as exc:
        message = f"the file is open; the collaboration hub is unreachable: {exc}"
        raise web.HTTPError(503, message) from exc
    if r.status_code == 200:
        return
    try:
        message = str(json.loads(r.content or b"{}").get("message", ""))
    except (ValueError, AttributeError):
        message = ""
    status = 403 if r.status_code == 401 else r.status_code
    raise web.HTTPError(status if 400 <= status < 600 else 502, message or r.reason_phrase)
