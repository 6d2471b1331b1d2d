"""The ``cs3`` storage backend: a CS3 gateway (Reva) over gRPC, asyncio end to end.

- ``channel``: the gateway connection (``grpc.aio`` channel with the ``cs3apis`` stubs pinned to
  the server's API date; the user's token as ``x-access-token`` metadata) and the retries.
- ``transfers``: data goes ``InitiateFileDownload`` / ``InitiateFileUpload`` then GET / PUT on the
  returned endpoint with ``httpx.AsyncClient``.
- ``identity``: tokens are verified with ``WhoAmI`` (cached briefly): the Reva v2 gateway does not
  reject an invalid token by itself (it answers e.g. NOT_FOUND), so without this an expired token
  would look like a missing file.
- ``locks``: CS3 lock messages; ``conversions``: protobuf <-> ``storage_bridge.types``;
  ``settings``: ``CS3Settings``; ``storage``: ``CS3Storage``, the ``Storage`` protocol.
- Idempotent calls (stat, read, list, get_lock, whoami) are retried with exponential backoff on
  ``Unavailable``; writes, moves, deletes and lock changes are never retried.

Semantics verified against reva v2.27.7 with the ``ocis`` (decomposedfs) driver, see
ARCHITECTURE §8 and ``errors`` for how refusals are reported. Shares and user lookup are
``shares`` (not imported here: the Storage protocol does not need them).
"""

from storage_bridge.cs3.conversions import (
    SHARE_JAIL_ID,
    from_cs3_id,
    is_share_jail_id,
    lock_from_cs3,
    permissions_from_cs3,
    to_cs3_id,
    to_reference,
    user_from_cs3,
)
from storage_bridge.cs3.identity import jwt_expiry
from storage_bridge.cs3.settings import CS3Settings
from storage_bridge.cs3.storage import CS3Storage

__all__ = [
    "SHARE_JAIL_ID",
    "CS3Settings",
    "CS3Storage",
    "from_cs3_id",
    "is_share_jail_id",
    "jwt_expiry",
    "lock_from_cs3",
    "permissions_from_cs3",
    "to_cs3_id",
    "to_reference",
    "user_from_cs3",
]
