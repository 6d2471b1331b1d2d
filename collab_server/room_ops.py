"""HTTP operations on live rooms for the JupyterLab extension (issue 14).

jupyter_cs3 relays these with the user's CS3 token (the browser never holds one):

- ``POST /api/collaboration/work-copy/{path}``: a copy of the live document beside it, recorded as
  a fork (its starting point is the merge base to bring it back).
- ``POST /api/collaboration/merge-preview/{copy path}``: what merging the copy into its original
  would do (merge_preview.py): automatic changes, and source conflicts to choose.
- ``POST /api/collaboration/merge-resolved/{copy path}``
  ``{"choices": {cellId: mine|theirs|both}}``: the chosen result, merged into the original's
  live room with the original's current content as base, so edits made meanwhile survive and
  every open client gets ordinary Y updates.
- ``POST /api/collaboration/move/{path}`` ``{"to": "<storage path>"}``: rename/move an open
  document with its room's lock id; the room (keyed by resource id) and its clients stay.
- ``POST /api/collaboration/delete/{path}``: delete an open document with the room's lock id; its
  clients get ``{"type": "deleted", "by"}`` and a 4404 close with the reason.
- ``POST /api/collaboration/restore/{path}`` ``{"key": "<version key>"}``: restore a CS3 file
  version under the room's lock and merge it into the live room at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from collab_server.auth import Access, Principal, access_for
from collab_server.copies import create_copy_beside
from collab_server.hub import Hub, HubError
from collab_server.logs import get_logger, kv
from collab_server.merge_preview import PreviewError, preview, resolve
from collab_server.protocol import CloseCode, raw_message
from collab_server.room_key import RoomKey
from crdt.errors import ExportError
from storage_bridge.cs3 import CS3Storage
from storage_bridge.cs3_versions import restore_version
from storage_bridge.errors import Locked, PreconditionFailed, StorageError
from storage_bridge.types import Resource, ResourceId

log = get_logger("room_ops")

TokenOf = Callable[[Request], str | None]


@dataclass(frozen=True, slots=True)
class _Fork:
    base: bytes
    theirs: bytes  # the work copy as it is now
    original: Resource


def _http_error(exc: Exception) -> JSONResponse:
    if isinstance(exc, HubError):
        return JSONResponse({"message": exc.message}, status_code=exc.status)
    if isinstance(exc, PreviewError):
        return JSONResponse({"message": str(exc)}, status_code=409)
    if isinstance(exc, Locked) and not isinstance(exc, PreconditionFailed):
        return JSONResponse({"message": f"locked: {exc}"}, status_code=409)
    if isinstance(exc, StorageError):
        return _http_error(Hub.storage_http_error(exc))
    return JSONResponse({"message": f"the document cannot be exported: {exc}"}, status_code=409)


async def work_copy(hub: Hub, principal: Principal, path: str) -> dict[str, Any]:
    resource = await hub.document(principal, path, Access.EDIT)
    room = await hub.acquire_room(principal, resource)
    try:
        data = room.export()
    finally:
        hub.rooms.release(room)
    user = principal.user
    copy = await create_copy_beside(hub.storage, principal.token, resource, user.username, data)
    copy_id = copy.id.to_file_id()
    await hub.update_log.record_fork(copy_id, room.room_key.file_id, data)
    await hub.update_log.ensure_lineage(str(room.room_key.of_file(copy_id)))
    log.info("work copy created", extra=kv(room=room.key, path=copy.path, user=user.id))
    return {"path": copy.path, "fileId": copy_id, "original": resource.path}


async def _fork(hub: Hub, principal: Principal, copy_path: str) -> _Fork:
    copy = await hub.document(principal, copy_path, Access.VIEW)
    fork = await hub.update_log.fork_of(copy.id.to_file_id())
    if fork is None:
        raise HubError(400, CloseCode.BAD_REQUEST, f"{copy.name} is not a work copy")
    origin_id, base = fork
    live = hub.rooms.get(str(RoomKey.for_resource(copy)))
    if live is not None:
        theirs = live.export()  # what the copy's editors see, not the last snapshot
    else:
        theirs, _ = await hub.storage.read(principal.token, copy.id)
    original = await hub.storage.stat(principal.token, ResourceId.from_file_id(origin_id))
    if access_for(original) is not Access.EDIT:
        raise HubError(403, CloseCode.FORBIDDEN, "you may not write the original")
    return _Fork(base, theirs, original)


async def merge_preview(hub: Hub, principal: Principal, copy_path: str) -> dict[str, Any]:
    fork = await _fork(hub, principal, copy_path)
    room = await hub.acquire_room(principal, fork.original)
    try:
        ours = room.export()
    finally:
        hub.rooms.release(room)
    return {"original": fork.original.path, **preview(fork.base, fork.theirs, ours)}


async def merge_resolved(
    hub: Hub, principal: Principal, copy_path: str, choices: dict[str, str]
) -> dict[str, Any]:
    fork = await _fork(hub, principal, copy_path)
    room = await hub.acquire_room(principal, fork.original)
    try:
        refusal = room.read_only_message()
        if refusal is not None:
            return {"status": "failed", "message": refusal}
        ours = room.export()
        chosen = resolve(fork.base, fork.theirs, ours, choices)
        # base = ours: the chosen notebook's differences from the original are exactly the
        # merge; anything typed into the original since the export is kept by the merge.
        result = await room.merge_incoming(chosen, principal.user.username, base=ours)
        conflicts, copy = result.conflicts, result.copy
    finally:
        hub.rooms.release(room)
    log.info("work copy merged", extra=kv(path=copy_path, reason=f"{len(conflicts)} conflicts"))
    return {"status": "conflict" if conflicts else "merged", "conflicts": conflicts,
            "conflictCopy": copy, "path": fork.original.path}  # fmt: skip


async def move(hub: Hub, principal: Principal, path: str, to: str) -> dict[str, Any]:
    """Rename/move ``path`` to ``to`` with the open room's lock id (storage refuses a move of a
    locked file without it). The room is keyed by resource id: it stays, with its clients."""
    resource = await hub.storage.stat(principal.token, path)
    room = hub.rooms.get(str(RoomKey.for_resource(resource)))
    lock_id = room.lock_id if room is not None else None
    moved = await hub.storage.move(principal.token, resource.id, to, lock_id=lock_id)
    if room is not None:
        room.broadcast_raw({"type": "moved", "by": principal.user.username})
    log.info("document moved", extra=kv(path=path, reason=f"to {moved.path}"))
    return {"path": moved.path, "fileId": moved.id.to_file_id()}


async def delete(hub: Hub, principal: Principal, path: str) -> dict[str, Any]:
    """Delete an open document with its room's lock id, then close the room's sockets with a
    clear reason (after a raw ``deleted`` message, which @cs3collab/lab turns into a closed tab
    and a notice). The room unloads once its clients are gone."""
    resource = await hub.document(principal, path, Access.EDIT)
    room = hub.rooms.get(str(RoomKey.for_resource(resource)))
    lock_id = room.lock_id if room is not None else None
    await hub.storage.delete(principal.token, resource.id, lock_id=lock_id)
    who = principal.user.display_name or principal.user.username
    if room is not None:
        notice = raw_message({"type": "deleted", "by": who})
        for client in list(room.clients):
            client.send(notice)  # written before the close frame: close_now drops the queue
            client.close_now(CloseCode.NOT_FOUND, f"{resource.name} was deleted by {who}"[:120])
    log.info("document deleted", extra=kv(path=path, user=principal.user.id))
    return {"status": "deleted", "path": resource.path}


async def restore(hub: Hub, principal: Principal, path: str, key: str) -> dict[str, Any]:
    """Restore CS3 file version ``key`` through the room: storage restores it under the room's
    lock, then the room merges it at once like any external version, so every open client
    receives it as ordinary Y updates (no reload, no duplicated cells)."""
    if not isinstance(hub.storage, CS3Storage):
        raise HubError(501, CloseCode.BAD_REQUEST, "this storage keeps no file versions")
    resource = await hub.document(principal, path, Access.EDIT)
    room = hub.rooms.get(str(RoomKey.for_resource(resource)))
    lock_id = room.lock_id if room is not None else None
    await restore_version(hub.storage, principal.token, resource.id, key, lock_id=lock_id)
    if room is not None:
        await room.check_external()
    log.info("version restored", extra=kv(path=path, reason=key))
    return {"status": "restored", "path": resource.path}


def router(hub: Hub, token_of: TokenOf) -> APIRouter:
    api = APIRouter()

    async def run(request: Request, op: Callable[[Principal], Any]) -> Response:
        try:
            principal = await hub.authenticate(token_of(request))
            result = await op(principal)
        except (HubError, PreviewError, ExportError, StorageError) as exc:
            log.info("room operation refused", extra=kv(path=request.url.path, error=repr(exc)))
            return _http_error(exc)
        failed = isinstance(result, dict) and result.get("status") == "failed"
        return JSONResponse(result, status_code=409 if failed else 200)

    @api.post("/api/collaboration/work-copy/{path:path}")
    async def _work_copy(path: str, request: Request) -> Response:
        return await run(request, lambda p: work_copy(hub, p, path))

    @api.post("/api/collaboration/merge-preview/{path:path}")
    async def _merge_preview(path: str, request: Request) -> Response:
        return await run(request, lambda p: merge_preview(hub, p, path))

    @api.post("/api/collaboration/merge-resolved/{path:path}")
    async def _merge_resolved(path: str, request: Request) -> Response:
        try:
            body = await request.json()
            choices = body.get("choices", {}) if isinstance(body, dict) else None
        except ValueError:
            choices = None
        if not isinstance(choices, dict) or not all(isinstance(v, str) for v in choices.values()):
            message = 'the body must be JSON {"choices": {"<cell id>": "mine|theirs|both"}}'
            return JSONResponse({"message": message}, status_code=400)
        return await run(request, lambda p: merge_resolved(hub, p, path, choices))

    @api.post("/api/collaboration/move/{path:path}")
    async def _move(path: str, request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        to = body.get("to") if isinstance(body, dict) else None
        if not isinstance(to, str) or not to.startswith("/"):
            return JSONResponse({"message": 'the body must be JSON {"to": "<absolute path>"}'},
                                status_code=400)  # fmt: skip
        return await run(request, lambda p: move(hub, p, path, to))

    @api.post("/api/collaboration/delete/{path:path}")
    async def _delete(path: str, request: Request) -> Response:
        return await run(request, lambda p: delete(hub, p, path))

    @api.post("/api/collaboration/restore/{path:path}")
    async def _restore(path: str, request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        key = body.get("key") if isinstance(body, dict) else None
        if not isinstance(key, str) or not key:
            return JSONResponse({"message": 'the body must be JSON {"key": "<version key>"}'},
                                status_code=400)  # fmt: skip
        return await run(request, lambda p: restore(hub, p, path, key))

    return api
