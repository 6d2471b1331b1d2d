"""Room operations for @cs3collab/lab, relayed to the hub with the user's CS3 token (issue 14).

The browser never holds a CS3 token, so the hub's HTTP endpoints (collab_server/room_ops.py) are
called from here. Paths are contents paths in both directions (storage paths are mapped).

- ``POST /api/cs3/work-copy?path=P``       a copy of the live notebook beside it → ``{"path"}``
- ``POST /api/cs3/merge-preview?path=C``   what merging work copy C into its original does:
                                            ``{"original", "auto": [...], "conflicts": [...],
                                            "notes": [...]}``
- ``POST /api/cs3/merge?path=C`` ``{"choices": {cellId: "mine"|"theirs"|"both"}}``  merge it
- ``GET  /api/cs3/path?storage_path=S``    the contents path of a storage path the hub named
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import httpx
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web

from jupyter_cs3.backend import Backend
from jupyter_cs3.contents import http_error
from storage_bridge.errors import StorageError


class _RoomOpHandler(APIHandler):
    auth_resource = "contents"
    hub_endpoint = ""  # "/api/collaboration/<op>/"

    @property
    def backend(self) -> Backend:
        backend: Backend = self.settings["cs3_backend"]
        return backend

    async def relay(self, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """POST to the hub for the contents path in ``?path=``; the hub's errors as HTTP errors."""
        path = self.get_query_argument("path", "")
        if not path:
            raise web.HTTPError(400, "path is required")
        try:
            storage_path = await self.backend.storage_path(path)
            token = await self.backend.hub_token()
        except StorageError as exc:
            raise http_error(exc, path) from exc
        url = self.backend.hub_http_url(self.hub_endpoint + quote(storage_path, safe="/"))
        client: Any = self.settings["cs3_hub_client"]
        try:
            r = await client.http().post(
                url, json=body or {}, headers={"Authorization": f"Bearer {token}"}
            )
        except httpx.HTTPError as exc:
            self.log.warning("collaboration hub unreachable: %r", exc)
            raise web.HTTPError(503, "the collaboration hub is unreachable") from exc
        try:
            answer = r.json()
        except ValueError:
            answer = {}
        if not isinstance(answer, dict):
            answer = {}
        if r.status_code != 200:
            status = 403 if r.status_code == 401 else r.status_code  # our credentials, not theirs
            message = str(answer.get("message") or r.reason_phrase or "refused by the hub")
            raise web.HTTPError(status if 400 <= status < 600 else 502, message)
        for key in ("path", "original"):
            if isinstance(answer.get(key), str):
                answer[key] = await self.backend.api_path(answer[key])
        return answer


class WorkCopyHandler(_RoomOpHandler):
    hub_endpoint = "/api/collaboration/work-copy/"

    @web.authenticated
    @authorized
    async def post(self) -> None:
        self.finish(json.dumps(await self.relay()))


class MergePreviewHandler(_RoomOpHandler):
    hub_endpoint = "/api/collaboration/merge-preview/"

    @web.authenticated
    @authorized
    async def post(self) -> None:
        self.finish(json.dumps(await self.relay()))


class MergeHandler(_RoomOpHandler):
    hub_endpoint = "/api/collaboration/merge-resolved/"

    @web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.get_json_body() or {}
        choices = body.get("choices", {}) if isinstance(body, dict) else None
        if not isinstance(choices, dict):
            raise web.HTTPError(400, 'the body must be {"choices": {cellId: mine|theirs|both}}')
        self.finish(json.dumps(await self.relay({"choices": choices})))


class PathHandler(_RoomOpHandler):
    """``GET /api/cs3/path?storage_path=S``: the contents path of a storage path the hub named
    (conflict copies in raw messages), ``{"path": null}`` when it is outside this server's view."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        storage_path = self.get_query_argument("storage_path", "")
        if not storage_path.startswith("/"):
            raise web.HTTPError(400, "storage_path must be an absolute storage path")
        self.finish(json.dumps({"path": await self.backend.api_path(storage_path)}))


def handlers(prefix: str) -> list[tuple[str, type[APIHandler]]]:
    return [
        (prefix + "/work-copy", WorkCopyHandler),
        (prefix + "/merge-preview", MergePreviewHandler),
        (prefix + "/merge", MergeHandler),
        (prefix + "/path", PathHandler),
    ]
