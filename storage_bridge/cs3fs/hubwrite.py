"""Writes to a file that is open in a cs3collab room go through the hub, never around its lock.

``PUT {hub}/api/collaboration/document/{cs3 path}`` with the user's CS3 token: the hub merges
the new version into the live document (the room's clients see it at once) and snapshots it.
``If-Match`` names the version the writer started from (the last one this filesystem read), so
the hub merges against that base.
"""

from __future__ import annotations

import errno
import logging
import warnings
from typing import Any
from urllib.parse import quote

import httpx

from storage_bridge.cs3fs.errors import room_locked

log = logging.getLogger(__name__)


async def write_document(
    client: httpx.AsyncClient,
    hub_url: str,
    token: str,
    storage_path: str,
    data: bytes,
    *,
    based_on: str | None,
    user_path: str,
) -> str:
    """Hand ``data`` to the hub as the new version of ``storage_path``; the resulting etag."""
    url = hub_url.rstrip("/") + "/api/collaboration/document/" + quote(storage_path, safe="/")
    headers = {"Authorization": f"Bearer {token}"}
    if based_on:
        headers["If-Match"] = based_on
    try:
        r = await client.put(url, content=data, headers=headers)
    except httpx.HTTPError as exc:
        raise room_locked(user_path, f"the hub at {hub_url} is unreachable: {exc!r}") from exc
    try:
        answer: Any = r.json()
    except ValueError:
        answer = {}
    if not isinstance(answer, dict):
        answer = {}
    message = str(answer.get("message") or r.reason_phrase)
    if r.status_code in (401, 403):
        raise PermissionError(errno.EACCES, f"hub refused the write: {message}", user_path)
    if r.status_code == 404:
        raise FileNotFoundError(errno.ENOENT, f"hub: {message}", user_path)
    if r.status_code != 200:
        raise room_locked(user_path, f"the hub refused the write: HTTP {r.status_code} {message}")
    if answer.get("status") == "conflict":
        copy = answer.get("conflictCopy")
        warnings.warn(
            f"cs3://{user_path}: merged into the open notebook with conflicts "
            f"{answer.get('conflicts')}; the unmerged version is kept as {copy}",
            stacklevel=2,
        )
    log.info("wrote %s through the hub (%s)", storage_path, answer.get("status"))
    return str(answer.get("etag") or "")
