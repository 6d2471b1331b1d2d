"""Rooms of notebooks shared from other sites live at the **owner site's** hub.

When the user opens a notebook a colleague at another site shared with them (OCM, contents path
under ``CS3Config.federated_folder``, storage path ``/ocm/<share id>``), the collaboration relay
does not ask our own hub: a room there would be a second, silent copy of the owner's room. It
goes to the hub of the owner's site (``CS3Config.ocm_hubs``: site domain -> hub URL) with the
credential OCM gave us for that share, ``ocmshare:<share id at the owner site>:<secret>``, which
that hub exchanges at its own gateway for a token scoped to the share
(``collab_server.ocm_auth``). The hub path is ``/public/<share id>``: stat-ed with that token it
is the owner's resource, so both sites' users get the same ``fileId`` and ``sessionId``.

The credential never reaches the browser: it only travels from this server to that hub.
If no hub is configured for the owner's site, or it cannot be reached, the session is refused
with a message saying so (no local room, no fork). See docs/ARCHITECTURE.md §9.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit, urlunsplit

from jupyter_cs3.sharing_errors import SharingRefused
from storage_bridge.cs3_ocm import OCM_MOUNT, ocm_credential, ocm_public_path

if TYPE_CHECKING:
    from jupyter_cs3.backend import Backend

NO_HUB = (
    "This notebook was shared from {site}, and live co-editing with {site} is not set up on this "
    "server (CS3Config.ocm_hubs has no hub for it). It was not opened in a room here, so nobody "
    "edits a second copy: open it without collaboration, or make a marked copy in your own files "
    "(Shares panel, or POST /api/cs3/ocm/shares/received/<id>/copy)."
)


@dataclass(frozen=True, slots=True)
class RemoteRoute:
    site: str
    hub_url: str
    credential: str = field(repr=False)
    hub_path: str  # the storage path the owner site's hub stats with the scoped token

    def http_url(self, path: str) -> str:
        return self.hub_url.rstrip("/") + path

    def ws_url(self, path: str) -> str:
        parts = urlsplit(self.hub_url.rstrip("/") + path)
        scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
        return urlunsplit((scheme, parts.netloc, parts.path, parts.query, ""))

    def session_url(self) -> str:
        return self.http_url("/api/collaboration/session/" + quote(self.hub_path, safe="/"))


class RemoteHubs:
    """Which rooms live at another site's hub, and how to reach them."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._rooms: dict[str, RemoteRoute] = {}  # fileId -> route (learnt at session time)

    async def route_for(self, storage_path: str) -> RemoteRoute | None:
        """The owner site's hub for a received OCM share's path; None for our own files."""
        parts = storage_path.strip("/").split("/")
        if len(parts) < 2 or "/" + parts[0] != OCM_MOUNT:
            return None
        received = await self.backend.sharing.federation.received()
        share = next((r for r in received if r.id == parts[1]), None)
        if share is None or share.state != "accepted":
            raise SharingRefused(404, "This share from another site is gone or not accepted.")
        if len(parts) > 2:
            raise SharingRefused(
                409, "Live co-editing across sites works for shared notebooks, not files in "
                "shared folders yet: open it without collaboration."
            )  # fmt: skip
        hub = self.backend.config.ocm_hubs.get(share.owner_site)
        if not hub:
            raise SharingRefused(409, NO_HUB.format(site=share.owner_site))
        return RemoteRoute(
            share.owner_site, hub, ocm_credential(share.remote_id, share.secret),
            ocm_public_path(share.remote_id),
        )  # fmt: skip

    def remember(self, file_id: str, route: RemoteRoute) -> None:
        self._rooms[file_id] = route

    def route_of_room(self, room: str) -> RemoteRoute | None:
        """For ``format:type:fileId``: the remote route if that room lives at another site."""
        return self._rooms.get(room.rsplit(":", 1)[-1])
