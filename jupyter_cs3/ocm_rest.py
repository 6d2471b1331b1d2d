"""REST API for sharing across sites (OCM), on ``Backend.sharing.federation``.

Same conventions as ``shares.py`` (under ``/api/cs3``, Jupyter's auth, ``{"message"}`` errors the
UI shows as they are, 501 without CS3):

- ``POST   /api/cs3/ocm/invites`` ``{"description"?}`` -> 201 ``{"token", "site", "expiration"}``
  a token to hand to a colleague at another site
- ``POST   /api/cs3/ocm/invites/accept`` ``{"token", "site"}`` -> 201 the new contact
- ``GET    /api/cs3/ocm/contacts[?query=]``  contacts at other sites
  ``{"id", "site", "address", "display_name", "mail"}``
- ``POST   /api/cs3/ocm/shares`` ``{"path", "contact", "role"}`` -> 201 share with a contact
  (``contact``: its ``address`` ``id@site``, id, display name or mail)
- ``DELETE /api/cs3/ocm/shares/{id}``        revoke (the other site loses access at once)
- ``POST   /api/cs3/ocm/shares/received/{id}``  accept; ``PATCH`` ``{"state"}`` accept/decline
- ``POST   /api/cs3/ocm/shares/received/{id}/copy`` -> 201 ``{"path"}``: a copy named
  ``<name> (copy from <site>, <date> UTC).ipynb`` in the user's files (when the owner's room
  cannot be reached; never made silently)

``GET /api/cs3/shares`` lists the OCM shares with the local ones (``federated_json``): each
federated entry has ``"kind": "ocm"`` and ``"site"``, and its ids belong to the endpoints above.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web

from jupyter_cs3.backend import Backend
from jupyter_cs3.contents import http_error
from jupyter_cs3.federation import Federation, received_api_path
from jupyter_cs3.sharing import SharingRefused, SharingUnavailable
from storage_bridge.cs3_ocm import Contact, OCMShare, ReceivedOCMShare
from storage_bridge.errors import NotFound, StorageError

log = logging.getLogger(__name__)


def contact_json(c: Contact) -> dict[str, Any]:
    # username/idp too, so the UI can show a contact wherever it shows a user
    return {
        "id": c.id,
        "site": c.site,
        "address": c.address,
        "display_name": c.display_name,
        "mail": c.mail,
        "username": c.address,
        "idp": c.site,
    }


def _someone(user_id: str, site: str, contacts: dict[str, Contact]) -> dict[str, Any]:
    known = contacts.get(user_id)
    if known is not None:
        return contact_json(known)
    return {"id": user_id, "site": site, "username": "", "display_name": "", "idp": site}


async def sent_json(backend: Backend, s: OCMShare, contacts: dict[str, Contact]) -> dict[str, Any]:
    path: str | None = None
    try:
        res = await backend.run(lambda t: backend.storage.stat(t, s.resource_id))
        path = await backend.api_path(res.path)
    except StorageError as exc:  # deleted since it was shared: still listed, so it can be revoked
        log.info("jupyter_cs3: resource of OCM share %s not found: %s", s.id, exc)
    return {
        "id": s.id,
        "kind": "ocm",
        "site": s.grantee_site,
        "path": path,
        "name": s.name,
        "file_id": s.resource_id.to_file_id(),
        "role": s.role,
        "grantee": _someone(s.grantee, s.grantee_site, contacts),
        "ctime": s.ctime,
    }


def received_json(
    backend: Backend, r: ReceivedOCMShare, contacts: dict[str, Contact]
) -> dict[str, Any]:
    return {
        "id": r.id,
        "kind": "ocm",
        "site": r.owner_site,
        "state": r.state,
        "path": received_api_path(backend.federated_folder, r),
        "name": r.name,
        "is_dir": r.is_dir,
        "role": r.role,
        "owner": _someone(r.owner, r.owner_site, contacts),
        "ctime": r.ctime,
    }


async def federated_json(backend: Backend) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(by me, with me) OCM entries for ``GET /api/cs3/shares``; empty without OCM."""
    fed = backend.sharing.federation
    if not fed.available:
        return [], []
    contacts = {c.id: c for c in await fed.contacts()}
    by_me = [await sent_json(backend, s, contacts) for s in await fed.shares()]
    with_me = [received_json(backend, r, contacts) for r in await fed.received()]
    return by_me, with_me


