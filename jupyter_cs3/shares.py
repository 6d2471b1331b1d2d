"""REST API for the sharing UI (@cs3collab/lab), on the backend-neutral ``Backend.sharing``.

All under ``/api/cs3`` with Jupyter's auth (resource "contents"); paths are contents paths.
Errors answer ``{"message": ...}`` in words the UI shows as they are. Without sharing (local
folder) the sharing calls answer 501 with a message that says so.

- ``GET    /api/cs3/me``                       the user: ``id, username, display_name, mail, idp,
                                                storage, sharing``
- ``GET    /api/cs3/users?query=mar``          find users (2+ characters)
- ``GET    /api/cs3/shares[?path=P]``          ``{"by_me": [...], "with_me": [...]}``; with
                                                ``path``: the shares of that file only
- ``POST   /api/cs3/shares`` ``{"path", "grantee", "role": "viewer"|"editor"}``  share
- ``PATCH  /api/cs3/shares/{id}`` ``{"role"}``  change the role (UpdateShare)
- ``DELETE /api/cs3/shares/{id}``              stop sharing
- ``PATCH  /api/cs3/shares/received/{id}`` ``{"state": "accepted"|"rejected", "mount_point"?}``
- ``POST   /api/cs3/shares/received/{id}``     accept (``{"mount_point"}`` optional)
- ``GET    /api/cs3/links[?path=P]``           public links (CS3 public shares) the user made
- ``POST   /api/cs3/links`` ``{"path", "password"?, "expiration"?}``  a read-only public link
                                                (``expiration``: unix seconds)
- ``DELETE /api/cs3/links/{id}``               revoke a public link
- ``GET    /api/cs3/info?path=P``              file info: owner, size, modified, resource id,
                                                permissions, role, lock (holder, app), shares
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
from jupyter_cs3.sharing import (
    FileInfo,
    PublicLink,
    Sharing,
    SharingRefused,
    SharingUnavailable,
)
from storage_bridge.cs3.shares import ReceivedShare, Share
from storage_bridge.errors import NotFound, StorageError
from storage_bridge.types import Lock, User


def _user_json(user: User | None) -> dict[str, Any] | None:
    if user is None:
        return None
    return {
        "id": user.id,
        "username": user.username,
        "display_name": user.display_name,
        "mail": user.mail,
        "idp": user.idp,
    }


class _CS3Handler(APIHandler):
    auth_resource = "contents"

    @property
    def backend(self) -> Backend:
        backend: Backend = self.settings["cs3_backend"]
        return backend

    @property
    def sharing(self) -> Sharing:
        return self.backend.sharing

    def _fail(self, exc: Exception, what: str = "") -> web.HTTPError:
        if isinstance(exc, SharingUnavailable):
            return web.HTTPError(501, str(exc))
        if isinstance(exc, SharingRefused):
            return web.HTTPError(exc.status, exc.message)
        if isinstance(exc, StorageError):
            return http_error(exc, what)
        raise exc

    async def _user(self, user_id: str, cache: dict[str, dict[str, Any]]) -> dict[str, Any]:
        if user_id not in cache:
            try:
                user = await self.sharing.user(user_id)
            except StorageError as exc:
                self.log.info("jupyter_cs3: user %s not resolvable: %s", user_id, exc)
                user = User(id=user_id, username="")
            cache[user_id] = _user_json(user) or {}
        return cache[user_id]

    async def _share_json(self, share: Share, users: dict[str, dict[str, Any]]) -> dict[str, Any]:
        path: str | None = None
        try:
            res = await self.backend.run(lambda t: self.backend.storage.stat(t, share.resource_id))
            path = await self.backend.api_path(res.path)
            name = res.name
        except StorageError as exc:  # e.g. the resource was deleted since it was shared
            self.log.info("jupyter_cs3: shared resource of %s not found: %s", share.id, exc)
            name = ""
        return {
            "id": share.id,
            "path": path,
            "name": name,
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
        accepted = received.state == "accepted" and received.mount_point
        path = posixpath.join(folder, received.mount_point) if accepted else None
        share = received.share
        name = received.mount_point if accepted else ""
        if not name:
            try:
                res = await self.backend.run(
                    lambda t: self.backend.storage.stat(t, share.resource_id)
                )
                name = res.name
            except StorageError as exc:
                self.log.info("jupyter_cs3: received share %s not statable: %s", share.id, exc)
        return {
            "id": share.id,
            "state": received.state,
            "path": path,
            "name": name,
            "file_id": share.resource_id.to_file_id(),
            "role": share.role,
            "owner": await self._user(share.owner, users),
            "ctime": share.ctime,
        }

    def _path_argument(self) -> str:
        path = self.get_query_argument("path", "")
        if not path.strip("/"):
            raise web.HTTPError(400, "path is required")
        return path.strip("/")


class MeHandler(_CS3Handler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        try:
            user = await self.backend.user()
        except StorageError as exc:
            raise http_error(exc, "") from exc
        self.finish(
            json.dumps(
                {
                    **(_user_json(user) or {}),
                    "storage": self.backend.kind,
                    "sharing": self.sharing.available,
                }
            )
        )


class UsersHandler(_CS3Handler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        query = self.get_query_argument("query", "").strip()
        if len(query) < 2:
            raise web.HTTPError(400, "Type at least 2 characters to search.")
        try:
            users = await self.sharing.find_users(query)
        except Exception as exc:
            raise self._fail(exc) from exc
        self.finish(json.dumps([_user_json(u) for u in users]))


class SharesHandler(_CS3Handler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        users: dict[str, dict[str, Any]] = {}
        path = self.get_query_argument("path", None)
        try:
            if path is not None:
                mine = await self.sharing.shares(path.strip("/"))
                received: list[ReceivedShare] = []
            else:
                mine = await self.sharing.shares()
                received = await self.sharing.received()
        except Exception as exc:
            raise self._fail(exc, path or "") from exc
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
            share = await self.sharing.share(path.strip("/"), grantee, role)
        except NotFound as exc:
            raise web.HTTPError(404, f"No such file: {path}") from exc
        except Exception as exc:
            raise self._fail(exc, path) from exc
        self.set_status(201)
        self.finish(json.dumps(await self._share_json(share, {})))


class ShareHandler(_CS3Handler):
    @web.authenticated
    @authorized
    async def patch(self, share_id: str) -> None:
        body = self.get_json_body() or {}
        role = body.get("role")
        if role not in ("viewer", "editor"):
            raise web.HTTPError(400, "role must be viewer or editor")
        try:
            share = await self.sharing.update(share_id, role)
        except Exception as exc:
            raise self._fail(exc, share_id) from exc
        self.finish(json.dumps(await self._share_json(share, {})))

    @web.authenticated
    @authorized
    async def delete(self, share_id: str) -> None:
        try:
            await self.sharing.unshare(share_id)
        except Exception as exc:
            raise self._fail(exc, share_id) from exc
        self.set_status(204)
        self.finish()


class ReceivedShareHandler(_CS3Handler):
    async def _set(self, share_id: str, state: Any, mount_point: Any) -> None:
        if state not in ("accepted", "rejected"):
            raise web.HTTPError(400, "state must be accepted or rejected")
        if mount_point is not None and (not isinstance(mount_point, str) or "/" in mount_point):
            raise web.HTTPError(400, "mount_point must be a plain name")
        try:
            received = await self.sharing.set_received_state(share_id, state, mount_point)
        except Exception as exc:
            raise self._fail(exc, share_id) from exc
        self.finish(json.dumps(await self._received_json(received, {})))

    @web.authenticated
    @authorized
    async def post(self, share_id: str) -> None:
        body = self.get_json_body() or {}
        await self._set(share_id, "accepted", body.get("mount_point"))

    @web.authenticated
    @authorized
    async def patch(self, share_id: str) -> None:
        body = self.get_json_body() or {}
        await self._set(share_id, body.get("state"), body.get("mount_point"))


def _lock_json(lock: Lock | None, holder: User | None) -> dict[str, Any] | None:
    if lock is None:
        return None
    return {
        "app_name": lock.app_name,
        "holder": _user_json(holder),
        "expiration": lock.expiration,
        "type": lock.type.name.lower(),
    }


class InfoHandler(_CS3Handler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        path = self._path_argument()
        try:
            info: FileInfo = await self.sharing.file_info(path)
        except Exception as exc:
            raise self._fail(exc, path) from exc
        res = info.resource
        users: dict[str, dict[str, Any]] = {}
        self.finish(
            json.dumps(
                {
                    "path": info.path,
                    "name": res.name or posixpath.basename(info.path),
                    "is_dir": res.is_dir,
                    "size": res.size,
                    "mtime": res.mtime,
                    "etag": res.etag,
                    "file_id": res.id.to_file_id(),
                    "resource_id": {
                        "storage_id": res.id.storage_id,
                        "space_id": res.id.space_id,
                        "opaque_id": res.id.opaque_id,
                    },
                    "owner": _user_json(info.owner),
                    "role": info.role,
                    "permissions": {
                        "read": res.permissions.read,
                        "write": res.permissions.write,
                        "list": res.permissions.list,
                        "create": res.permissions.create_container,
                        "delete": res.permissions.delete,
                        "move": res.permissions.move,
                    },
                    "lock": _lock_json(res.lock, info.lock_holder),
                    "shares": None
                    if info.shares is None
                    else [await self._share_json(s, users) for s in info.shares],
                    "sharing": self.sharing.available,
                }
            )
        )


class LinksHandler(_CS3Handler):
    async def _link_json(self, link: PublicLink) -> dict[str, Any]:
        template = self.backend.config.public_link_url
        path: str | None = None
        try:
            res = await self.backend.run(lambda t: self.backend.storage.stat(t, link.resource_id))
            path = await self.backend.api_path(res.path)
        except StorageError as exc:
            self.log.info("jupyter_cs3: resource of link %s not found: %s", link.id, exc)
        return {
            "id": link.id,
            "token": link.token,
            "url": template.replace("{token}", link.token) if template else None,
            "path": path,
            "password_protected": link.password_protected,
            "expiration": link.expiration,
            "ctime": link.ctime,
        }

    @web.authenticated
    @authorized
    async def get(self) -> None:
        path = self.get_query_argument("path", None)
        try:
            links = await self.sharing.links(path.strip("/") if path is not None else None)
        except Exception as exc:
            raise self._fail(exc, path or "") from exc
        self.finish(json.dumps([await self._link_json(link) for link in links]))

    @web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.get_json_body() or {}
        path, password = body.get("path"), body.get("password") or ""
        expiration = body.get("expiration") or 0
        if not isinstance(path, str) or not path.strip("/"):
            raise web.HTTPError(400, "path is required")
        if not isinstance(password, str):
            raise web.HTTPError(400, "password must be a string")
        if not isinstance(expiration, int | float) or isinstance(expiration, bool):
            raise web.HTTPError(400, "expiration must be unix seconds")
        try:
            link = await self.sharing.create_link(
                path.strip("/"), password=password, expiration=float(expiration)
            )
        except NotFound as exc:
            raise web.HTTPError(404, f"No such file: {path}") from exc
        except Exception as exc:
            raise self._fail(exc, path) from exc
        self.set_status(201)
        self.finish(json.dumps(await self._link_json(link)))


class LinkHandler(_CS3Handler):
    @web.authenticated
    @authorized
    async def delete(self, link_id: str) -> None:
        try:
            await self.sharing.remove_link(link_id)
        except Exception as exc:
            raise self._fail(exc, link_id) from exc
        self.set_status(204)
        self.finish()


def handlers(prefix: str) -> list[tuple[str, type[APIHandler]]]:
    return [
        (prefix + "/me", MeHandler),
        (prefix + "/users", UsersHandler),
        (prefix + "/info", InfoHandler),
        (prefix + "/links", LinksHandler),
        (prefix + "/links/([^/]+)", LinkHandler),
        (prefix + "/shares", SharesHandler),
        (prefix + "/shares/received/([^/]+)", ReceivedShareHandler),
        (prefix + "/shares/([^/]+)", ShareHandler),
    ]
