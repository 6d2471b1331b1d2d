"""The ``cs3`` storage backend: a CS3 gateway (Reva) over gRPC, asyncio end to end.

- gRPC: the ``cs3apis`` stubs (pinned to the server's API date) on a ``grpc.aio`` channel; the
  user's token travels as ``x-access-token`` metadata on every call.
- Data: ``InitiateFileDownload`` / ``InitiateFileUpload`` then GET / PUT on the returned endpoint
  with ``httpx.AsyncClient`` (headers ``X-Reva-Transfer``, ``x-access-token``, ``X-Lock-Id``,
  ``X-Lock-Holder``).
- Tokens are verified with ``WhoAmI`` (cached briefly): the Reva v2 gateway does not reject an
  invalid token by itself (it answers e.g. NOT_FOUND), so without this an expired token would
  look like a missing file.
- Idempotent calls (stat, read, list, get_lock, whoami) are retried with exponential backoff on
  ``Unavailable``; writes, moves, deletes and lock changes are never retried.

Semantics verified against reva v2.27.7 with the ``ocis`` (decomposedfs) driver, see
ARCHITECTURE §8 and ``storage_bridge/cs3_errors.py`` for how refusals are reported.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import posixpath
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
import grpc.aio
import httpx
from cs3.gateway.v1beta1 import gateway_api_pb2 as gw_pb
from cs3.gateway.v1beta1 import gateway_api_pb2_grpc as gw_grpc
from cs3.sharing.collaboration.v1beta1 import collaboration_api_pb2 as coll_pb
from cs3.sharing.collaboration.v1beta1 import resources_pb2 as coll_res
from cs3.storage.provider.v1beta1 import provider_api_pb2 as sp_pb
from cs3.storage.provider.v1beta1 import resources_pb2 as sp_res
from cs3.types.v1beta1 import types_pb2

from storage_bridge.cs3_errors import (
    CODE_INVALID_ARGUMENT,
    CODE_NOT_FOUND,
    CODE_OK,
    CODE_PERMISSION_DENIED,
    CODE_UNAUTHENTICATED,
    Op,
    http_error,
    rpc_error,
    status_error,
)
from storage_bridge.errors import (
    AlreadyExists,
    InvalidArgument,
    Locked,
    NotFound,
    PreconditionFailed,
    StorageError,
    Unauthenticated,
    Unavailable,
)
from storage_bridge.types import (
    Lock,
    LockType,
    Permissions,
    Ref,
    Resource,
    ResourceId,
    User,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

# Reva's share jail (utils.ShareStorageProviderID / ShareStorageSpaceID): received shares are
# listed there with ids whose opaque id is the *share* id, not the shared resource's id.
SHARE_JAIL_ID = "a0ca6a90-a365-4782-871e-d44447bbc668"

_CHECKSUM_NAMES = {
    sp_res.RESOURCE_CHECKSUM_TYPE_ADLER32: "adler32",
    sp_res.RESOURCE_CHECKSUM_TYPE_MD5: "md5",
    sp_res.RESOURCE_CHECKSUM_TYPE_SHA1: "sha1",
}


@dataclass(frozen=True, slots=True)
class CS3Settings:
    """How to reach the gateway. Everything has a default except the address."""

    gateway: str  # host:port of the CS3 gateway (gRPC)
    tls: bool = False
    ca_file: str | None = None  # PEM bundle for TLS to the gateway and the data servers
    timeout: float = 10.0  # per gRPC call, seconds
    transfer_timeout: float = 120.0  # per HTTP upload/download, seconds
    connect_timeout: float = 5.0  # HTTP connect
    retries: int = 3  # extra attempts for idempotent calls on Unavailable
    backoff: float = 0.2  # first retry delay, doubled each time (with jitter)
    max_backoff: float = 3.0
    token_cache_seconds: float = 30.0  # how long a WhoAmI-verified token is trusted
    app_name: str = "cs3collab"  # X-Lock-Holder on uploads
    # Locks carry the locking user (WhoAmI). Reva then lets only that user refresh/unlock them;
    # with False the lock has no user and any user holding the lock id + app name may.
    lock_with_user: bool = True
    # Where the gateway mounts personal spaces (reva storage registry "personal" path_template);
    # used to give an absolute path to resources stat'ed by id.
    personal_space_path: str = "/users/{owner_id}"
    max_message_bytes: int = 64 * 1024 * 1024


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


def _normpath(path: str) -> str:
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
    return sp_res.Reference(path=_normpath(ref))


def _ts(ts: Any) -> float:
    return float(ts.seconds) + float(ts.nanos) / 1e9


def _timestamp(t: float) -> Any:
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
        expiration=_ts(lock.expiration) if lock.HasField("expiration") else 0.0,
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


def jwt_expiry(token: str) -> float | None:
    """The ``exp`` claim of a JWT, without verifying it (only used to bound our cache)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        exp = payload.get("exp") if isinstance(payload, dict) else None
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    return float(exp) if isinstance(exp, int | float) else None


