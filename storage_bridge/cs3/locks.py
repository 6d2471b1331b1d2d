"""Lock messages of the ``cs3`` backend (SetLock, RefreshLock, Unlock, GetLock).

Reva v2's gateway resolves lock calls only for id-based references, so every call here takes
one (``CS3Storage._id_ref``). See ``storage_bridge.cs3.errors`` for how refusals map to
``Locked``.
"""

from __future__ import annotations

import time
from typing import Any

from cs3.storage.provider.v1beta1 import provider_api_pb2 as sp_pb
from cs3.storage.provider.v1beta1 import resources_pb2 as sp_res

from storage_bridge.cs3.channel import Gateway
from storage_bridge.cs3.conversions import lock_from_cs3, timestamp, user_id
from storage_bridge.cs3.errors import CODE_NOT_FOUND, CODE_OK, Op, status_error
from storage_bridge.errors import InvalidArgument
from storage_bridge.types import Lock, User


def lock_message(lock_id: str, app_name: str, user: User | None, expires_in: float | None) -> Any:
    """A CS3 write lock; ``user`` set when ``CS3Settings.lock_with_user`` (only that user may
    then refresh or unlock it)."""
    if not lock_id:
        raise InvalidArgument("lock_id must not be empty")
    if not app_name:
        raise InvalidArgument("app_name must not be empty")
    lock = sp_res.Lock(lock_id=lock_id, type=sp_res.LOCK_TYPE_WRITE, app_name=app_name)
    if user is not None:
        lock.user.CopyFrom(user_id(user))
    if expires_in is not None:
        if not expires_in > 0:
            raise InvalidArgument(f"expires_in must be positive, not {expires_in}")
        lock.expiration.CopyFrom(timestamp(time.time() + expires_in))
    return lock


async def set_lock(gw: Gateway, token: str, idref: Any, lock: Any) -> Lock:
    await gw.checked("SetLock", sp_pb.SetLockRequest(ref=idref, lock=lock), token, op=Op.LOCK)
    result = lock_from_cs3(lock)
    assert result is not None
    return result


async def refresh_lock(gw: Gateway, token: str, idref: Any, lock: Any) -> Lock:
    await gw.checked(
        "RefreshLock", sp_pb.RefreshLockRequest(ref=idref, lock=lock), token, op=Op.LOCK
    )
    result = lock_from_cs3(lock)
    assert result is not None
    return result


async def unlock(gw: Gateway, token: str, idref: Any, lock: Any) -> None:
    await gw.checked("Unlock", sp_pb.UnlockRequest(ref=idref, lock=lock), token, op=Op.LOCK)


async def get_lock(gw: Gateway, token: str, idref: Any) -> Lock | None:
    async def attempt() -> Any:
        return await gw.call("GetLock", sp_pb.GetLockRequest(ref=idref), token)

    resp = await gw.retrying("GetLock", attempt)
    if resp.status.code == CODE_NOT_FOUND and "no lock found" in resp.status.message:
        return None
    if resp.status.code != CODE_OK:
        raise status_error(resp.status.code, resp.status.message, call="GetLock")
    return lock_from_cs3(resp.lock)
