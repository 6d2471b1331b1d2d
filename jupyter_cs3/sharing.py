"""Sharing, users and file details behind one backend-neutral interface (``Sharing``).

The REST handlers (``shares.py``) and the contents manager talk to ``Backend.sharing`` only;
which storage is behind it is this module's business:

- ``CS3Sharing``: user shares, received shares, user search and file details over a CS3 gateway
  (``storage_bridge.cs3.shares`` plus UpdateShare / UpdateReceivedShare here).
- ``LocalSharing``: a local folder has one user and nobody to share with; every sharing call
  raises ``SharingUnavailable`` (the REST answers 501 with its message). File details work.

Errors meant for people (``SharingRefused``) carry a sentence the UI shows as it is, e.g.
"marie already has access" or "you cannot share what you only view".
"""

from __future__ import annotations

import logging
import posixpath
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

from storage_bridge.base import Storage
from storage_bridge.cs3 import CS3Storage
from storage_bridge.cs3.shares import ReceivedShare, Role, Share
from storage_bridge.errors import (
    AlreadyExists,
    Locked,
    NotFound,
    PermissionDenied,
    StorageError,
)
from storage_bridge.types import Lock, Permissions, Resource, ResourceId, User

T = TypeVar("T")


class Backend(Protocol):
    """What sharing needs of ``jupyter_cs3.backend.Backend`` (named here so that the backend,
    which creates its ``Sharing``, and this module do not import each other)."""

    kind: str
    storage: Storage

    async def run(self, op: Callable[[str], Awaitable[T]]) -> T: ...

    async def user(self) -> User: ...

    async def storage_path(self, api_path: str) -> str: ...


log = logging.getLogger(__name__)

ReceivedState = Literal["accepted", "rejected"]

LOCAL_MESSAGE = (
    "Sharing is not available here: this JupyterLab keeps its files in a local folder, "
    "not in CS3 storage."
)


class SharingUnavailable(Exception):
    """This storage cannot share (HTTP 501); the message says so in plain words."""


class SharingRefused(Exception):
    """A sharing request that cannot be done as asked; ``status`` is the HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class FileInfo:
    path: str  # contents path
    resource: Resource
    owner: User | None
    role: Literal["owner", "editor", "viewer"]
    lock_holder: User | None
    shares: list[Share] | None  # the shares of this file the user may see; None: not allowed


@dataclass(frozen=True, slots=True)
class PublicLink:
    """A public link (CS3 public share): anyone with its token (and password, if set) reads."""

    id: str
    token: str
    resource_id: ResourceId
    password_protected: bool
    expiration: float  # unix seconds; 0: never
    ctime: float


class Sharing(Protocol):
    """What the JupyterLab side needs for sharing, whatever the storage."""

    @property
    def available(self) -> bool:
        """Whether this storage can share at all."""
        ...

    async def user(self, who: str) -> User:
        """A user by username or id, for display (``NotFound`` if there is none)."""
        ...

    async def find_users(self, query: str) -> list[User]: ...

    async def shares(self, api_path: str | None = None) -> list[Share]:
        """Shares the user created (of ``api_path`` only, if given)."""
        ...

    async def received(self) -> list[ReceivedShare]: ...

    async def share(self, api_path: str, grantee: str, role: Role) -> Share: ...

    async def update(self, share_id: str, role: Role) -> Share: ...

    async def unshare(self, share_id: str) -> None: ...

    async def set_received_state(
        self, share_id: str, state: ReceivedState, mount_point: str | None = None
    ) -> ReceivedShare: ...

    async def accept_pending(self) -> int:
        """Accept every pending received share (``CS3Config.auto_accept_shares``); how many."""
        ...

    async def file_info(self, api_path: str) -> FileInfo: ...

    async def links(self, api_path: str | None = None) -> list[PublicLink]:
        """Public links the user created (of ``api_path`` only, if given)."""
        ...

    async def create_link(
        self, api_path: str, *, password: str = "", expiration: float = 0
    ) -> PublicLink:
        """A read-only public link, with an optional password and expiry (unix seconds)."""
        ...

    async def remove_link(self, link_id: str) -> None: ...


def _role_of(
    me: User, owner: User | None, permissions: Permissions
) -> Literal["owner", "editor", "viewer"]:
    if owner is not None and owner.id == me.id:
        return "owner"
    return "editor" if permissions.write else "viewer"


class LocalSharing:
    """A local folder: one user, no sharing; file details from the folder and the hub's locks."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    @property
    def available(self) -> bool:
        return False

    def _unavailable(self) -> SharingUnavailable:
        return SharingUnavailable(LOCAL_MESSAGE)

    async def user(self, who: str) -> User:
        me = await self.backend.user()
        if who in (me.id, me.username):
            return me
        raise NotFound(f"no user {who!r}")

    async def find_users(self, query: str) -> list[User]:
        raise self._unavailable()

    async def shares(self, api_path: str | None = None) -> list[Share]:
        raise self._unavailable()

    async def received(self) -> list[ReceivedShare]:
        raise self._unavailable()

    async def share(self, api_path: str, grantee: str, role: Role) -> Share:
        raise self._unavailable()

    async def update(self, share_id: str, role: Role) -> Share:
        raise self._unavailable()

    async def unshare(self, share_id: str) -> None:
        raise self._unavailable()

    async def set_received_state(
        self, share_id: str, state: ReceivedState, mount_point: str | None = None
    ) -> ReceivedShare:
        raise self._unavailable()

    async def accept_pending(self) -> int:
        return 0

    async def file_info(self, api_path: str) -> FileInfo:
        sp = await self.backend.storage_path(api_path)
        res = await self.backend.run(lambda t: self.backend.storage.stat(t, sp))
        me = await self.backend.user()
        return FileInfo(api_path, res, me, "owner", None, None)

    async def links(self, api_path: str | None = None) -> list[PublicLink]:
        raise self._unavailable()

    async def create_link(
        self, api_path: str, *, password: str = "", expiration: float = 0
    ) -> PublicLink:
        raise self._unavailable()

    async def remove_link(self, link_id: str) -> None:
        raise self._unavailable()


