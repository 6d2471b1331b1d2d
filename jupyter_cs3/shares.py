"""Small REST API for a sharing UI, on top of ``storage_bridge.cs3_shares`` (cs3 storage only).

All under ``/api/cs3`` with Jupyter's auth (resource "contents"); paths are contents paths.

- ``GET  /api/cs3/me``                        the CS3 user this server acts as
- ``GET  /api/cs3/users?query=mar``           find users
- ``GET  /api/cs3/shares``                    ``{"by_me": [...], "with_me": [...]}``
- ``POST /api/cs3/shares`` ``{"path", "grantee", "role": "viewer"|"editor"}``  share a file/folder
- ``DELETE /api/cs3/shares/{id}``             stop sharing
- ``POST /api/cs3/shares/received/{id}``      accept a received share (``{"mount_point"}`` optional)
"""

from __future__ import annotations

import json
import posixpath
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web

from jupyter_cs3.backend import Backend
from jupyter_cs3.contents import http_error
from storage_bridge.cs3 import CS3Storage
from storage_bridge.cs3_shares import (
    ReceivedShare,
    Share,
    accept_received_share,
    create_share,
    find_users,
    get_user,
    list_received_shares,
    list_shares,
    remove_share,
)
from storage_bridge.errors import NotFound, StorageError
from storage_bridge.types import User


def _user_json(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "username": user.username,
        "display_name": user.display_name,
        "mail": user.mail,
    }


class _CS3Handler(APIHandler):
    auth_resource = "contents"

    @property
    def backend(self) -> Backend:
        backend: Backend = self.settings["cs3_backend"]
        return backend

    @property
    def cs3(self) -> CS3Storage:
        storage = self.backend.storage
        if not isinstance(storage, CS3Storage):
            raise web.HTTPError(404, "shares need cs3 storage")
        return storage

    async def _user(self, user_id: str, cache: dict[str, dict[str, Any]]) -> dict[str, Any]:
        if user_id not in cache:
            try:
                user = await self.backend.run(lambda t: get_user(self.cs3, t, user_id))
                cache[user_id] = _user_json(user)
            except StorageError:
                cache[user_id] = {"id": user_id, "username": "", "display_name": "", "mail": ""}
        return cache[user_id]

    async def _share_json(self, share: Share, users: dict[str, dict[str, Any]]) -> dict[str, Any]:
        path: str | None = None
        try:
            res = await self.backend.run(lambda t: self.cs3.stat(t, share.resource_id))
            path = await self.backend.api_path(res.path)
        except StorageError:
            pass
        return {
            "id": share.id,
            "path": path,
            "file_id": share.resource_id.to_file_id(),
            "role": share.role,
            "grantee": await self._user(share.grantee, users),
            "owner": await self._user(share.owner, users),
            "ctime": share.ctime,
        }

    async def _received_json(
        self, received: ReceivedShare, users: dict[str, dict[str, Any]]
    ) -> dict[str, Any]:
        folder = self.backend.shares_folder
        path = (
            posixpath.join(folder, received.mount_point)
            if received.state == "accepted" and received.mount_point
            else None
        )
        share = received.share
        return {
            "id": share.id,
            "state": received.state,
            "path": path,
            "file_id": share.resource_id.to_file_id(),
            "role": share.role,
            "owner": await self._user(share.owner, users),
            "ctime": share.ctime,
        }


class MeHandler(_CS3Handler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        try:
            user = await self.backend.user()
        except StorageError as exc:
            raise http_error(exc, "") from exc
        self.finish(json.dumps({**_user_json(user), "storage": self.backend.kind}))


class UsersHandler(_CS3Handler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        query = self.get_query_argument("query", "").strip()
        if len(query) < 2:
            raise web.HTTPError(400, "query must have at least 2 characters")
        try:
            users = await self.backend.run(lambda t: find_users(self.cs3, t, query))
        except StorageError as exc:
            raise http_error(exc, "") from exc
        self.finish(json.dumps([_user_json(u) for u in users]))


class SharesHandler(_CS3Handler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        users: dict[str, dict[str, Any]] = {}
        try:
            mine = await self.backend.run(lambda t: list_shares(self.cs3, t))
            received = await self.backend.run(lambda t: list_received_shares(self.cs3, t))
        except StorageError as exc:
            raise http_error(exc, "") from exc
        self.finish(
            json.dumps(
                {
                    "by_me": [await self._share_json(s, users) for s in mine],
                    "with_me": [await self._received_json(r, users) for r in received],
                }
            )
        )

    @web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.get_json_body() or {}
        path, grantee, role = body.get("path"), body.get("grantee"), body.get("role", "viewer")
        if not isinstance(path, str) or not path.strip("/"):
            raise web.HTTPError(400, "path is required")
        if not isinstance(grantee, str) or not grantee:
            raise web.HTTPError(400, "grantee (a username) is required")
        if role not in ("viewer", "editor"):
            raise web.HTTPError(400, "role must be viewer or editor")
        try:
            storage_path = await self.backend.storage_path(path)
            share = await self.backend.run(
                lambda t: create_share(self.cs3, t, storage_path, grantee, role)
            )
        except NotFound as exc:
            raise web.HTTPError(404, f"no such file or user: {path} / {grantee}") from exc
        except StorageError as exc:
            raise http_error(exc, path) from exc
        self.set_status(201)
        self.finish(json.dumps(await self._share_json(share, {})))


class ShareHandler(_CS3Handler):
    @web.authenticated
    @authorized
    async def delete(self, share_id: str) -> None:
        try:
            await self.backend.run(lambda t: remove_share(self.cs3, t, share_id))
        except StorageError as exc:
            raise http_error(exc, share_id) from exc
        self.set_status(204)
        self.finish()


class ReceivedShareHandler(_CS3Handler):
    @web.authenticated
    @authorized
    async def post(self, share_id: str) -> None:
        body = self.get_json_body() or {}
        mount_point = body.get("mount_point")
        if mount_point is not None and (not isinstance(mount_point, str) or "/" in mount_point):
            raise web.HTTPError(400, "mount_point must be a plain name")
        try:
            received = await self.backend.run(
                lambda t: accept_received_share(self.cs3, t, share_id, mount_point)
            )
        except StorageError as exc:
            raise http_error(exc, share_id) from exc
        self.finish(json.dumps(await self._received_json(received, {})))


def handlers(prefix: str) -> list[tuple[str, type[APIHandler]]]:
    return [
        (prefix + "/me", MeHandler),
        (prefix + "/users", UsersHandler),
        (prefix + "/shares", SharesHandler),
        (prefix + "/shares/received/([^/]+)", ReceivedShareHandler),
        (prefix + "/shares/([^/]+)", ShareHandler),
    ]
