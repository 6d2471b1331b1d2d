"""Conflict copies: an external version that could not be merged cleanly is kept beside the
original, never lost, and every client is told where it is as *it* sees it (ARCHITECTURE §5)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from collab_server.connection import Connection
from collab_server.copies import create_copy_beside
from collab_server.logs import get_logger, kv
from collab_server.protocol import raw_message
from storage_bridge.base import Storage
from storage_bridge.errors import StorageError
from storage_bridge.naming import conflict_copy_name
from storage_bridge.types import Resource

log = get_logger("room")


async def save_conflict_copy(
    storage: Storage,
    tokens: Iterable[str],
    resource: Resource,
    who: str,
    data: bytes,
    *,
    fallback_dir: Path,
    room: str,
) -> Resource | None:
    """Keep the external version beside the original, trying each of ``tokens`` in turn.

    Returns the copy in storage, or None when no token may create it there: then the hub keeps
    it under ``fallback_dir`` (never a path to send to a client).
    """
    failures = []
    for token in tokens:
        try:
            created = await create_copy_beside(storage, token, resource, who, data)
        except StorageError as exc:
            failures.append(repr(exc))
            continue
        log.warning("conflict copy written", extra=kv(room=room, path=created.path))
        return created
    name = conflict_copy_name(resource.name, who, datetime.now(UTC))
    fallback = fallback_dir / name
    await asyncio.to_thread(_write_file, fallback, data)
    log.error(
        "no editor may create the conflict copy in storage; the hub keeps it",
        extra=kv(room=room, path=str(fallback), error="; ".join(failures)),
    )
    return None


async def announce_copy(
    storage: Storage, clients: Iterable[Connection], copy: Resource | None, conflicts: list[str]
) -> None:
    """Tell each client where the copy is, as *it* sees it (owner and sharees see the
    same file under different paths)."""
    base: dict[str, object] = {"type": "conflict_copy", "conflicts": conflicts[:20]}
    for client in list(clients):
        path: str | None = None
        if copy is not None:
            try:
                path = (await storage.stat(client.token, copy.id)).path
            except StorageError:
                path = None  # this client cannot see it (e.g. a viewer of one file)
        if path is not None and copy is not None:
            message = {**base, "path": path, "fileId": copy.id.to_file_id()}
        else:
            message = {
                **base,
                "path": None,
                "kept_by": "storage" if copy is not None else "hub",
                "message": "the other version was kept where you cannot open it;"
                " an editor of the folder can",
            }
        client.send(raw_message(message))


def _write_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
