"""Data transfers of the ``cs3`` backend: ``InitiateFileDownload`` / ``InitiateFileUpload``, then
GET / PUT on the returned endpoint with the gateway's ``httpx.AsyncClient`` (headers
``X-Reva-Transfer``, ``x-access-token``, ``X-Lock-Id``, ``X-Lock-Holder``)."""

from __future__ import annotations

import posixpath
from typing import Any

import httpx
from cs3.storage.provider.v1beta1 import provider_api_pb2 as sp_pb
from cs3.storage.provider.v1beta1 import resources_pb2 as sp_res
from cs3.types.v1beta1 import types_pb2

from storage_bridge.cs3.channel import Gateway
from storage_bridge.cs3.conversions import normpath, to_reference
from storage_bridge.cs3.errors import Op, download_error, http_error
from storage_bridge.errors import (
    InvalidArgument,
    Locked,
    NotFound,
    PreconditionFailed,
    StorageError,
    Unavailable,
)
from storage_bridge.types import Ref, ResourceId


def download_endpoint(resp: Any, token: str) -> tuple[str, dict[str, str]]:
    """Where and with which headers to GET the bytes an ``InitiateFileDownload`` answer offers
    (reva v2 offers "spaces" and "simple"; either works for a whole-file GET)."""
    protocols = {p.protocol: p for p in resp.protocols}
    proto = protocols.get("spaces") or protocols.get("simple")
    if proto is None and resp.protocols:
        proto = resp.protocols[0]
    if proto is None:
        raise StorageError("InitiateFileDownload: no download protocol offered")
    headers = {"x-access-token": token}
    if proto.token:
        headers["X-Reva-Transfer"] = proto.token
    return str(proto.download_endpoint), headers


async def download(gw: Gateway, token: str, ref: Ref) -> tuple[bytes, str]:
    """The bytes and etag of ``ref`` (retried as a whole on ``Unavailable``)."""
    cs3ref = to_reference(ref, relative=True)

    async def attempt() -> tuple[bytes, str]:
        resp = await gw.checked(
            "InitiateFileDownload", sp_pb.InitiateFileDownloadRequest(ref=cs3ref), token
        )
        url, headers = download_endpoint(resp, token)
        try:
            r = await gw.http.get(url, headers=headers)
        except httpx.TransportError as exc:
            raise Unavailable(f"GET download: {exc!r}") from exc
        if r.status_code != 200:
            raise download_error(r.status_code, r.text)
        etag = r.headers.get("etag") or r.headers.get("oc-etag")
        if not etag:
            etag = (await gw.stat_info(token, ref)).etag
        return r.content, etag

    return await gw.retrying("read", attempt)


async def upload(
    gw: Gateway,
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
        resp = await gw.checked(
            "InitiateFileUpload", req, token, op=Op.UPLOAD, if_match=bool(if_match)
        )
    except StorageError as exc:
        raise await _explain_upload_refusal(gw, token, ref, exc) from exc
    if not data:
        return ""  # Upload-Length 0: decomposedfs finishes the upload in InitiateFileUpload
    protocols = {p.protocol: p for p in resp.protocols}
    proto = protocols.get("simple") or protocols.get("spaces")
    if proto is None:
        offered = ", ".join(protocols) or "none"
        raise StorageError(f"InitiateFileUpload: no simple upload protocol ({offered})")
    headers = {"x-access-token": token, "X-Lock-Holder": gw.settings.app_name}
    if proto.token:
        headers["X-Reva-Transfer"] = proto.token
    if lock_id:
        headers["X-Lock-Id"] = lock_id
    try:
        r = await gw.http.put(proto.upload_endpoint, content=data, headers=headers)
    except httpx.TransportError as exc:
        raise Unavailable(f"PUT upload: {exc!r}") from exc
    if r.status_code not in (200, 201, 204):
        raise http_error(r.status_code, r.text, call="PUT upload", if_match=bool(if_match))
    return r.headers.get("etag") or r.headers.get("oc-etag") or ""


async def _explain_upload_refusal(
    gw: Gateway, token: str, ref: Ref, exc: StorageError
) -> StorageError:
    """Reva says FAILED_PRECONDITION "failed precondition" for a missing parent folder and
    for a folder in the way, the same as for locks; look which one it was."""
    if type(exc) is not Locked or isinstance(exc, PreconditionFailed):
        return exc
    if "failed precondition" not in exc.message.lower() or isinstance(ref, ResourceId):
        return exc
    try:
        info = await gw.stat_info(token, ref)
    except NotFound:
        parent = posixpath.dirname(normpath(ref))
        try:
            await gw.stat_info(token, parent)
        except NotFound:
            return NotFound(f"parent folder missing: {parent} ({exc.message})")
        return exc
    except StorageError:
        return exc
    if info.type == sp_res.RESOURCE_TYPE_CONTAINER:
        return InvalidArgument(f"is a folder: {ref} ({exc.message})")
    return exc
