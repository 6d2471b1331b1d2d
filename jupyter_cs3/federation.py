"""Sharing across sites (OCM) behind one interface (``Federation``), next to ``Sharing``.

``Sharing.federation`` gives it; the REST handlers (``ocm_rest.py``) talk to it only:

- ``CS3Federation``: invites, federated contacts and OCM shares over the user's own CS3 gateway
  (``storage_bridge.cs3_ocm``); the gateway talks to the other site.
- ``LocalFederation``: a local folder has no site; every call raises ``SharingUnavailable``.

Received OCM shares are opened through our own gateway at ``/ocm/<share id>`` (reva's
``ocmreceived`` storage provider); the contents path of that is ``<federated_folder>/<share id>``
for a folder and ``<federated_folder>/<share id>/<file name>`` for a file (JupyterLab picks the
editor by the file's extension, so a shared notebook keeps its name). ``Backend.storage_path`` maps
them (``ocm_storage_path``).

Errors meant for people are ``SharingRefused`` with a sentence the UI shows as it is.
"""

from __future__ import annotations

import posixpath
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Literal, Protocol, TypeVar

from jupyter_cs3.sharing_errors import SharingRefused, SharingUnavailable
from storage_bridge.base import Storage
from storage_bridge.cs3.shares import Role
from storage_bridge.cs3_ocm import Contact, Invite, OCMShare, ReceivedOCMShare
from storage_bridge.errors import AlreadyExists, NotFound, PermissionDenied, StorageError

if TYPE_CHECKING:
    from storage_bridge.cs3 import CS3Storage

T = TypeVar("T")


class Backend(Protocol):
    """What federation needs of ``jupyter_cs3.backend.Backend``."""

    kind: str
    storage: Storage

    async def run(self, op: Callable[[str], Awaitable[T]]) -> T: ...

    async def storage_path(self, api_path: str) -> str: ...


OCM_LOCAL_MESSAGE = (
    "Sharing with other sites is not available here: this JupyterLab keeps its files in a local "
    "folder, not in CS3 storage."
)


class Federation(Protocol):
    """What the JupyterLab side needs to share across sites (OCM), whatever the storage."""

    @property
    def available(self) -> bool: ...

    @property
    def site(self) -> str:
        """Our own OCM domain, for invites ("" if not configured)."""
        ...

    async def invite(self, description: str = "") -> Invite: ...

    async def accept_invite(self, token: str, site: str) -> Contact: ...

    async def contacts(self, query: str = "") -> list[Contact]: ...

    async def share(self, api_path: str, contact: str, role: Role) -> OCMShare:
        """Share with a contact (``id@site``, or its id, display name or mail)."""
        ...

    async def shares(self) -> list[OCMShare]: ...

    async def unshare(self, share_id: str) -> None: ...

    async def received(self) -> list[ReceivedOCMShare]: ...

    async def set_received_state(
        self, share_id: str, state: Literal["accepted", "rejected"]
    ) -> ReceivedOCMShare: ...

    async def copy_received(self, share_id: str) -> str:
        """A clearly named copy of a received notebook in the user's own files; its contents
        path. For when live co-editing with the owner's site is not possible."""
        ...


def _unavailable() -> Exception:
    return SharingUnavailable(OCM_LOCAL_MESSAGE)


def _refused(status: int, message: str) -> Exception:
    return SharingRefused(status, message)


class LocalFederation:
    """A local folder: no site, nobody to federate with."""

    @property
    def available(self) -> bool:
        return False

    @property
    def site(self) -> str:
        return ""

    async def invite(self, description: str = "") -> Invite:
        raise _unavailable()

    async def accept_invite(self, token: str, site: str) -> Contact:
        raise _unavailable()

    async def contacts(self, query: str = "") -> list[Contact]:
        raise _unavailable()

    async def share(self, api_path: str, contact: str, role: Role) -> OCMShare:
        raise _unavailable()

    async def shares(self) -> list[OCMShare]:
        raise _unavailable()

    async def unshare(self, share_id: str) -> None:
        raise _unavailable()

    async def received(self) -> list[ReceivedOCMShare]:
        raise _unavailable()

    async def set_received_state(
        self, share_id: str, state: Literal["accepted", "rejected"]
    ) -> ReceivedOCMShare:
        raise _unavailable()

    async def copy_received(self, share_id: str) -> str:
        raise _unavailable()


OCM_OFF_MESSAGE = (
    "Sharing with other sites is not set up on this server (CS3Config.ocm_site is empty): ask "
    "the administrator to join this site to the mesh."
)


