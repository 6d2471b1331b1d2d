"""``/api/collaboration/*`` on the Jupyter server, relayed to the cs3collab hub.

JupyterLab's collaborative mode (``@jupyter/docprovider``, unmodified) talks to its own server;
these handlers authenticate the browser with Jupyter's auth (token, cookies + XSRF, JupyterHub)
and then act for the user towards the hub with the user's CS3 token, which the browser never sees:

- ``PUT /api/collaboration/session/{path}``: the contents path is mapped to the storage path and
  the hub's session endpoint answers (``fileId`` = the storage resource id, ``sessionId`` = the
  room's lineage). Status and body are the hub's.
- ``/api/collaboration/room/{format}:{type}:{fileId}``: a websocket relayed frame by frame to the
  hub's room; close codes and reasons travel unchanged in both directions (the client's
  behaviour depends on them: 1003 + JSON reason disposes the document and offers a reload,
  4400/4404/4500 before the first sync close the tab). A lost hub connection is reported as
  1011 so that the client reconnects.
- ``/api/collaboration/room/JupyterLab:globalAwareness`` (Online Collaborators) is relayed the
  same way to the hub's ``/api/collaboration/awareness`` (collab_server/presence.py: users on
  other servers appear while they have a document open together); with
  ``CS3Config.global_awareness = "local"`` it is served by this server for its own tabs.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import quote

import httpx
from jupyter_server.auth.decorator import authorized, ws_authenticated
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from pycrdt import Doc, create_sync_message, write_var_uint
from tornado import web
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketClientConnection, WebSocketClosedError, WebSocketHandler
from tornado.websocket import websocket_connect as _websocket_connect

from jupyter_cs3.backend import Backend
from jupyter_cs3.contents import http_error
from jupyter_cs3.remote_hub import RemoteHubs, RemoteRoute
from jupyter_cs3.sharing_errors import SharingRefused
from storage_bridge.errors import StorageError

GLOBAL_AWARENESS = "JupyterLab:globalAwareness"
HUB_AWARENESS = "/api/collaboration/awareness"  # collab_server.presence.PRESENCE_PATH
HUB_LOST = 1011  # not special to the client: it reconnects
HUB_UNREACHABLE = 1013  # "try again later": the client reconnects
_NO_STATUS = (None, 1005, 1006, 1015)  # codes that must not be sent in a close frame
# HTTP status of a refused upgrade -> the hub's close code for the same refusal
_UPGRADE_REFUSED = {401: 4401, 403: 4403, 404: 4404, 429: 4429, 431: 4400, 400: 4400}


def _hub_message(exc: HTTPClientError) -> str:
    """The hub's JSON ``message`` of a refused upgrade, cut to a close frame's 123 bytes."""
    body = exc.response.body if exc.response is not None else b""
    try:
        message = str(json.loads(body or b"{}").get("message", ""))
    except (ValueError, AttributeError):
        message = ""
    return (
        (message or exc.message or "refused by the collaboration hub")
        .encode()[:120]
        .decode(errors="ignore")
    )


class HubClient:
    """HTTP calls to the hub as the user (one connection pool per Jupyter server)."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._http: httpx.AsyncClient | None = None
        self.remote = RemoteHubs(backend)  # rooms at other sites' hubs (OCM, issue 17)

    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self.backend.config.hub_timeout)
        return self._http

    async def session(self, storage_path: str, body: dict[str, Any]) -> httpx.Response:
        # The hub takes everything after ".../session/" as the path; storage paths are
        # absolute ("/users/<id>/a.ipynb"), so the URL has "session//users/...".
        url = self.backend.hub_http_url(
            "/api/collaboration/session/" + quote(storage_path, safe="/")
        )
        token = await self.backend.hub_token()
        r = await self.http().put(url, json=body, headers={"Authorization": f"Bearer {token}"})
        if r.status_code == 401 and self.backend.kind == "cs3" and self.backend.can_login:
            token = await self.backend.renew(token)
            r = await self.http().put(url, json=body, headers={"Authorization": f"Bearer {token}"})
        return r

    async def remote_session(self, route: RemoteRoute, body: dict[str, Any]) -> httpx.Response:
        """The session of a notebook shared from another site, at that site's hub."""
        headers = {"Authorization": f"Bearer {route.credential}"}
        return await self.http().put(route.session_url(), json=body, headers=headers)

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None


