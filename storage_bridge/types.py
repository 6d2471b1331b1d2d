"""Value types of the storage contract: resource ids, resources, locks, users."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from enum import Enum

from storage_bridge.errors import InvalidArgument


@dataclass(frozen=True, slots=True)
class ResourceId:
    """A storage-wide stable id; survives renames (CS3 ResourceId)."""

    storage_id: str
    opaque_id: str
    space_id: str = ""

    def to_file_id(self) -> str:
        """Opaque, URL-safe id handed to clients as ``fileId`` (no ``/ ? #``)."""
        raw = f"{self.storage_id}${self.space_id}!{self.opaque_id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def from_file_id(cls, file_id: str) -> ResourceId:
        try:
            padded = file_id + "=" * (-len(file_id) % 4)
            raw = base64.urlsafe_b64decode(padded.encode()).decode()
            storage_id, rest = raw.split("$", 1)
            space_id, opaque_id = rest.split("!", 1)
        except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
            raise InvalidArgument(f"malformed file id {file_id!r}") from exc
        if not storage_id or not opaque_id:
            raise InvalidArgument(f"malformed file id {file_id!r}")
        return cls(storage_id=storage_id, opaque_id=opaque_id, space_id=space_id)


# A reference is either a path (as the user sees it) or a resource id.
Ref = ResourceId | str


class LockType(Enum):
    SHARED = 1  # advisory
    WRITE = 2  # anyone reads, only the holder writes
    EXCLUSIVE = 3


@dataclass(frozen=True, slots=True)
class Lock:
    lock_id: str
    app_name: str
    user: str  # user id (opaque id) of the holder, "" when unknown
    expiration: float  # unix time (s); 0 means no expiry
    type: LockType = LockType.WRITE


@dataclass(frozen=True, slots=True)
class Permissions:
    """The subset of CS3 ResourcePermissions the hub reasons about."""

    stat: bool = True
    read: bool = True  # initiate_file_download
    write: bool = False  # initiate_file_upload
    list: bool = False  # list_container
    create_container: bool = False
    delete: bool = False
    move: bool = False

    @classmethod
    def owner(cls) -> Permissions:
        return cls(True, True, True, True, True, True, True)

    @classmethod
    def viewer(cls) -> Permissions:
        return cls(stat=True, read=True, write=False, list=True)


@dataclass(frozen=True, slots=True)
class Resource:
    id: ResourceId
    path: str  # the path the caller used or the storage reports
    name: str
    is_dir: bool
    etag: str
    mtime: float  # unix seconds
    size: int
    permissions: Permissions = field(default_factory=Permissions.owner)
    lock: Lock | None = None
    checksum: str = ""  # e.g. "sha256:<hex>" when the backend knows it
    owner: str = ""  # user id of the owner, when the backend says


@dataclass(frozen=True, slots=True)
class User:
    id: str  # opaque id, stable
    username: str
    display_name: str = ""
    idp: str = ""
    mail: str = ""