class CS3Federation:
    """OCM over the user's CS3 gateway (reva v2.27.7), as the Jupyter server's user.

    Off (``available`` False, every call refused with 501) unless ``CS3Config.ocm_site`` names
    this site: a gateway without OCM services answers OCM calls with errors, and the Shares panel
    must keep working there.
    """

    def __init__(self, backend: Backend, cs3: CS3Storage, site: str) -> None:
        # ``cs3``: the backend's own storage, passed typed (no isinstance check, as CS3Sharing)
        self.backend = backend
        self.cs3 = cs3
        self._site = site

    @property
    def available(self) -> bool:
        return bool(self._site)

    @property
    def site(self) -> str:
        return self._site

    def _check(self) -> None:
        if not self._site:
            raise SharingUnavailable(OCM_OFF_MESSAGE)

    async def invite(self, description: str = "") -> Invite:
        self._check()
        from storage_bridge.cs3_ocm import generate_invite

        return await self.backend.run(lambda t: generate_invite(self.cs3, t, description))

    async def accept_invite(self, token: str, site: str) -> Contact:
        self._check()
        from storage_bridge.cs3_ocm import accept_invite

        if site and site == self._site:
            raise _refused(400, "This invite is from your own site: share with them directly.")
        try:
            return await self.backend.run(lambda t: accept_invite(self.cs3, t, token, site))
        except NotFound as exc:
            if "mesh" in str(exc):
                raise _refused(404, f"There is no site {site!r} in this mesh.") from exc
            raise _refused(
                404, f"{site} does not know this invite (mistyped, expired or used already?)."
            ) from exc
        except AlreadyExists as exc:
            raise _refused(409, "You are already in contact with whoever sent it.") from exc

    async def contacts(self, query: str = "") -> list[Contact]:
        self._check()
        from storage_bridge.cs3_ocm import contacts

        return await self.backend.run(lambda t: contacts(self.cs3, t, query))

    async def share(self, api_path: str, contact: str, role: Role) -> OCMShare:
        self._check()
        from storage_bridge.cs3 import from_cs3_id
        from storage_bridge.cs3_ocm import create_share, find_contact

        sp = await self.backend.storage_path(api_path)
        name = posixpath.basename(sp)
        info = await self.backend.run(lambda t: self.cs3.resource_info(t, sp))
        if not info.permission_set.add_grant:
            raise _refused(403, f"You cannot share {name}: you only view it.")
        if role == "editor" and not info.permission_set.initiate_file_upload:
            raise _refused(403, f"You cannot let others edit {name}: you only view it.")
        try:
            who = await self.backend.run(lambda t: find_contact(self.cs3, t, contact))
        except NotFound as exc:
            raise _refused(
                404, f"{contact!r} is not one of your contacts at other sites: invite them first."
            ) from exc
        label = who.display_name or who.address
        rid = from_cs3_id(info.id)
        if any(s.grantee == who.id and s.resource_id == rid for s in await self.shares()):
            raise _refused(409, f"{label} already has access to {name}.")
        try:
            return await self.backend.run(lambda t: create_share(self.cs3, t, sp, who, role))
        except PermissionDenied as exc:
            raise _refused(403, f"You may not share {name}: {exc.message}") from exc

    async def shares(self) -> list[OCMShare]:
        self._check()
        from storage_bridge.cs3_ocm import list_shares

        return await self.backend.run(lambda t: list_shares(self.cs3, t))

    async def unshare(self, share_id: str) -> None:
        self._check()
        from storage_bridge.cs3_ocm import remove_share

        await self.backend.run(lambda t: remove_share(self.cs3, t, share_id))

    async def received(self) -> list[ReceivedOCMShare]:
        self._check()
        from storage_bridge.cs3_ocm import list_received

        return await self.backend.run(lambda t: list_received(self.cs3, t))

    async def set_received_state(
        self, share_id: str, state: Literal["accepted", "rejected"]
    ) -> ReceivedOCMShare:
        self._check()
        from storage_bridge.cs3_ocm import set_received_state

        return await self.backend.run(lambda t: set_received_state(self.cs3, t, share_id, state))

    async def copy_received(self, share_id: str) -> str:
        self._check()
        from storage_bridge.cs3_ocm import OCM_MOUNT

        share = next((r for r in await self.received() if r.id == share_id), None)
        if share is None or share.state != "accepted":
            raise _refused(404, "This share from another site is gone or not accepted.")
        if share.is_dir:
            raise _refused(400, "Only a shared file can be copied this way, not a folder.")
        try:
            data, _ = await self.backend.run(lambda t: self.cs3.read(t, f"{OCM_MOUNT}/{share_id}"))
        except StorageError as exc:
            raise _refused(
                503, f"{share.owner_site} cannot be reached to copy {share.name}: {exc.message}"
            ) from exc
        stem, ext = posixpath.splitext(share.name)
        stamp = time.strftime("%Y-%m-%d %H.%M", time.gmtime())
        for n in range(1, 100):
            extra = f" {n}" if n > 1 else ""
            name = f"{stem} (copy from {share.owner_site}, {stamp} UTC{extra}){ext}"
            if await self._create(name, data):
                return name
        raise _refused(409, f"Too many copies of {share.name} already.")

    async def _create(self, api_path: str, data: bytes) -> bool:
        """Create ``api_path`` with ``data``; False if it exists already."""
        target = await self.backend.storage_path(api_path)
        try:
            await self.backend.run(lambda t: self.cs3.create(t, target, data))
        except AlreadyExists:
            return False
        return True


def received_api_path(folder: str, share: ReceivedOCMShare) -> str | None:
    """The contents path an accepted received share opens at (None while not accepted)."""
    if share.state != "accepted" or not folder:
        return None
    base = posixpath.join(folder, share.id)
    return base if share.is_dir else posixpath.join(base, share.name)
