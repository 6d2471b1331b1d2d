"""User shares and user lookup over a CS3 gateway (for the JupyterLab side).

Small on purpose: share a resource with a user as viewer or editor, list what one shared and
received, accept a received share, find users. Every call runs as the token's user through the
``CS3Storage`` connection.

Reva v2.27.7 facts these helpers follow:

- Roles are permission sets. A *file* may not be shared with ``create_container``, ``delete`` or
  ``move`` ("cannot set the requested permissions on that type of resource"), so the editor role
  differs for files and folders (reva's FileEditor vs Editor roles).
- ``ListExistingShares``/``ListExistingReceivedShares`` are not implemented in v2: plain
  ``ListShares``/``ListReceivedShares`` are used.
- A received share shows up under ``/users/<grantee id>/Shares/<mount point>`` once accepted.
- The pinned 20241105 stubs have ``FindUsersRequest.filter: string`` (a query), not ``filters``.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Any, Literal

from cs3.identity.user.v1beta1 import resources_pb2 as user_res
from cs3.identity.user.v1beta1 import user_api_pb2 as user_pb
from cs3.sharing.collaboration.v1beta1 import collaboration_api_pb2 as coll_pb
from cs3.sharing.collaboration.v1beta1 import resources_pb2 as coll_res
from cs3.storage.provider.v1beta1 import resources_pb2 as sp_res
from google.protobuf import field_mask_pb2

from storage_bridge.cs3.conversions import from_cs3_id, permissions_from_cs3, to_cs3_id
from storage_bridge.cs3.storage import CS3Storage
from storage_bridge.errors import InvalidArgument, NotFound
from storage_bridge.types import Permissions, Ref, ResourceId, User

Role = Literal["viewer", "editor"]
ShareState = Literal["pending", "accepted", "rejected", "invalid"]

_STATES: dict[int, ShareState] = {
    coll_res.SHARE_STATE_PENDING: "pending",
    coll_res.SHARE_STATE_ACCEPTED: "accepted",
    coll_res.SHARE_STATE_REJECTED: "rejected",
}

_VIEWER = {
    "stat",
    "get_path",
    "get_quota",
    "initiate_file_download",
    "list_container",
    "list_recycle",
}
_FILE_EDITOR = _VIEWER | {"initiate_file_upload", "restore_recycle_item"}
_FOLDER_EDITOR = _FILE_EDITOR | {"create_container", "delete", "move"}


def role_permissions(role: Role, *, is_dir: bool) -> Any:
    """The CS3 ResourcePermissions of ``role`` for a file or a folder."""
    if role == "viewer":
        names = _VIEWER
    elif role == "editor":
        names = _FOLDER_EDITOR if is_dir else _FILE_EDITOR
    else:
        raise InvalidArgument(f"unknown role {role!r} (viewer|editor)")
    return sp_res.ResourcePermissions(**dict.fromkeys(names, True))


def role_of(permissions: Permissions) -> Role:
    return "editor" if permissions.write else "viewer"


@dataclass(frozen=True, slots=True)
class Share:
    id: str
    resource_id: ResourceId
    grantee: str  # user opaque id
    permissions: Permissions
    role: Role
    owner: str  # user opaque id of the resource's owner
    creator: str  # user opaque id of who shared it
    ctime: float


@dataclass(frozen=True, slots=True)
class ReceivedShare:
    share: Share
    state: ShareState
    mount_point: str  # name under the grantee's Shares folder ("" until accepted)


def share_from_cs3(s: Any) -> Share:
    perms = permissions_from_cs3(s.permissions.permissions)
    return Share(
        id=s.id.opaque_id,
        resource_id=from_cs3_id(s.resource_id),
        grantee=s.grantee.user_id.opaque_id if s.grantee.HasField("user_id") else "",
        permissions=perms,
        role=role_of(perms),
        owner=s.owner.opaque_id,
        creator=s.creator.opaque_id,
        ctime=float(s.ctime.seconds) + float(s.ctime.nanos) / 1e9,
    )


def received_from_cs3(r: Any) -> ReceivedShare:
    return ReceivedShare(
        share=share_from_cs3(r.share),
        state=_STATES.get(r.state, "invalid"),
        mount_point=r.mount_point.path,
    )


def received_share_path(
    storage: CS3Storage, grantee_id: str, mount_point: str, shares_folder: str = "Shares"
) -> str:
    """Where an accepted share appears for its grantee (reva's share jail layout)."""
    home = storage.settings.personal_space_path.format(owner_id=grantee_id)
    return posixpath.join(home, shares_folder, mount_point)


def _user(u: Any) -> User:
    return User(
        id=u.id.opaque_id,
        username=u.username,
        display_name=u.display_name,
        idp=u.id.idp,
        mail=u.mail,
    )


async def _lookup_user(storage: CS3Storage, token: str, who: str) -> Any:
    """A CS3 User by username, falling back to the opaque id."""
    try:
        resp = await storage.call(
            "GetUserByClaim",
            user_pb.GetUserByClaimRequest(
                claim="username", value=who, skip_fetching_user_groups=True
            ),
            token,
            idempotent=True,
        )
        return resp.user
    except NotFound:
        pass
    resp = await storage.call(
        "GetUser",
        user_pb.GetUserRequest(
            user_id=user_res.UserId(opaque_id=who), skip_fetching_user_groups=True
        ),
        token,
        idempotent=True,
    )
    return resp.user


async def get_user(storage: CS3Storage, token: str, who: str) -> User:
    """A user by username or opaque id (``NotFound`` if there is none)."""
    return _user(await _lookup_user(storage, token, who))


async def find_users(storage: CS3Storage, token: str, query: str) -> list[User]:
    """Users whose name, mail or id contains ``query`` (server-side search)."""
    resp = await storage.call(
        "FindUsers",
        user_pb.FindUsersRequest(filter=query, skip_fetching_user_groups=True),
        token,
        idempotent=True,
    )
    return [_user(u) for u in resp.users]


async def create_share(
    storage: CS3Storage, token: str, ref: Ref, grantee: str, role: Role
) -> Share:
    """Share ``ref`` with the user ``grantee`` (username or user id) as viewer or editor."""
    info = await storage.resource_info(token, ref)
    user = await _lookup_user(storage, token, grantee)
    grant = coll_res.ShareGrant(
        grantee=sp_res.Grantee(type=sp_res.GRANTEE_TYPE_USER, user_id=user.id),
        permissions=coll_res.SharePermissions(
            permissions=role_permissions(role, is_dir=info.type == sp_res.RESOURCE_TYPE_CONTAINER)
        ),
    )
    resp = await storage.call(
        "CreateShare", coll_pb.CreateShareRequest(resource_info=info, grant=grant), token
    )
    return share_from_cs3(resp.share)


async def list_shares(storage: CS3Storage, token: str, ref: Ref | None = None) -> list[Share]:
    """Shares the token's user created (of ``ref`` only, if given)."""
    filters = []
    if ref is not None:
        rid = ref if isinstance(ref, ResourceId) else (await storage.stat(token, ref)).id
        filters.append(
            coll_res.Filter(type=coll_res.Filter.TYPE_RESOURCE_ID, resource_id=to_cs3_id(rid))
        )
    resp = await storage.call(
        "ListShares", coll_pb.ListSharesRequest(filters=filters), token, idempotent=True
    )
    return [share_from_cs3(s) for s in resp.shares]


async def list_received_shares(storage: CS3Storage, token: str) -> list[ReceivedShare]:
    """Shares others gave the token's user, with their state and mount point."""
    resp = await storage.call(
        "ListReceivedShares", coll_pb.ListReceivedSharesRequest(), token, idempotent=True
    )
    return [received_from_cs3(r) for r in resp.shares]


async def accept_received_share(
    storage: CS3Storage, token: str, share_id: str, mount_point: str | None = None
) -> ReceivedShare:
    """Accept a received share; it then appears under the user's Shares folder.

    Without ``mount_point`` reva picks one (the resource's name, made unique).
    """
    got = await storage.call(
        "GetReceivedShare",
        coll_pb.GetReceivedShareRequest(
            ref=coll_res.ShareReference(id=coll_res.ShareId(opaque_id=share_id))
        ),
        token,
        idempotent=True,
    )
    received = got.share
    received.state = coll_res.SHARE_STATE_ACCEPTED
    paths = ["state"]
    if mount_point is not None:
        received.mount_point.path = mount_point
        paths.append("mount_point")
    resp = await storage.call(
        "UpdateReceivedShare",
        coll_pb.UpdateReceivedShareRequest(
            share=received, update_mask=field_mask_pb2.FieldMask(paths=paths)
        ),
        token,
    )
    return received_from_cs3(resp.share)


async def remove_share(storage: CS3Storage, token: str, share_id: str) -> None:
    await storage.call(
        "RemoveShare",
        coll_pb.RemoveShareRequest(
            ref=coll_res.ShareReference(id=coll_res.ShareId(opaque_id=share_id))
        ),
        token,
    )