class _OCMHandler(APIHandler):
    auth_resource = "contents"

    @property
    def backend(self) -> Backend:
        backend: Backend = self.settings["cs3_backend"]
        return backend

    @property
    def federation(self) -> Federation:
        return self.backend.sharing.federation

    def _fail(self, exc: Exception, what: str = "") -> web.HTTPError:
        if isinstance(exc, SharingUnavailable):
            return web.HTTPError(501, str(exc))
        if isinstance(exc, SharingRefused):
            return web.HTTPError(exc.status, exc.message)
        if isinstance(exc, StorageError):
            return http_error(exc, what)
        raise exc

    def _body(self) -> dict[str, Any]:
        body = self.get_json_body() or {}
        if not isinstance(body, dict):
            raise web.HTTPError(400, "a JSON object is expected")
        return body

    def _text(self, body: dict[str, Any], key: str, what: str) -> str:
        value = body.get(key)
        if not isinstance(value, str) or not value.strip():
            raise web.HTTPError(400, f"{key} ({what}) is required")
        return value.strip()


class InvitesHandler(_OCMHandler):
    @web.authenticated
    @authorized
    async def post(self) -> None:
        description = self._body().get("description", "")
        if not isinstance(description, str):
            raise web.HTTPError(400, "description must be a string")
        try:
            invite = await self.federation.invite(description)
        except Exception as exc:
            raise self._fail(exc) from exc
        self.set_status(201)
        site = self.federation.site
        self.finish(
            json.dumps({"token": invite.token, "site": site, "expiration": invite.expiration})
        )


class AcceptInviteHandler(_OCMHandler):
    @web.authenticated
    @authorized
    async def post(self) -> None:
        body = self._body()
        token = self._text(body, "token", "the invite token")
        site = self._text(body, "site", "the inviting site's domain")
        try:
            contact = await self.federation.accept_invite(token, site)
        except Exception as exc:
            raise self._fail(exc) from exc
        self.set_status(201)
        self.finish(json.dumps(contact_json(contact)))


class ContactsHandler(_OCMHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        query = self.get_query_argument("query", "").strip()
        try:
            found = await self.federation.contacts(query)
        except Exception as exc:
            raise self._fail(exc) from exc
        self.finish(json.dumps([contact_json(c) for c in found]))


class OCMSharesHandler(_OCMHandler):
    @web.authenticated
    @authorized
    async def post(self) -> None:
        body = self._body()
        path = self._text(body, "path", "what to share").strip("/")
        contact = self._text(body, "contact", "a contact at another site")
        role = body.get("role", "viewer")
        if role not in ("viewer", "editor"):
            raise web.HTTPError(400, "role must be viewer or editor")
        try:
            share = await self.federation.share(path, contact, role)
            contacts = {c.id: c for c in await self.federation.contacts()}
        except NotFound as exc:
            raise web.HTTPError(404, f"No such file: {path}") from exc
        except Exception as exc:
            raise self._fail(exc, path) from exc
        self.set_status(201)
        self.finish(json.dumps(await sent_json(self.backend, share, contacts)))


class OCMShareHandler(_OCMHandler):
    @web.authenticated
    @authorized
    async def delete(self, share_id: str) -> None:
        try:
            await self.federation.unshare(share_id)
        except Exception as exc:
            raise self._fail(exc, share_id) from exc
        self.set_status(204)
        self.finish()


class OCMCopyHandler(_OCMHandler):
    """A clearly named copy in the user's own files, when the owner's room is out of reach."""

    @web.authenticated
    @authorized
    async def post(self, share_id: str) -> None:
        try:
            path = await self.federation.copy_received(share_id)
        except Exception as exc:
            raise self._fail(exc, share_id) from exc
        self.set_status(201)
        self.finish(json.dumps({"path": path}))


class OCMReceivedHandler(_OCMHandler):
    async def _set(self, share_id: str, state: Any) -> None:
        if state not in ("accepted", "rejected"):
            raise web.HTTPError(400, "state must be accepted or rejected")
        try:
            received = await self.federation.set_received_state(share_id, state)
            contacts = {c.id: c for c in await self.federation.contacts()}
        except Exception as exc:
            raise self._fail(exc, share_id) from exc
        self.finish(json.dumps(received_json(self.backend, received, contacts)))

    @web.authenticated
    @authorized
    async def post(self, share_id: str) -> None:
        await self._set(share_id, "accepted")

    @web.authenticated
    @authorized
    async def patch(self, share_id: str) -> None:
        await self._set(share_id, self._body().get("state"))


def handlers(prefix: str) -> list[tuple[str, type[APIHandler]]]:
    return [
        (prefix + "/ocm/invites", InvitesHandler),
        (prefix + "/ocm/invites/accept", AcceptInviteHandler),
        (prefix + "/ocm/contacts", ContactsHandler),
        (prefix + "/ocm/shares", OCMSharesHandler),
        (prefix + "/ocm/shares/received/([^/]+)/copy", OCMCopyHandler),
        (prefix + "/ocm/shares/received/([^/]+)", OCMReceivedHandler),
        (prefix + "/ocm/shares/([^/]+)", OCMShareHandler),
    ]
