"""``CS3Storage``: the ``Storage`` protocol over a CS3 gateway (see the package docstring)."""

from __future__ import annotations

import posixpath
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from cs3.gateway.v1beta1 import gateway_api_pb2 as gw_pb
from cs3.sharing.collaboration.v1beta1 import collaboration_api_pb2 as coll_pb
from cs3.sharing.collaboration.v1beta1 import resources_pb2 as coll_res
from cs3.storage.provider.v1beta1 import provider_api_pb2 as sp_pb
from cs3.storage.provider.v1beta1 import resources_pb2 as sp_res

from storage_bridge.cs3 import locks, transfers
from storage_bridge.cs3.channel import Gateway
from storage_bridge.cs3.conversions import (
    CHECKSUM_NAMES,
    from_cs3_id,
    is_share_jail_id,
    lock_from_cs3,
    normpath,
    permissions_from_cs3,
    seconds_of,
    to_cs3_id,
    to_reference,
    user_from_cs3,
)
from storage_bridge.cs3.errors import (
    CODE_INVALID_ARGUMENT,
    CODE_NOT_FOUND,
    CODE_OK,
    CODE_PERMISSION_DENIED,
    CODE_UNAUTHENTICATED,
    Op,
    status_error,
)
from storage_bridge.cs3.identity import TokenCache
from storage_bridge.cs3.settings import CS3Settings
from storage_bridge.errors import (
    AlreadyExists,
    InvalidArgument,
    NotFound,
    StorageError,
    Unauthenticated,
    Unavailable,
)
from storage_bridge.types import Lock, Ref, Resource, ResourceId, User

_TOKEN_REFUSALS = (
    CODE_UNAUTHENTICATED,
    CODE_PERMISSION_DENIED,
    CODE_NOT_FOUND,
    CODE_INVALID_ARGUMENT,
)


T = TypeVar("T")