def _locked(exc: Locked) -> SharingRefused:
    # Reva v2.27.7 refuses UpdateShare and RemoveShare on a locked resource (ocis#8474); while a
    # notebook is open for editing the hub holds its lock.
    return SharingRefused(
        409,
        "This file is open for editing right now and storage keeps its shares as they are while "
        "it is locked. Try again when everyone has closed it.",
    )


class CS3Sharing:
    """Sharing over a CS3 gateway (reva v2.27.7), as the Jupyter server's user."""

    def __init__(self, backend: Backend, cs3: CS3Storage) -> None:
        # The backend's own storage, passed typed by whoever built it (no isinstance check).
        self.backend = backend
        self.cs3 = cs3

    @property
    def available(self) -> bool:
        return True

    async def user(self, who: str) -> User:
        from storage_bridge.cs3.shares import get_user

        return await self.backend.run(lambda t: get_user(self.cs3, t, who))

    async def find_users(self, query: str) -> list[User]:
        from storage_bridge.cs3.shares import find_users

        return await self.backend.run(lambda t: find_users(self.cs3, t, query))

    async def shares(self, api_path: str | None = None) -> list[Share]:
        from storage_bridge.cs3.shares import list_shares

        if api_path is None:
            return await self.backend.run(lambda t: list_shares(self.cs3, t))
        sp = await self.backend.storage_path(api_path)
        res = await self.backend.run(lambda t: self.cs3.stat(t, sp))
        return await self.backend.run(lambda t: list_shares(self.cs3, t, res.id))

    async def received(self) -> list[ReceivedShare]:
        from storage_bridge.cs3.shares import list_received_shares

        return await self.backend.run(lambda t: list_received_shares(self.cs3, t))

    async def share(self, api_path: str, grantee: str, role: Role) -> Share:
        from storage_bridge.cs3.shares import create_share

        sp = await self.backend.storage_path(api_path)
        name = posixpath.basename(sp)
        info = await self.backend.run(lambda t: self.cs3.resource_info(t, sp))
        if not info.permission_set.add_grant:
            raise SharingRefused(403, f"You cannot share {name}: you only view it.")
        if role == "editor" and not info.permission_set.initiate_file_upload:
            raise SharingRefused(403, f"You cannot let others edit {name}: you only view it.")
        try:
            who = await self.user(grantee)
        except NotFound as exc:
            raise SharingRefused(404, f"There is no user {grantee!r}.") from exc
        me = await self.backend.user()
        if who.id == me.id:
            raise SharingRefused(400, "You cannot share with yourself.")
        existing = await self.shares(api_path)
        label = who.display_name or who.username
        if any(s.grantee == who.id for s in existing):
            raise SharingRefused(409, f"{label} already has access to {name}.")
        try:
            return await self.backend.run(lambda t: create_share(self.cs3, t, sp, who.id, role))
        except AlreadyExists as exc:
            raise SharingRefused(409, f"{label} already has access to {name}.") from exc
        except PermissionDenied as exc:
            raise SharingRefused(403, f"You may not share {name}: {exc.message}") from exc

    async def _share_by_id(self, token: str, share_id: str) -> Any:
        from cs3.sharing.collaboration.v1beta1 import collaboration_api_pb2 as coll_pb
        from cs3.sharing.collaboration.v1beta1 import resources_pb2 as coll_res

        resp = await self.cs3.call(
            "GetShare",
            coll_pb.GetShareRequest(
                ref=coll_res.ShareReference(id=coll_res.ShareId(opaque_id=share_id))
            ),
            token,
            idempotent=True,
        )
        return resp.share

    async def update(self, share_id: str, role: Role) -> Share:
        from cs3.sharing.collaboration.v1beta1 import collaboration_api_pb2 as coll_pb
        from cs3.sharing.collaboration.v1beta1 import resources_pb2 as coll_res
        from cs3.storage.provider.v1beta1 import resources_pb2 as sp_res
        from google.protobuf import field_mask_pb2

        from storage_bridge.cs3 import from_cs3_id
        from storage_bridge.cs3.shares import role_permissions, share_from_cs3

        async def op(token: str) -> Share:
            share = await self._share_by_id(token, share_id)
            info = await self.cs3.resource_info(token, from_cs3_id(share.resource_id))
            is_dir = info.type == sp_res.RESOURCE_TYPE_CONTAINER
            share.permissions.CopyFrom(
                coll_res.SharePermissions(permissions=role_permissions(role, is_dir=is_dir))
            )
            resp = await self.cs3.call(
                "UpdateShare",
                coll_pb.UpdateShareRequest(
                    share=share, update_mask=field_mask_pb2.FieldMask(paths=["permissions"])
                ),
                token,
            )
            return share_from_cs3(resp.share)

        try:
            return await self.backend.run(op)
        except PermissionDenied as exc:
            raise SharingRefused(403, f"You may not change this share: {exc.message}") from exc
        except Locked as exc:
            raise _locked(exc) from exc

    async def unshare(self, share_id: str) -> None:
        from storage_bridge.cs3.shares import remove_share

        try:
            await self.backend.run(lambda t: remove_share(self.cs3, t, share_id))
        except Locked as exc:
            raise _locked(exc) from exc

    async def set_received_state(
        self, share_id: str, state: ReceivedState, mount_point: str | None = None
    ) -> ReceivedShare:
        from cs3.sharing.collaboration.v1beta1 import collaboration_api_pb2 as coll_pb
        from cs3.sharing.collaboration.v1beta1 import resources_pb2 as coll_res
        from google.protobuf import field_mask_pb2

        from storage_bridge.cs3.shares import accept_received_share, received_from_cs3

        if state == "accepted":
            return await self.backend.run(
                lambda t: accept_received_share(self.cs3, t, share_id, mount_point)
            )

        async def decline(token: str) -> ReceivedShare:
            got = await self.cs3.call(
                "GetReceivedShare",
                coll_pb.GetReceivedShareRequest(
                    ref=coll_res.ShareReference(id=coll_res.ShareId(opaque_id=share_id))
                ),
                token,
                idempotent=True,
            )
            received = got.share
            received.state = coll_res.SHARE_STATE_REJECTED
            resp = await self.cs3.call(
                "UpdateReceivedShare",
                coll_pb.UpdateReceivedShareRequest(
                    share=received, update_mask=field_mask_pb2.FieldMask(paths=["state"])
                ),
                token,
            )
            return received_from_cs3(resp.share)

        return await self.backend.run(decline)

    async def accept_pending(self) -> int:
        pending = [r.share.id for r in await self.received() if r.state == "pending"]
        for share_id in pending:
            await self.set_received_state(share_id, "accepted")
        return len(pending)

    async def file_info(self, api_path: str) -> FileInfo:
        from storage_bridge.cs3.shares import list_shares

        sp = await self.backend.storage_path(api_path)
        res = await self.backend.run(lambda t: self.cs3.stat(t, sp))
        info = await self.backend.run(lambda t: self.cs3.resource_info(t, sp))
        me = await self.backend.user()
        owner = await self._maybe_user(info.owner.opaque_id) if info.HasField("owner") else None
        holder = await self._lock_holder(res.lock)
        shares: list[Share] | None
        try:
            shares = await self.backend.run(lambda t: list_shares(self.cs3, t, res.id))
        except PermissionDenied:
            shares = None  # a sharee may not list the owner's shares
        return FileInfo(api_path, res, owner, _role_of(me, owner, res.permissions), holder, shares)

    async def links(self, api_path: str | None = None) -> list[PublicLink]:
        return await _cs3_links(self, api_path)

    async def create_link(
        self, api_path: str, *, password: str = "", expiration: float = 0
    ) -> PublicLink:
        return await _cs3_create_link(self, api_path, password, expiration)

    async def remove_link(self, link_id: str) -> None:
        await _cs3_remove_link(self, link_id)

    async def _lock_holder(self, lock: Lock | None) -> User | None:
        if lock is None or not lock.user:
            return None  # the hub's room locks carry no user (any editor may refresh them)
        return await self._maybe_user(lock.user)

    async def _maybe_user(self, user_id: str) -> User | None:
        if not user_id:
            return None
        try:
            return await self.user(user_id)
        except StorageError as exc:
            log.info("jupyter_cs3: user %s not resolvable: %s", user_id, exc)
            return User(id=user_id, username="")