class SessionHandler(APIHandler):
    auth_resource = "contents"

    @property
    def backend(self) -> Backend:
        backend: Backend = self.settings["cs3_backend"]
        return backend

    @web.authenticated
    @authorized
    async def put(self, path: str) -> None:
        body = self.get_json_body() or {}
        fmt, typ = body.get("format"), body.get("type")
        if not isinstance(fmt, str) or not isinstance(typ, str):
            raise web.HTTPError(400, "body must be {format, type}")
        try:
            storage_path = await self.backend.storage_path(path)
        except StorageError as exc:
            raise http_error(exc, path) from exc
        hub: HubClient = self.settings["cs3_hub_client"]
        try:
            # issue 17: a notebook shared from another site lives in that site's hub
            remote = await hub.remote.route_for(storage_path)
        except SharingRefused as exc:
            raise web.HTTPError(exc.status, exc.message) from exc
        except StorageError as exc:
            raise http_error(exc, path) from exc
        try:
            if remote is not None:
                r = await hub.remote_session(remote, {"format": fmt, "type": typ})
            else:
                r = await hub.session(storage_path, {"format": fmt, "type": typ})
        except httpx.HTTPError as exc:
            self.log.warning("collaboration hub unreachable: %r", exc)
            where = f"the collaboration hub of {remote.site}" if remote else "collaboration hub"
            raise web.HTTPError(503, f"{where} unreachable") from exc
        except StorageError as exc:
            raise http_error(exc, path) from exc
        try:
            answer = r.json()
        except ValueError:
            answer = {}
        if r.status_code not in (200, 201) or not isinstance(answer, dict):
            message = answer.get("message") if isinstance(answer, dict) else None
            status = r.status_code if 400 <= r.status_code < 600 else 502
            if status == 401:  # the hub refused *our* credentials: not the browser's fault
                status = 403
            raise web.HTTPError(status, str(message or r.reason_phrase))
        if remote is not None:
            hub.remote.remember(answer["fileId"], remote)
        self.set_status(r.status_code)
        self.finish(
            json.dumps(
                {
                    "format": answer.get("format", fmt),
                    "type": answer.get("type", typ),
                    "fileId": answer["fileId"],
                    "sessionId": answer["sessionId"],
                }
            )
        )


class LocalAwareness:
    """A transient awareness-only room served by this Jupyter server (no document), for
    ``CS3Config.global_awareness = "local"``."""

    def __init__(self) -> None:
        self.doc: Doc[Any] = Doc()
        self.clients: set[RoomHandler] = set()

    def hello(self) -> bytes:
        return bytes(create_sync_message(self.doc))

    async def receive(self, sender: RoomHandler, message: bytes) -> None:
        if len(message) >= 2 and message[0] == 0 and message[1] == 0:  # SyncStep1
            update = self.doc.get_update()
            await sender.send(bytes([0, 1]) + write_var_uint(len(update)) + update)
        elif message[:1] == b"\x01":  # awareness: to everyone, the sender included
            for client in list(self.clients):
                await client.send(message)