class CS3Storage:
    """``Storage`` over a CS3 gateway. Create it anywhere; connections open on first use."""

    name = "cs3"

    def __init__(self, settings: CS3Settings | str, **overrides: Any) -> None:
        if isinstance(settings, str):
            settings = CS3Settings(gateway=settings, **overrides)
        elif overrides:
            raise TypeError("pass overrides only together with a gateway address")
        self.settings = settings
        self._gw = Gateway(settings)
        self._tokens = TokenCache(settings.token_cache_seconds)

    async def aclose(self) -> None:
        await self._gw.aclose()

    # ---- identity ----

    async def authenticate(self, username: str, password: str) -> str:
        """Basic login; the token to pass to every other method."""
        try:
            resp = await self._gw.checked(
                "Authenticate",
                gw_pb.AuthenticateRequest(type="basic", client_id=username, client_secret=password),
                None,
            )
        except Unavailable:
            raise
        except StorageError as exc:  # wrong password / unknown user, however reva words it
            raise Unauthenticated(exc.message) from exc
        token: str = resp.token
        self._tokens.remember(token, user_from_cs3(resp.user))
        return token

    async def whoami(self, token: str) -> User:
        if not token:
            raise Unauthenticated("no token")
        cached = self._tokens.get(token)
        if cached is not None:
            return cached

        async def attempt() -> Any:
            return await self._gw.call("WhoAmI", gw_pb.WhoAmIRequest(token=token), token)

        resp = await self._gw.retrying("WhoAmI", attempt)
        if resp.status.code != CODE_OK:
            self._tokens.forget(token)
            if resp.status.code in _TOKEN_REFUSALS:
                raise Unauthenticated(f"WhoAmI: {resp.status.message or 'invalid token'}")
            raise status_error(resp.status.code, resp.status.message, call="WhoAmI")
        user = user_from_cs3(resp.user)
        self._tokens.remember(token, user)
        return user

    # ---- stat / paths ----

    def _path_of(self, info: Any) -> str:
        """An absolute path for a ResourceInfo stat'ed by id (reva v2 reports space-relative)."""
        path: str = info.path
        space = info.space if info.HasField("space") else None
        if space is not None and space.space_type == "personal" and space.HasField("owner"):
            base = self.settings.personal_space_path.format(owner_id=space.owner.id.opaque_id)
            rel = path.lstrip(".").lstrip("/")
            return posixpath.join(base, rel) if rel else base
        return path

    async def _canonical_id(self, token: str, rid: ResourceId) -> ResourceId:
        """The shared resource's own id for a share-jail id (so all users agree on one id)."""
        if not is_share_jail_id(rid):
            return rid
        resp = await self._gw.checked(
            "GetReceivedShare",
            coll_pb.GetReceivedShareRequest(
                ref=coll_res.ShareReference(id=coll_res.ShareId(opaque_id=rid.opaque_id))
            ),
            token,
            idempotent=True,
        )
        share = resp.share.share
        if not share.HasField("resource_id"):
            return rid
        return from_cs3_id(share.resource_id)

    async def _resource(self, token: str, info: Any, path: str | None) -> Resource:
        rid = await self._canonical_id(token, from_cs3_id(info.id))
        if path is None:
            path = self._path_of(info)
        name = info.name or posixpath.basename(path.rstrip("/")) or path
        checksum = ""
        if info.HasField("checksum") and info.checksum.sum:
            kind = CHECKSUM_NAMES.get(info.checksum.type)
            if kind:
                checksum = f"{kind}:{info.checksum.sum}"
        return Resource(
            id=rid,
            path=path,
            name=name,
            is_dir=info.type == sp_res.RESOURCE_TYPE_CONTAINER,
            etag=info.etag,
            mtime=seconds_of(info.mtime) if info.HasField("mtime") else 0.0,
            size=int(info.size),
            permissions=permissions_from_cs3(info.permission_set),
            lock=lock_from_cs3(info.lock) if info.HasField("lock") else None,
            checksum=checksum,
            owner=info.owner.opaque_id if info.HasField("owner") else "",
        )

    async def stat(self, token: str, ref: Ref) -> Resource:
        await self.whoami(token)
        info = await self._gw.stat_info(token, ref)
        path = None if isinstance(ref, ResourceId) else normpath(ref)
        return await self._resource(token, info, path)

    async def _id_ref(self, token: str, ref: Ref) -> Any:
        """An id-based reference (reva v2's gateway resolves lock calls only for those)."""
        if isinstance(ref, ResourceId):
            return sp_res.Reference(resource_id=to_cs3_id(ref))
        info = await self._gw.stat_info(token, ref)
        rid = await self._canonical_id(token, from_cs3_id(info.id))
        return sp_res.Reference(resource_id=to_cs3_id(rid))

    # ---- data ----

    async def read(self, token: str, ref: Ref) -> tuple[bytes, str]:
        await self.whoami(token)
        return await transfers.download(self._gw, token, ref)

    async def write(
        self,
        token: str,
        ref: Ref,
        data: bytes,
        *,
        if_match: str | None = None,
        lock_id: str | None = None,
    ) -> str:
        await self.whoami(token)
        etag = await transfers.upload(
            self._gw, token, ref, data, if_match=if_match, lock_id=lock_id
        )
        if not etag:
            etag = (await self._gw.stat_info(token, ref)).etag
        return etag

    async def create(self, token: str, ref: Ref, data: bytes) -> Resource:
        if isinstance(ref, ResourceId):
            raise InvalidArgument("create needs a path, not a resource id")
        await self.whoami(token)
        await transfers.upload(self._gw, token, ref, data, if_not_exist=True)
        return await self.stat(token, ref)

    # ---- containers ----

    async def list(self, token: str, ref: Ref) -> list[Resource]:
        await self.whoami(token)
        base = (await self.stat(token, ref)).path if isinstance(ref, ResourceId) else normpath(ref)
        resp = await self._gw.checked(
            "ListContainer",
            sp_pb.ListContainerRequest(ref=to_reference(ref)),
            token,
            idempotent=True,
        )
        out = []
        for info in resp.infos:
            name = info.name or posixpath.basename(info.path.rstrip("/"))
            out.append(await self._resource(token, info, posixpath.join(base, name)))
        return out

    async def mkdir(self, token: str, ref: Ref) -> Resource:
        await self.whoami(token)
        await self._gw.checked(
            "CreateContainer",
            sp_pb.CreateContainerRequest(ref=to_reference(ref)),
            token,
            op=Op.MKDIR,
        )
        return await self.stat(token, ref)

    async def move(self, token: str, src: Ref, dst: str, *, lock_id: str | None = None) -> Resource:
        await self.whoami(token)
        dst = normpath(dst)
        # Reva's Move replaces an existing destination; the contract refuses instead.
        try:
            await self._gw.stat_info(token, dst)
        except NotFound:
            pass
        else:
            raise AlreadyExists(f"already exists: {dst}")
        await self._gw.checked(
            "Move",
            sp_pb.MoveRequest(
                source=to_reference(src),
                destination=sp_res.Reference(path=dst),
                lock_id=lock_id or "",
            ),
            token,
        )
        return await self.stat(token, dst)

    async def delete(self, token: str, ref: Ref, *, lock_id: str | None = None) -> None:
        await self.whoami(token)
        await self._gw.checked(
            "Delete", sp_pb.DeleteRequest(ref=to_reference(ref), lock_id=lock_id or ""), token
        )

    # ---- locks ----

    async def _lock(self, token: str, lock_id: str, app_name: str, expires_in: float | None) -> Any:
        user = await self.whoami(token)
        holder = user if self.settings.lock_with_user else None
        return locks.lock_message(lock_id, app_name, holder, expires_in)

    async def set_lock(
        self, token: str, ref: Ref, *, lock_id: str, app_name: str, expires_in: float
    ) -> Lock:
        lock = await self._lock(token, lock_id, app_name, expires_in)
        return await locks.set_lock(self._gw, token, await self._id_ref(token, ref), lock)

    async def get_lock(self, token: str, ref: Ref) -> Lock | None:
        await self.whoami(token)
        return await locks.get_lock(self._gw, token, await self._id_ref(token, ref))

    async def refresh_lock(
        self, token: str, ref: Ref, *, lock_id: str, app_name: str, expires_in: float
    ) -> Lock:
        lock = await self._lock(token, lock_id, app_name, expires_in)
        return await locks.refresh_lock(self._gw, token, await self._id_ref(token, ref), lock)

    async def unlock(self, token: str, ref: Ref, *, lock_id: str, app_name: str) -> None:
        lock = await self._lock(token, lock_id, app_name, None)
        await locks.unlock(self._gw, token, await self._id_ref(token, ref), lock)

    # ---- helpers for storage_bridge.cs3.shares ----

    async def call(self, method: str, request: Any, token: str, *, idempotent: bool = False) -> Any:
        """A checked gateway call as ``token`` (for helpers outside the Storage protocol)."""
        await self.whoami(token)
        return await self._gw.checked(method, request, token, idempotent=idempotent)

    async def retrying(self, what: str, attempt: Callable[[], Awaitable[T]]) -> T:
        """Run an idempotent ``attempt`` (a read outside this class, e.g. cs3fs's ranged GETs),
        retried on ``Unavailable`` with this storage's backoff."""
        return await self._gw.retrying(what, attempt)

    async def resource_info(self, token: str, ref: Ref) -> Any:
        """The raw CS3 ResourceInfo (what CreateShare wants)."""
        await self.whoami(token)
        return await self._gw.stat_info(token, ref)
