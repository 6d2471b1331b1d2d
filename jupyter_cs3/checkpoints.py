"""Jupyter checkpoints backed by CS3 file versions (issue 14).

"Revert to checkpoint" lists the file's CS3 versions (``ListFileVersions``) with their dates,
oldest first (JupyterLab takes the last one as the latest). A restore goes through the hub
(``RestoreFileVersion`` under the room's lock, merged into the live room at once), so every open
client receives it as ordinary Y updates. Storage makes versions on every write, so "create a
checkpoint" names the newest one. The local-folder mode keeps no versions: no checkpoints.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from jupyter_server.services.contents.checkpoints import AsyncCheckpoints
from tornado.web import HTTPError

from jupyter_cs3.backend import Backend
from jupyter_cs3.hubops import restore_through_hub
from storage_bridge.cs3_versions import list_versions
from storage_bridge.errors import NotFound, StorageError

CURRENT = "current"  # the content as it is: a checkpoint with nothing to restore


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


def checkpoint_id(key: str) -> str:
    """A version key as a checkpoint id: Jupyter routes ids matching ``[\\w-]+`` only, and CS3
    keys hold ``.`` and ``:`` (``<id>.REV.<time>``)."""
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def version_key(checkpoint: str) -> str:
    try:
        return base64.urlsafe_b64decode(checkpoint + "=" * (-len(checkpoint) % 4)).decode()
    except (ValueError, UnicodeDecodeError) as exc:
        raise HTTPError(404, f"no such checkpoint: {checkpoint}") from exc


class CS3Checkpoints(AsyncCheckpoints):
    def _backend(self) -> Backend:
        manager: Any = self.parent  # the CS3ContentsManager that made us
        backend: Backend = manager.be
        return backend

    async def list_checkpoints(self, path: str) -> list[dict[str, Any]]:
        be = self._backend()
        storage = be.cs3
        if storage is None:  # the local folder keeps no versions
            return []
        sp = await be.storage_path(path.strip("/"))
        try:
            versions = await be.run(lambda t: list_versions(storage, t, sp))
        except NotFound:
            return []
        except StorageError as exc:
            raise HTTPError(503, f"the versions of {path} could not be listed: {exc}") from exc
        return [{"id": checkpoint_id(v.key), "last_modified": _dt(v.mtime)} for v in versions]

    async def create_checkpoint(self, contents_mgr: Any, path: str) -> dict[str, Any]:
        found = await self.list_checkpoints(path)
        if found:
            return found[-1]
        model = await contents_mgr.get(path, content=False)
        return {"id": CURRENT, "last_modified": model["last_modified"]}

    async def restore_checkpoint(self, contents_mgr: Any, checkpoint_id: str, path: str) -> None:
        if checkpoint_id == CURRENT:
            return
        be = self._backend()
        if be.cs3 is None:
            raise HTTPError(501, "the local folder keeps no versions")
        key = version_key(checkpoint_id)
        await restore_through_hub(be, await be.storage_path(path.strip("/")), key)

    async def rename_checkpoint(self, checkpoint_id: str, old_path: str, new_path: str) -> None:
        return None  # CS3 versions belong to the file and follow it

    async def delete_checkpoint(self, checkpoint_id: str, path: str) -> None:
        return None  # storage owns its versions; Jupyter does not delete them