def _link(share: Any) -> PublicLink:
    from storage_bridge.cs3 import from_cs3_id

    def ts(t: Any) -> float:
        return float(t.seconds) + float(t.nanos) / 1e9

    return PublicLink(
        id=share.id.opaque_id,
        token=share.token,
        resource_id=from_cs3_id(share.resource_id),
        password_protected=bool(share.password_protected),
        expiration=ts(share.expiration) if share.HasField("expiration") else 0.0,
        ctime=ts(share.ctime),
    )


async def _cs3_links(sharing: CS3Sharing, api_path: str | None) -> list[PublicLink]:
    from cs3.sharing.link.v1beta1 import link_api_pb2 as link_pb

    from storage_bridge.cs3 import to_cs3_id

    filters = []
    if api_path is not None:
        sp = await sharing.backend.storage_path(api_path)
        res = await sharing.backend.run(lambda t: sharing.cs3.stat(t, sp))
        filters.append(
            link_pb.ListPublicSharesRequest.Filter(
                type=link_pb.ListPublicSharesRequest.Filter.TYPE_RESOURCE_ID,
                resource_id=to_cs3_id(res.id),
            )
        )

    async def op(token: str) -> list[PublicLink]:
        resp = await sharing.cs3.call(
            "ListPublicShares",
            link_pb.ListPublicSharesRequest(filters=filters),
            token,
            idempotent=True,
        )
        return [_link(s) for s in resp.share]

    return await sharing.backend.run(op)