class CS3Storage:
    """``Storage`` over a CS3 gateway. Create it anywhere; connections open on first use."""

    name = "cs3"

    def __init__(self, settings: CS3Settings | str, **overrides: Any) -> None:
        if isinstance(settings, str):
            settings = CS3Settings(gateway=settings, **overrides)
        elif overrides:
            raise TypeError("pass overrides only together with a gateway address")
        self.settings = settings
        self._channel: grpc.aio.Channel | None = None
        self._stub: Any = None
        self._http: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tokens: dict[str, tuple[User, float]] = {}
        self._closed = False

    # ---- connections ----

    def _ensure_open(self) -> None:
        if self._closed:
            raise StorageError("storage is closed")
        loop = asyncio.get_running_loop()
        if self._stub is not None and self._loop is loop:
            return
        # grpc.aio channels and httpx clients belong to one event loop; (re)open on this one.
        s = self.settings
        options = [
            ("grpc.max_receive_message_length", s.max_message_bytes),
            ("grpc.max_send_message_length", s.max_message_bytes),
            ("grpc.keepalive_time_ms", 30_000),
            # gRPC's default reconnect backoff grows to 120 s after a few refused connects, so
            # a gateway back from a restart would stay unused for minutes: cap it at 2 s.
            ("grpc.initial_reconnect_backoff_ms", 200),
            ("grpc.min_reconnect_backoff_ms", 200),
            ("grpc.max_reconnect_backoff_ms", 2_000),
        ]
        if s.tls:
            root = None
            if s.ca_file:
                with open(s.ca_file, "rb") as f:
                    root = f.read()
            creds = grpc.ssl_channel_credentials(root_certificates=root)
            self._channel = grpc.aio.secure_channel(s.gateway, creds, options=options)
        else:
            self._channel = grpc.aio.insecure_channel(s.gateway, options=options)
        self._stub = gw_grpc.GatewayAPIStub(self._channel)
        verify: str | bool = s.ca_file if s.ca_file else True
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(s.transfer_timeout, connect=s.connect_timeout),
            verify=verify,
            follow_redirects=False,
        )
        self._loop = loop

    async def aclose(self) -> None:
        self._closed = True
        channel, http = self._channel, self._http
        self._channel, self._stub, self._http, self._loop = None, None, None, None
        if http is not None:
            await http.aclose()
        if channel is not None:
            await channel.close(grace=None)

    # ---- low-level calls ----

    async def _call(self, method: str, request: Any, token: str | None) -> Any:
        """One gateway RPC; transport failures become typed errors. Status is not checked."""
        self._ensure_open()
        metadata = (("x-access-token", token),) if token else None
        try:
            return await getattr(self._stub, method)(
                request, metadata=metadata, timeout=self.settings.timeout
            )
        except grpc.RpcError as exc:
            raise rpc_error(exc, call=method) from exc

    async def _retrying(self, what: str, attempt: Callable[[], Awaitable[T]]) -> T:
        """Run an idempotent ``attempt``; retry on ``Unavailable`` with exponential backoff."""
        s = self.settings
        delay = s.backoff
        for n in range(s.retries + 1):
            try:
                return await attempt()
            except Unavailable as exc:
                if n >= s.retries:
                    raise
                log.info("%s unavailable (%s); retry %d in %.2fs", what, exc, n + 1, delay)
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, s.max_backoff)
        raise AssertionError("unreachable")

    async def _checked(
        self,
        method: str,
        request: Any,
        token: str | None,
        *,
        idempotent: bool = False,
        op: Op = Op.GENERIC,
        if_match: bool = False,
    ) -> Any:
        """An RPC whose CS3 status must be OK (else the typed error)."""

        async def attempt() -> Any:
            resp = await self._call(method, request, token)
            if resp.status.code != CODE_OK:
                raise status_error(
                    resp.status.code, resp.status.message, call=method, op=op, if_match=if_match
                )
            return resp

        if idempotent:
            return await self._retrying(method, attempt)
        return await attempt()

    # ---- identity ----

    async def authenticate(self, username: str, password: str) -> str:
        """Basic login; the token to pass to every other method."""
        try:
            resp = await self._checked(
                "Authenticate",
                gw_pb.AuthenticateRequest(type="basic", client_id=username, client_secret=password),
                None,
            )
        except Unavailable:
            raise
        except StorageError as exc:  # wrong password / unknown user, however reva words it
            raise Unauthenticated(exc.message) from exc
        token: str = resp.token
        self._remember(token, user_from_cs3(resp.user))
        return token

    def _remember(self, token: str, user: User) -> None:
        now = time.monotonic()
        until = now + self.settings.token_cache_seconds
        exp = jwt_expiry(token)
        if exp is not None:
            until = min(until, now + (exp - time.time()))
        if len(self._tokens) > 1024:
            self._tokens = {t: v for t, v in self._tokens.items() if v[1] > now}
        self._tokens[token] = (user, until)

    async def whoami(self, token: str) -> User:
        if not token:
            raise Unauthenticated("no token")
        cached = self._tokens.get(token)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]

        async def attempt() -> Any:
            return await self._call("WhoAmI", gw_pb.WhoAmIRequest(token=token), token)

        resp = await self._retrying("WhoAmI", attempt)
        if resp.status.code != CODE_OK:
            self._tokens.pop(token, None)
            if resp.status.code in (
                CODE_UNAUTHENTICATED,
                CODE_PERMISSION_DENIED,
                CODE_NOT_FOUND,
                CODE_INVALID_ARGUMENT,
            ):
                raise Unauthenticated(f"WhoAmI: {resp.status.message or 'invalid token'}")
            raise status_error(resp.status.code, resp.status.message, call="WhoAmI")
        user = user_from_cs3(resp.user)
        self._remember(token, user)
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
        resp = await self._checked(
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
            kind = _CHECKSUM_NAMES.get(info.checksum.type)
            if kind:
                checksum = f"{kind}:{info.checksum.sum}"
        return Resource(
            id=rid,
            path=path,
            name=name,
            is_dir=info.type == sp_res.RESOURCE_TYPE_CONTAINER,
            etag=info.etag,
            mtime=_ts(info.mtime) if info.HasField("mtime") else 0.0,
            size=int(info.size),
            permissions=permissions_from_cs3(info.permission_set),
            lock=lock_from_cs3(info.lock) if info.HasField("lock") else None,
            checksum=checksum,
            owner=info.owner.opaque_id if info.HasField("owner") else "",
        )

    async def _stat_info(self, token: str, ref: Ref) -> Any:
        resp = await self._checked(
            "Stat", sp_pb.StatRequest(ref=to_reference(ref)), token, idempotent=True
        )
        return resp.info

    async def stat(self, token: str, ref: Ref) -> Resource:
        await self.whoami(token)
        info = await self._stat_info(token, ref)
        path = None if isinstance(ref, ResourceId) else _normpath(ref)
        return await self._resource(token, info, path)

    async def _id_ref(self, token: str, ref: Ref) -> Any:
        """An id-based reference (reva v2's gateway resolves lock calls only for those)."""
        if isinstance(ref, ResourceId):
            return sp_res.Reference(resource_id=to_cs3_id(ref))
        info = await self._stat_info(token, ref)
        rid = await self._canonical_id(token, from_cs3_id(info.id))
        return sp_res.Reference(resource_id=to_cs3_id(rid))

    # ---- data ----

    async def read(self, token: str, ref: Ref) -> tuple[bytes, str]:
        await self.whoami(token)
        cs3ref = to_reference(ref, relative=True)

        async def attempt() -> tuple[bytes, str]:
            resp = await self._checked(
                "InitiateFileDownload", sp_pb.InitiateFileDownloadRequest(ref=cs3ref), token
            )
            protocols = {p.protocol: p for p in resp.protocols}
            proto = protocols.get("spaces") or protocols.get("simple")
            if proto is None and resp.protocols:
                proto = resp.protocols[0]
            if proto is None:
                raise StorageError("InitiateFileDownload: no download protocol offered")
            headers = {"x-access-token": token}
            if proto.token:
                headers["X-Reva-Transfer"] = proto.token
            assert self._http is not None
            try:
                r = await self._http.get(proto.download_endpoint, headers=headers)
            except httpx.TransportError as exc:
                raise Unavailable(f"GET download: {exc!r}") from exc
            if r.status_code != 200:
                raise http_error(r.status_code, r.text, call="GET download")
            etag = r.headers.get("etag") or r.headers.get("oc-etag")
            if not etag:
                etag = (await self._stat_info(token, ref)).etag
            return r.content, etag

        return await self._retrying("read", attempt)

    async def _upload(
        self,
        token: str,
        ref: Ref,
        data: bytes,
        *,
        if_match: str | None = None,
        if_not_exist: bool = False,
        lock_id: str | None = None,
    ) -> str:
        """InitiateFileUpload + PUT. The new etag, or "" when the server did not say."""
        opaque = types_pb2.Opaque(
            map={"Upload-Length": types_pb2.OpaqueEntry(decoder="plain", value=b"%d" % len(data))}
        )
        req = sp_pb.InitiateFileUploadRequest(
            ref=to_reference(ref, relative=True), opaque=opaque, lock_id=lock_id or ""
        )
        if if_match:
            req.if_match = if_match
        elif if_not_exist:
            req.if_not_exist = True
        try:
            resp = await self._checked(
                "InitiateFileUpload", req, token, op=Op.UPLOAD, if_match=bool(if_match)
            )
        except StorageError as exc:
            raise await self._explain_upload_refusal(token, ref, exc) from exc
        if not data:
            return ""  # Upload-Length 0: decomposedfs finishes the upload in InitiateFileUpload
        protocols = {p.protocol: p for p in resp.protocols}
        proto = protocols.get("simple") or protocols.get("spaces")
        if proto is None:
            offered = ", ".join(protocols) or "none"
            raise StorageError(f"InitiateFileUpload: no simple upload protocol ({offered})")
        headers = {"x-access-token": token, "X-Lock-Holder": self.settings.app_name}
        if proto.token:
            headers["X-Reva-Transfer"] = proto.token
        if lock_id:
            headers["X-Lock-Id"] = lock_id
        assert self._http is not None
        try:
            r = await self._http.put(proto.upload_endpoint, content=data, headers=headers)
        except httpx.TransportError as exc:
            raise Unavailable(f"PUT upload: {exc!r}") from exc
        if r.status_code not in (200, 201, 204):
            raise http_error(r.status_code, r.text, call="PUT upload", if_match=bool(if_match))
        return r.headers.get("etag") or r.headers.get("oc-etag") or ""

    async def _explain_upload_refusal(
        self, token: str, ref: Ref, exc: StorageError
    ) -> StorageError:
        """Reva says FAILED_PRECONDITION "failed precondition" for a missing parent folder and
        for a folder in the way, the same as for locks; look which one it was."""
        if type(exc) is not Locked or isinstance(exc, PreconditionFailed):
            return exc
        if "failed precondition" not in exc.message.lower() or isinstance(ref, ResourceId):
            return exc
        try:
            info = await self._stat_info(token, ref)
        except NotFound:
            parent = posixpath.dirname(_normpath(ref))
            try:
                await self._stat_info(token, parent)
            except NotFound:
                return NotFound(f"parent folder missing: {parent} ({exc.message})")
            return exc
        except StorageError:
            return exc
        if info.type == sp_res.RESOURCE_TYPE_CONTAINER:
            return InvalidArgument(f"is a folder: {ref} ({exc.message})")
        return exc

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
        etag = await self._upload(token, ref, data, if_match=if_match, lock_id=lock_id)
        if not etag:
            etag = (await self._stat_info(token, ref)).etag
        return etag

    async def create(self, token: str, ref: Ref, data: bytes) -> Resource:
        if isinstance(ref, ResourceId):
            raise InvalidArgument("create needs a path, not a resource id")
        await self.whoami(token)
        await self._upload(token, ref, data, if_not_exist=True)
        return await self.stat(token, ref)

    # ---- containers ----

    async def list(self, token: str, ref: Ref) -> list[Resource]:
        await self.whoami(token)
        base = (await self.stat(token, ref)).path if isinstance(ref, ResourceId) else _normpath(ref)
        resp = await self._checked(
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
        await self._checked(
            "CreateContainer",
            sp_pb.CreateContainerRequest(ref=to_reference(ref)),
            token,
            op=Op.MKDIR,
        )
        return await self.stat(token, ref)

    async def move(self, token: str, src: Ref, dst: str, *, lock_id: str | None = None) -> Resource:
        await self.whoami(token)
        dst = _normpath(dst)
        # Reva's Move replaces an existing destination; the contract refuses instead.
        try:
            await self._stat_info(token, dst)
        except NotFound:
            pass
        else:
            raise AlreadyExists(f"already exists: {dst}")
        await self._checked(
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
        await self._checked(
            "Delete", sp_pb.DeleteRequest(ref=to_reference(ref), lock_id=lock_id or ""), token
        )

    # ---- locks ----

    async def _lock_message(
        self, token: str, lock_id: str, app_name: str, expires_in: float | None
    ) -> Any:
        if not lock_id:
            raise InvalidArgument("lock_id must not be empty")
        if not app_name:
            raise InvalidArgument("app_name must not be empty")
        lock = sp_res.Lock(lock_id=lock_id, type=sp_res.LOCK_TYPE_WRITE, app_name=app_name)
        if self.settings.lock_with_user:
            user = await self.whoami(token)
            lock.user.CopyFrom(_user_id(user))
        if expires_in is not None:
            if not expires_in > 0:
                raise InvalidArgument(f"expires_in must be positive, not {expires_in}")
            lock.expiration.CopyFrom(_timestamp(time.time() + expires_in))
        return lock

    async def set_lock(
        self, token: str, ref: Ref, *, lock_id: str, app_name: str, expires_in: float
    ) -> Lock:
        await self.whoami(token)
        lock = await self._lock_message(token, lock_id, app_name, expires_in)
        idref = await self._id_ref(token, ref)
        await self._checked(
            "SetLock", sp_pb.SetLockRequest(ref=idref, lock=lock), token, op=Op.LOCK
        )
        result = lock_from_cs3(lock)
        assert result is not None
        return result

    async def get_lock(self, token: str, ref: Ref) -> Lock | None:
        await self.whoami(token)
        idref = await self._id_ref(token, ref)

        async def attempt() -> Any:
            return await self._call("GetLock", sp_pb.GetLockRequest(ref=idref), token)

        resp = await self._retrying("GetLock", attempt)
        if resp.status.code == CODE_NOT_FOUND and "no lock found" in resp.status.message:
            return None
        if resp.status.code != CODE_OK:
            raise status_error(resp.status.code, resp.status.message, call="GetLock")
        return lock_from_cs3(resp.lock)

    async def refresh_lock(
        self, token: str, ref: Ref, *, lock_id: str, app_name: str, expires_in: float
    ) -> Lock:
        await self.whoami(token)
        lock = await self._lock_message(token, lock_id, app_name, expires_in)
        idref = await self._id_ref(token, ref)
        await self._checked(
            "RefreshLock", sp_pb.RefreshLockRequest(ref=idref, lock=lock), token, op=Op.LOCK
        )
        result = lock_from_cs3(lock)
        assert result is not None
        return result

    async def unlock(self, token: str, ref: Ref, *, lock_id: str, app_name: str) -> None:
        await self.whoami(token)
        lock = await self._lock_message(token, lock_id, app_name, None)
        idref = await self._id_ref(token, ref)
        await self._checked("Unlock", sp_pb.UnlockRequest(ref=idref, lock=lock), token, op=Op.LOCK)

    # ---- helpers for cs3_shares ----

    async def call(self, method: str, request: Any, token: str, *, idempotent: bool = False) -> Any:
        """A checked gateway call as ``token`` (for helpers outside the Storage protocol)."""
        await self.whoami(token)
        return await self._checked(method, request, token, idempotent=idempotent)

    async def resource_info(self, token: str, ref: Ref) -> Any:
        """The raw CS3 ResourceInfo (what CreateShare wants)."""
        await self.whoami(token)
        return await self._stat_info(token, ref)


def _user_id(user: User) -> Any:
    from cs3.identity.user.v1beta1 import resources_pb2 as user_res

    return user_res.UserId(idp=user.idp, opaque_id=user.id, type=user_res.USER_TYPE_PRIMARY)
