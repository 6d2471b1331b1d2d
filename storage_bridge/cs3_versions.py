"""CS3 file versions (ListFileVersions / RestoreFileVersion) for Jupyter checkpoints (issue 14).

Not part of the ``Storage`` protocol: only CS3 keeps versions; the local folder has none.
"""

from __future__ import annotations

import re
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
    return sorted(versions, key=_order)


_FRACTION = re.compile(r"\.(\d+)Z$")


def _order(version: FileVersion) -> tuple[float, float]:
    """mtime has whole seconds; reva's keys (``<id>.REV.<RFC 3339 nano>``) order versions made
    within one second (the fraction trims trailing zeros, so it is compared as a number)."""
    match = _FRACTION.search(version.key)
    return version.mtime, float("0." + match.group(1)) if match else 0.0


async def restore_version(
    storage: CS3Storage, token: str, ref: Ref, key: str, *, lock_id: str | None = None
) -> None:
    """Make version ``key`` the current content (storage keeps the replaced one as a version)."""
    await storage.call(
        "RestoreFileVersion",
        sp_pb.RestoreFileVersionRequest(ref=to_reference(ref), key=key, lock_id=lock_id or ""),
        token,
    )