async def _cs3_create_link(
    sharing: CS3Sharing, api_path: str, password: str, expiration: float
) -> PublicLink:
    from cs3.sharing.link.v1beta1 import link_api_pb2 as link_pb
    from cs3.sharing.link.v1beta1 import resources_pb2 as link_res
    from cs3.storage.provider.v1beta1 import resources_pb2 as sp_res
    from cs3.types.v1beta1 import types_pb2

    sp = await sharing.backend.storage_path(api_path)
    name = posixpath.basename(sp)
    if expiration and expiration <= time.time():
        raise SharingRefused(400, "The expiry date must be in the future.")

    async def op(token: str) -> PublicLink:
        info = await sharing.cs3.resource_info(token, sp)
        if not info.permission_set.add_grant:
            raise SharingRefused(403, f"You cannot share {name}: you only view it.")
        read_only = sp_res.ResourcePermissions(
            stat=True, get_path=True, initiate_file_download=True, list_container=True
        )
        grant = link_res.Grant(
            permissions=link_res.PublicSharePermissions(permissions=read_only),
            password=password,
        )
        if expiration:
            grant.expiration.CopyFrom(
                types_pb2.Timestamp(seconds=int(expiration), nanos=int(expiration % 1 * 1e9))
            )
        resp = await sharing.cs3.call(
            "CreatePublicShare",
            link_pb.CreatePublicShareRequest(resource_info=info, grant=grant),
            token,
        )
        return _link(resp.share)

    return await sharing.backend.run(op)


async def _cs3_remove_link(sharing: CS3Sharing, link_id: str) -> None:
    from cs3.sharing.link.v1beta1 import link_api_pb2 as link_pb
    from cs3.sharing.link.v1beta1 import resources_pb2 as link_res

    ref = link_res.PublicShareReference(id=link_res.PublicShareId(opaque_id=link_id))

    async def op(token: str) -> None:
        await sharing.cs3.call(
            "RemovePublicShare", link_pb.RemovePublicShareRequest(ref=ref), token
        )

    await sharing.backend.run(op)


def make_sharing(backend: Backend, cs3: CS3Storage | None) -> Sharing:
    """``CS3Sharing`` over ``cs3`` (the backend's storage) if there is one, else local."""
    if cs3 is not None:
        return CS3Sharing(backend, cs3)
    return LocalSharing(backend)
