"""The ASGI app, built by a factory from a ``Settings`` object (no global state)."""

from __future__ import annotations

import asyncio
import getpass
import html
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ValidationError
from starlette.routing import WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocketDisconnect, WebSocketState

from collab_server import logs
from collab_server.auth import Authenticator, StaticTokenAuthenticator, StorageAuthenticator
from collab_server.connection import DirectWriter
from collab_server.hub import Hub, HubError
from collab_server.logs import get_logger, kv
from collab_server.loop_lag import watch_loop_lag
from collab_server.metrics import HubMetrics
from collab_server.ocm_auth import OCMShareAuthenticator, is_ocm_credential, watch_share
from collab_server.presence import PRESENCE_PATH, Presence, endpoint  # issue 13
from collab_server.room_ops import router as room_ops_router
from collab_server.scaleout.cluster import Cluster, new_instance_id
from collab_server.settings import Settings
from collab_server.update_log import SQLiteUpdateLog
from collab_server.wsprotocol import EXTENSION as FRAME_WRITER
from crdt.documents import warm_up_export
from storage_bridge.base import Storage
from storage_bridge.types import User

log = get_logger("app")

ROOM_PATH = "/api/collaboration/room/"


class HubApp(FastAPI):
    """FastAPI, with the room websocket served without its middleware stack.

    Why (measured, bench P2): a websocket lives as long as its client, and so did one frame of
    every layer around it (ServerErrorMiddleware, the telemetry and body-limit middleware,
    ExceptionMiddleware, AsyncExitStackMiddleware with its exit stack, the router, the route
    and the exception wrappers around both), ~6 KiB per idle connection. None of them acts
    on a websocket the room handler does not already handle itself: it catches its own
    errors and closes with its own codes. Everything else (HTTP, the presence socket) goes
    through the stack as before.
    """

    room_endpoint: Callable[[WebSocket], Awaitable[None]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and self.room_endpoint is not None:
            path: str = scope["path"]
            root: str = scope.get("root_path", "")
            if root and path.startswith(root):
                path = path[len(root) :]
            name = path[len(ROOM_PATH) :] if path.startswith(ROOM_PATH) else ""
            if name and "/" not in name:
                scope["app"] = self
                scope["path_params"] = {"room_name": name}
                await self.room_endpoint(WebSocket(scope, receive, send))
                return
        await super().__call__(scope, receive, send)


class SessionRequest(BaseModel):
    format: str
    type: str


def _token_from(headers: dict[str, str], query: dict[str, str]) -> str | None:
    auth = headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() in ("bearer", "token") and value:
        return value.strip()
    return headers.get("x-access-token") or query.get("token") or None


class StarletteSocket:
    """Adapts a Starlette WebSocket to the hub's ``ReceivingSocket``."""

    def __init__(self, ws: WebSocket) -> None:
        self._ws = ws
        extensions = ws.scope.get("extensions") or {}
        self._direct: DirectWriter | None = extensions.get(FRAME_WRITER)

    @property
    def direct(self) -> DirectWriter | None:
        return self._direct

    async def send(self, data: bytes) -> None:
        await self._ws.send_bytes(data)

    async def receive(self) -> bytes | None:
        try:
            message = await self._ws.receive()
        except (WebSocketDisconnect, RuntimeError):  # RuntimeError: Starlette's "not connected"
            return None  # the peer is gone: the hub's read loop ends the session
        if message["type"] == "websocket.disconnect":
            return None
        data = message.get("bytes")
        if data is None:
            text = message.get("text")
            # y-websocket only sends binary frames; text is answered as a malformed frame.
            return b"" if text is None else b"\xff" + text.encode()
        return bytes(data)

    async def close(self, code: int, reason: str) -> None:
        if self._ws.application_state != WebSocketState.DISCONNECTED:
            await self._ws.close(code=code, reason=reason)


async def _deny(websocket: WebSocket, exc: HubError) -> None:
    """Refuse an upgrade with an HTTP status (401, 429 ...) and a JSON message."""
    hub: Hub = websocket.app.state.hub
    hub.metrics.refused_connections.labels(str(exc.status)).inc()
    log.info("upgrade refused", extra=kv(code=exc.status, reason=exc.message))
    response = JSONResponse({"message": exc.message}, status_code=exc.status)
    if "websocket.http.response" in (websocket.scope.get("extensions") or {}):
        await websocket.send_denial_response(response)
    else:  # a server without denial responses answers 403 to a close before the accept
        await websocket.close(exc.close_code, exc.message[:123])


def build_storage(settings: Settings) -> Storage:
    if settings.storage == "local":
        from storage_bridge.local import LocalStorage

        settings.root.mkdir(parents=True, exist_ok=True)
        return LocalStorage(settings.root, settings.data_dir)  # shared by instances (§10)
    from storage_bridge.cs3 import CS3Settings, CS3Storage

    return CS3Storage(
        CS3Settings(
            gateway=settings.gateway,
            tls=settings.gateway_tls,
            ca_file=str(settings.gateway_ca_file) if settings.gateway_ca_file else None,
            timeout=settings.storage_timeout,
            # The room's lock must outlive any one editor: any editor in the room may refresh it.
            lock_with_user=False,
        )
    )


def build_authenticator(settings: Settings, storage: Storage) -> Authenticator:
    if settings.storage == "local":
        if not settings.token:
            raise ValueError("local mode needs a token (CS3COLLAB_TOKEN or --token)")
        user = User(id="local", username=getpass.getuser(), display_name=getpass.getuser())
        return StaticTokenAuthenticator(settings.token, user)
    inner = StorageAuthenticator(storage, cache_seconds=settings.auth_cache_seconds)
    # OCM (issue 17): remote sites' Jupyter servers authenticate with a share id + secret.
    return OCMShareAuthenticator(inner, settings.gateway, cache_seconds=settings.auth_cache_seconds)


def index_page(settings: Settings) -> str:
    """The hub's own ``/``: what this server is and where JupyterLab is (no token on it)."""
    if settings.lab_url:
        url = html.escape(settings.lab_url, quote=True)
        where = f'Open JupyterLab at <a href="{url}">{url}</a> to co-edit notebooks.'
    else:
        where = (
            "Users do not open it in a browser: they open JupyterLab with the "
            "<code>jupyter_cs3</code> server extension, whose <code>CS3Config.hub_url</code> "
            "points here."
        )
    return (
        "<!doctype html><html><head><meta charset=utf-8><title>cs3collab hub</title></head>"
        "<body><h1>cs3collab hub</h1>"
        "<p>This is the cs3collab collaboration hub: it keeps one shared document per open "
        "notebook and saves it to storage. JupyterLab talks to it over "
        "<code>/api/collaboration/</code>.</p>"
        f"<p>{where}</p>"
        '<p>Health: <a href="healthz">/healthz</a>, <a href="readyz">/readyz</a>, '
        '<a href="metrics">/metrics</a>.</p></body></html>'
    )


def create_app(settings: Settings, *, storage: Storage | None = None) -> FastAPI:
    # Longer than ~60 lines on purpose: the routes are closures over this app's hub and
    # settings (no global state), each a few lines; split apart they would need both passed.
    logs.configure(settings.log_level)
    metrics = HubMetrics()
    store = storage or build_storage(settings)
    cluster = (
        Cluster(
            settings.redis_url or "",
            lease_ttl=settings.writer_lease_ttl,
            failures=metrics.task_failures,
            redis_up=metrics.redis_up,
            instance=new_instance_id(settings.instance_name),
        )
        if settings.fanout == "redis"
        else None
    )
    hub = Hub(
        cluster=cluster,
        settings=settings,
        storage=store,
        update_log=SQLiteUpdateLog(
            settings.state_dir / "update-log.sqlite", fsync=settings.log_fsync
        ),
        authenticator=build_authenticator(settings, store),
        metrics=metrics,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Compile the notebook schema now: the first snapshot would stall every room for it.
        warm_up_export()
        lag = asyncio.get_running_loop().create_task(watch_loop_lag(metrics.loop_lag_seconds))
        if cluster is not None:
            cluster.start()
        hub.ready = True
        yield
        lag.cancel()
        await hub.aclose()
        if cluster is not None:
            await cluster.aclose()

    app = HubApp(title="cs3collab hub", lifespan=lifespan)
    app.state.hub = hub

    @app.get("/", response_class=HTMLResponse)
    async def index() -> HTMLResponse:
        return HTMLResponse(index_page(settings))

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> Response:
        if not hub.ready:
            return JSONResponse({"status": "starting"}, status_code=503)
        if cluster is not None and not cluster.up:
            # Still serving: each instance's clients co-edit; the others catch up later.
            return JSONResponse({"status": "degraded", "redis": "down", "rooms": len(hub.rooms)})
        return JSONResponse({"status": "ready", "rooms": len(hub.rooms)})

    @app.get("/metrics")
    async def metrics_endpoint() -> Response:
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")

    @app.put("/api/collaboration/session/{path:path}")
    async def session(path: str, request: Request) -> Response:
        token = _token_from(dict(request.headers), dict(request.query_params))
        try:
            # parsed by hand: any content type, and a 400 (not FastAPI's 422) for a bad body
            body = SessionRequest.model_validate_json(await request.body())
        except ValidationError:
            message = 'the body must be JSON {"format": ..., "type": ...}'
            return JSONResponse({"message": message}, status_code=400)
        try:
            s = await hub.open_session(token, path, body.format, body.type)
        except HubError as exc:
            return JSONResponse({"message": exc.message}, status_code=exc.status)
        return JSONResponse(
            {"format": s.format, "type": s.type, "fileId": s.file_id, "sessionId": s.session_id},
            status_code=201 if s.created else 200,
        )

    @app.put("/api/collaboration/document/{path:path}")
    async def write_document(path: str, request: Request) -> Response:
        """Write a whole new version of a document: merged into its live room, never raced.

        ``If-Match: <etag>`` names the version the writer started from (the merge base).
        """
        token = _token_from(dict(request.headers), dict(request.query_params))
        data = await request.body()
        if len(data) > settings.max_doc_bytes:
            return JSONResponse({"message": "document too large"}, status_code=413)
        try:
            based_on = request.headers.get("if-match", "").strip('"') or None
            result = await hub.write_document(token, path, data, based_on)
        except HubError as exc:
            return JSONResponse({"message": exc.message}, status_code=exc.status)
        return JSONResponse(result)

    @app.post("/api/collaboration/merge/{path:path}")
    async def merge_back(path: str, request: Request) -> Response:
        """Merge the work copy at ``path`` back into the document it was copied from."""
        token = _token_from(dict(request.headers), dict(request.query_params))
        try:
            result = await hub.merge_back(token, path)
        except HubError as exc:
            return JSONResponse({"message": exc.message}, status_code=exc.status)
        return JSONResponse(result, status_code=409 if result["status"] == "failed" else 200)

    app.include_router(  # work copy, merge preview, merge with choices (issue 14)
        room_ops_router(hub, lambda r: _token_from(dict(r.headers), dict(r.query_params)))
    )

    async def room(websocket: WebSocket) -> None:
        room_name = str(websocket.path_params["room_name"])
        token = _token_from(dict(websocket.headers), dict(websocket.query_params))
        address = websocket.client.host if websocket.client else ""
        try:
            principal = await hub.admit(token, address)
        except HubError as exc:
            await _deny(websocket, exc)
            return
        try:
            await websocket.accept()
            socket = StarletteSocket(websocket)
            # OCM (issue 17): a remote site's socket leaves when its share is revoked. Only
            # such sockets get a watcher task (a done task kept per socket: ~0.6 KiB, P2).
            watcher = None
            if is_ocm_credential(token):
                every = max(settings.auth_cache_seconds, 1.0)
                watcher = asyncio.ensure_future(watch_share(hub.auth, token, socket.close, every))
            session_id = websocket.query_params.get("sessionId")
            # The request's headers and query were read above; a socket does not need them
            # for its life (a browser's cookies and all: KiBs per idle socket).
            websocket.scope["headers"] = []
            websocket.__dict__.pop("_headers", None)
            websocket.__dict__.pop("_query_params", None)
            try:
                await hub.serve(socket, room_name, session_id, principal)
            except Exception:
                # A bug must cost one socket, not the process; the client reconnects.
                log.exception("websocket handler failed", extra=kv(room=room_name))
                await socket.close(1011, "internal error")
            finally:
                if watcher is not None:
                    watcher.cancel()
        finally:
            hub.leave(principal, address)

    # Served by HubApp ahead of the middleware stack; the route stays for the app's route list.
    # A plain Starlette route: FastAPI's dependency machinery (three AsyncExitStacks and the
    # solved-dependencies state per socket) cost ~5 KiB per idle connection (measured, P2).
    app.room_endpoint = room
    app.router.routes.append(WebSocketRoute(ROOM_PATH + "{room_name}", room))
    # --- issue 13: JupyterLab:globalAwareness, served by the hub (collab_server/presence.py)
    if cluster is None:
        presence = Presence(settings, hub.rooms.rooms, failures=metrics.task_failures)
    else:  # across instances (§10): who shares a room is known over every instance's rooms
        presence = cluster.share_presence(
            lambda link: Presence(
                settings,
                hub.rooms.rooms,
                failures=metrics.task_failures,
                link=link,
                instance=cluster.instance,
            )
        )
    serve_presence = endpoint(
        hub, presence, token_from=_token_from, deny=_deny, wrap=StarletteSocket
    )
    app.router.routes.append(WebSocketRoute(PRESENCE_PATH, serve_presence))
    app.state.presence = presence
    # --- end issue 13
    return app
