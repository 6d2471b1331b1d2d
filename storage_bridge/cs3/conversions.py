"""Conversions between the CS3 API's protobuf messages and ``storage_bridge.types``."""

from __future__ import annotations

import posixpath
from typing import Any

from cs3.identity.user.v1beta1 import resources_pb2 as user_res
from cs3.storage.provider.v1beta1 import resources_pb2 as sp_res
from cs3.types.v1beta1 import types_pb2

from storage_bridge.errors import InvalidArgument
from storage_bridge.types import Lock, LockType, Permissions, Ref, ResourceId, User

# Reva's share jail (utils.ShareStorageProviderID / ShareStorageSpaceID): received shares are
# listed there with ids whose opaque id is the *share* id, not the shared resource's id.
SHARE_JAIL_ID = "a0ca6a90-a365-4782-871e-d44447bbc668"

CHECKSUM_NAMES = {
    sp_res.RESOURCE_CHECKSUM_TYPE_ADLER32: "adler32",
    sp_res.RESOURCE_CHECKSUM_TYPE_MD5: "md5",
    sp_res.RESOURCE_CHECKSUM_TYPE_SHA1: "sha1",
}


def to_cs3_id(rid: ResourceId) -> Any:
    return sp_res.ResourceId(
        storage_id=rid.storage_id, opaque_id=rid.opaque_id, space_id=rid.space_id
    )


def from_cs3_id(cid: Any) -> ResourceId:
    return ResourceId(storage_id=cid.storage_id, opaque_id=cid.opaque_id, space_id=cid.space_id)


def is_share_jail_id(rid: ResourceId) -> bool:
    """An id in reva's share jail that stands for a received share (not the jail root)."""
    return (
        rid.storage_id == SHARE_JAIL_ID
        and rid.space_id == SHARE_JAIL_ID
        and rid.opaque_id not in ("", SHARE_JAIL_ID)
    )


def normpath(path: str) -> str:
    if not isinstance(path, str) or not path.startswith("/"):
        raise InvalidArgument(f"not an absolute path: {path!r}")
    if "\x00" in path:
        raise InvalidArgument("path contains a NUL byte")
    norm = posixpath.normpath(path)
    return "/" + norm.lstrip("/")


def to_reference(ref: Ref, *, relative: bool = False) -> Any:
    """A CS3 Reference. ``relative`` adds path "." to an id (reva v2's relative reference):
    InitiateFileDownload by a bare id hands out a broken endpoint in reva v2.27.7, while Stat and
    ListContainer report full space paths only for bare ids."""
    if isinstance(ref, ResourceId):
        return sp_res.Reference(resource_id=to_cs3_id(ref), path="." if relative else "")
    return sp_res.Reference(path=normpath(ref))


def seconds_of(ts: Any) -> float:
    return float(ts.seconds) + float(ts.nanos) / 1e9


def timestamp(t: float) -> Any:
    seconds = int(t)
    return types_pb2.Timestamp(seconds=seconds, nanos=int((t - seconds) * 1e9))


def permissions_from_cs3(ps: Any) -> Permissions:
    return Permissions(
        stat=ps.stat,
        read=ps.initiate_file_download,
        write=ps.initiate_file_upload,
        list=ps.list_container,
        create_container=ps.create_container,
        delete=ps.delete,
        move=ps.move,
    )


def lock_from_cs3(lock: Any) -> Lock | None:
    if not lock.lock_id:
        return None
    try:
        kind = LockType(lock.type)
    except ValueError:
        kind = LockType.WRITE
    return Lock(
        lock_id=lock.lock_id,
        app_name=lock.app_name,
        user=lock.user.opaque_id if lock.HasField("user") else "",
        expiration=seconds_of(lock.expiration) if lock.HasField("expiration") else 0.0,
        type=kind,
    )


def user_from_cs3(user: Any) -> User:
    return User(
        id=user.id.opaque_id,
        username=user.username,
        display_name=user.display_name,
        idp=user.id.idp,
        mail=user.mail,
    )


def user_id(user: User) -> Any:
    return user_res.UserId(idp=user.idp, opaque_id=user.id, type=user_res.USER_TYPE_PRIMARY)
