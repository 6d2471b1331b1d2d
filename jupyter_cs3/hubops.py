"""Contents operations on open documents done by the cs3collab hub (issue 14).

While a notebook is open, the hub holds its storage lock, and storage refuses a move or a version
restore without the lock id (409 "locked"). The hub has the id:

- a rename/move: the room is keyed by resource id, so it stays open under the new name with every
  client in it;
- a delete: the room's clients are told who deleted it and their sockets are closed;
- a restore of a CS3 version (Jupyter's "Revert to checkpoint"): the room merges the restored
  version at once, so every client receives it as ordinary Y updates.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import httpx
from tornado import web

from jupyter_cs3.backend import Backend


async def _post(backend: Backend, op: str, storage_path: str, body: dict[str, str]) -> None:
    """POST to the hub as the user; its refusal as an HTTPError in its words."""
    token = await backend.hub_token()
    url = backend.hub_http_url(f"/api/collaboration/{op}/" + quote(storage_path, safe="/"))
    try:
        async with httpx.AsyncClient(timeout=backend.config.hub_timeout) as http:
            auth = {"Authorization": f"Bearer {token}"}
            r = await http.post(url, json=body, headers=auth)
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


async def move_through_hub(backend: Backend, src: str, dst: str) -> None:
    """Move storage path ``src`` to ``dst`` with the open room's lock (raises HTTPError)."""
    await _post(backend, "move", src, {"to": dst})


async def restore_through_hub(backend: Backend, storage_path: str, key: str) -> None:
    """Restore CS3 version ``key`` of ``storage_path`` through its room (raises HTTPError)."""
    await _post(backend, "restore", storage_path, {"key": key})


async def delete_through_hub(backend: Backend, storage_path: str) -> None:
    """Delete ``storage_path``, open in a room, with the room's lock (raises HTTPError)."""
    await _post(backend, "delete", storage_path, {})
