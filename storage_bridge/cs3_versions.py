"""CS3 file versions (ListFileVersions / RestoreFileVersion) for Jupyter checkpoints (issue 14).

Not part of the ``Storage`` protocol: only CS3 keeps versions; the local folder has none.
"""

from __future__ import annotations

from dataclasses import dataclass

from cs3.storage.provider.v1beta1 import provider_api_pb2 as sp_pb

from storage_bridge.cs3 import CS3Storage, to_reference
from storage_bridge.types import Ref


@dataclass(frozen=True, slots=True)
class FileVersion:
    key: str
    mtime: float  # unix seconds
    size: int
    etag: str


async def list_versions(storage: CS3Storage, token: str, ref: Ref) -> list[FileVersion]:
    """The stored versions of a file (oldest first), without the current one."""
    resp = await storage.call(
        "ListFileVersions", sp_pb.ListFileVersionsRequest(ref=to_reference(ref)), token,
        idempotent=True,
    )  # fmt: skip
    versions = [FileVersion(v.key, float(v.mtime), int(v.size), v.etag) for v in resp.versions]
    return sorted(versions, key=lambda v: v.mtime)


async def restore_version(
    storage: CS3Storage, token: str, ref: Ref, key: str, *, lock_id: str | None = None
) -> None:
    """Make version ``key`` the current content (storage keeps the replaced one as a version)."""
    await storage.call(
        "RestoreFileVersion",
        sp_pb.RestoreFileVersionRequest(ref=to_reference(ref), key=key, lock_id=lock_id or ""),
        token,
    )