class RoomHandler(WebSocketHandler, JupyterHandler):
    """One browser websocket, relayed to one hub websocket."""

    auth_resource = "contents"

    def initialize(self, backend: Backend, awareness: LocalAwareness) -> None:
        self.backend = backend
        self.awareness = awareness
        self.hub: WebSocketClientConnection | None = None
        self.room = ""
        self._pump: asyncio.Task[None] | None = None
        self._local = False

    @property
    def max_message_size(self) -> int:
        return int(self.backend.config.max_message_size)

    def check_origin(self, origin_to_satisfy_tornado: str = "") -> bool:
        # Jupyter's rule (same host, or ServerApp.allow_origin / allow_origin_pat).
        return bool(WebSocketMixin.check_origin(self, origin_to_satisfy_tornado))

    @ws_authenticated
    @authorized
    async def get(self, *args: Any, **kwargs: Any) -> None:
        await super().get(*args, **kwargs)

    async def open(self, room: str) -> None:
        self.room = room
        if room == GLOBAL_AWARENESS and self.backend.config.global_awareness == "local":
            self._local = True
            self.awareness.clients.add(self)
            await self.send(self.awareness.hello())
            return
        session_id = self.get_query_argument("sessionId", "")
        hub_client: HubClient = self.settings["cs3_hub_client"]
        remote = hub_client.remote.route_of_room(room)  # issue 17: at another site's hub
        if room == GLOBAL_AWARENESS:
            url = self.backend.hub_ws_url(HUB_AWARENESS)
        else:
            room_path = "/api/collaboration/room/" + quote(room, safe=":")
            url = remote.ws_url(room_path) if remote else self.backend.hub_ws_url(room_path)
        if session_id:
            url += "?sessionId=" + quote(session_id, safe="")
        try:
            token = remote.credential if remote else await self.backend.hub_token()
            request = HTTPRequest(
                url,
                headers={"Authorization": f"Bearer {token}"},
                connect_timeout=self.backend.config.hub_timeout,
                request_timeout=self.backend.config.hub_timeout,
            )
            self.hub = await _websocket_connect(request, max_message_size=self.max_message_size)
        except HTTPClientError as exc:
            # The hub refuses before the upgrade (bad token, a cap): tell the client with the
            # close code it would have sent after it.
            code = _UPGRADE_REFUSED.get(exc.code)
            if code is None:
                self.log.warning("collaboration hub refused %s: %r", room, exc)
                self.close(HUB_UNREACHABLE, "collaboration hub unreachable")
                return
            if exc.code == 401 and self.backend.kind == "cs3" and self.backend.can_login:
                await self._renew(token)  # our token expired: the reconnect uses a new one
            self.log.info("collaboration hub refused %s: HTTP %s", room, exc.code)
            self.close(code, _hub_message(exc))
            return
        except Exception as exc:  # refused, DNS, TLS...
            self.log.warning("collaboration hub unreachable for %s: %r", room, exc)
            self.close(HUB_UNREACHABLE, "collaboration hub unreachable")
            return
        self._pump = asyncio.get_running_loop().create_task(self._from_hub(self.hub, token))

    async def send(self, message: bytes | str) -> None:
        try:
            await self.write_message(message, binary=isinstance(message, bytes))
        except WebSocketClosedError:
            pass

    async def on_message(self, message: bytes | str) -> None:
        if self._local:
            if isinstance(message, bytes):
                await self.awareness.receive(self, message)
            return
        hub = self.hub
        if hub is None:
            return
        try:
            await hub.write_message(message, binary=isinstance(message, bytes))
        except WebSocketClosedError:
            pass

    async def _from_hub(self, hub: WebSocketClientConnection, token: str) -> None:
        while True:
            message = await hub.read_message()
            if message is None:
                break
            if self.ws_connection is None:
                break
            await self.send(message)
        if self.ws_connection is None or self.ws_connection.is_closing():
            return  # the browser left first (on_close closes the hub side)
        code, reason = hub.close_code, hub.close_reason
        if code == 4401 and self.backend.kind == "cs3" and self.backend.can_login:
            # our token expired: log in again, the client's reconnect will use the new one
            await self._renew(token)
        if code in _NO_STATUS:
            self.close(HUB_LOST, "collaboration hub connection lost")
        else:
            self.close(code, reason or "")

    async def _renew(self, token: str) -> None:
        try:
            await self.backend.renew(token)
        except StorageError as exc:
            self.log.warning("CS3 login failed: %s", exc)

    def on_close(self) -> None:
        if self._local:
            self.awareness.clients.discard(self)
            return
        hub, self.hub = self.hub, None
        if hub is None:
            return
        code, reason = self.close_code, self.close_reason
        if code in _NO_STATUS:
            hub.close()
        else:
            hub.close(code, reason)
