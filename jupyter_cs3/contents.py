"""A Jupyter contents manager over ``storage_bridge`` (CS3 or a local folder).

The file browser, open/save of non-collaborative documents, new/rename/delete/copy and
downloads (``/files/``) go through here. Notebooks edited collaboratively are written by the hub;
both read the same storage, so ``last_modified`` (storage mtime) and ``hash`` (sha256 of the
bytes, like Jupyter's ``require_hash``) agree with what the hub reports in ``state.hash``.

Checkpoints are CS3 file versions, restored through the hub (checkpoints.py); ``NoCheckpoints``
is kept for configurations that want none.
"""

from __future__ import annotations

import base64
import hashlib
import mimetypes
import posixpath
from datetime import UTC, datetime
from typing import Any

import nbformat as _nbformat
from jupyter_server.services.contents.checkpoints import AsyncCheckpoints
from jupyter_server.services.contents.manager import AsyncContentsManager
from tornado.web import HTTPError
from traitlets import Instance, Type, default

from jupyter_cs3.backend import Backend
from jupyter_cs3.checkpoints import CS3Checkpoints
from jupyter_cs3.config import CS3Config
from jupyter_cs3.hubops import delete_through_hub, move_through_hub
from storage_bridge.errors import (
    AlreadyExists,
    InvalidArgument,
    Locked,
    NotFound,
    PermissionDenied,
    StorageError,
    Unauthenticated,
    Unavailable,
)
from storage_bridge.types import Resource

# nbformat and parts of ContentsManager are untyped; call them through Any.
nbformat: Any = _nbformat


def http_error(exc: StorageError, path: str) -> HTTPError:
    """The HTTP error JupyterLab shows for a storage refusal."""
    what = exc.message or type(exc).__name__
    if isinstance(exc, NotFound):
        return HTTPError(404, f"No such file or directory: {path}")
    if isinstance(exc, PermissionDenied):
        return HTTPError(403, f"Permission denied: {path}")
    if isinstance(exc, AlreadyExists):
        return HTTPError(409, f"File already exists: {path}")
    if isinstance(exc, Locked):
        return HTTPError(409, f"{path} is locked (being edited collaboratively?): {what}")
    if isinstance(exc, InvalidArgument):
        return HTTPError(400, f"{path}: {what}")
    if isinstance(exc, Unauthenticated):
        return HTTPError(403, f"storage refused the server's credentials: {what}")
    if isinstance(exc, Unavailable):
        return HTTPError(503, f"storage unavailable: {what}")
    return HTTPError(500, f"storage error on {path}: {what}")


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class NoCheckpoints(AsyncCheckpoints):
    """Checkpoints are storage versions here; Jupyter's API reports none and restores none."""

    async def create_checkpoint(self, contents_mgr: Any, path: str) -> dict[str, Any]:
        model = await contents_mgr.get(path, content=False)
        return {"id": "storage", "last_modified": model["last_modified"]}

    async def restore_checkpoint(self, contents_mgr: Any, checkpoint_id: str, path: str) -> None:
        raise HTTPError(501, "checkpoints are kept as storage versions; restore them there")

    async def rename_checkpoint(self, checkpoint_id: str, old_path: str, new_path: str) -> None:
        return None

    async def delete_checkpoint(self, checkpoint_id: str, path: str) -> None:
        return None

    async def list_checkpoints(self, path: str) -> list[dict[str, Any]]:
        return []


class CS3ContentsManager(AsyncContentsManager):
    """``/api/contents`` over the configured storage, as the configured CS3 user."""

    backend = Instance(Backend, allow_none=True)
    checkpoints_class = Type(CS3Checkpoints, klass=AsyncCheckpoints, config=True)  # issue 14

    @default("files_handler_params")
    def _files_handler_params_default(self) -> dict[str, Any]:
        # /files/ is served from this manager's get(); the static-file base class only needs a
        # path to initialise.
        return {"path": self.root_dir}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._chunks: dict[str, bytearray] = {}
        if self.backend is None:
            self.backend = Backend(CS3Config(config=self.config), local_root=self.root_dir)

    @property
    def _untyped(self) -> Any:
        return self

    @property
    def be(self) -> Backend:
        assert self.backend is not None
        return self.backend

    # ---- helpers ----

    async def _stat(self, path: str) -> Resource:
        sp = await self.be.storage_path(path)
        try:
            return await self.be.run(lambda t: self.be.storage.stat(t, sp))
        except StorageError as exc:
            raise http_error(exc, path) from exc

    def _hidden_name(self, name: str) -> bool:
        return name.startswith(".")

    def _base_model(self, path: str, res: Resource) -> dict[str, Any]:
        perms = res.permissions
        writable = perms.create_container if res.is_dir else perms.write
        if self.be.is_shares_folder(path):
            writable = False  # the share jail's root: nothing can be created in it
        # reva reports no mtime for an empty share jail: say "now" rather than 1970
        mtime = res.mtime or datetime.now(tz=UTC).timestamp()
        return {
            "name": posixpath.basename(path) if path else "",
            "path": path,
            "last_modified": _dt(mtime),
            "created": _dt(mtime),
            "content": None,
            "format": None,
            "mimetype": None,
            "size": None if res.is_dir else res.size,
            "writable": bool(writable),
            "hash": None,
            "hash_algorithm": None,
            "type": "directory" if res.is_dir else "file",
        }

    async def _listing(self, path: str) -> list[dict[str, Any]]:
        sp = await self.be.storage_path(path)
        if self.be.is_shares_folder(path) and self.be.config.auto_accept_shares:
            await self._accept_pending_shares()
        try:
            children = await self.be.run(lambda t: self.be.storage.list(t, sp))
        except StorageError as exc:
            raise http_error(exc, path) from exc
        models = []
        for child in children:
            if not self.allow_hidden and self._hidden_name(child.name):
                continue
            if not self._untyped.should_list(child.name):
                continue
            child_path = f"{path}/{child.name}" if path else child.name
            if not path and self.be.is_shares_folder(child.name):
                continue  # shadowed by the received-shares folder
            models.append(self._child_model(child_path, child))
        if not path and self.be.shares_folder:
            try:
                shares = await self._stat(self.be.shares_folder)
            except HTTPError:
                pass
            else:
                models.append(self._child_model(self.be.shares_folder, shares))
        return models

    def _child_model(self, path: str, res: Resource) -> dict[str, Any]:
        model = self._base_model(path, res)
        if res.is_dir:
            model["type"] = "directory"
            model["size"] = None
        elif path.endswith(".ipynb"):
            model["type"] = "notebook"
        else:
            model["mimetype"] = mimetypes.guess_type(path)[0]
        return model

    async def _accept_pending_shares(self) -> None:
        """``CS3Config.auto_accept_shares``: accept what is pending when the folder is listed."""
        try:
            accepted = await self.be.sharing.accept_pending()
        except StorageError as exc:
            self.log.warning("could not accept pending shares: %s", exc)
        else:
            if accepted:
                self.log.info("jupyter_cs3: accepted %d pending share(s)", accepted)

    async def _read(self, path: str) -> bytes:
        sp = await self.be.storage_path(path)
        try:
            data, _ = await self.be.run(lambda t: self.be.storage.read(t, sp))
        except StorageError as exc:
            raise http_error(exc, path) from exc
        return data

    # ---- ContentsManager API ----

    async def dir_exists(self, path: str) -> bool:
        try:
            return (await self._stat(path.strip("/"))).is_dir
        except HTTPError:
            return False

    async def file_exists(self, path: str = "") -> bool:
        try:
            return not (await self._stat(path.strip("/"))).is_dir
        except HTTPError:
            return False

    async def exists(self, path: str) -> bool:
        try:
            await self._stat(path.strip("/"))
        except HTTPError:
            return False
        return True

    async def get_kernel_path(self, path: str, model: Any = None) -> str:
        """The folder a notebook's kernel works in: the notebook's own (``CS3_CWD``, or with
        local storage the kernel's cwd; ``jupyter_cs3.kernels``)."""
        path = path.strip("/")
        if not path.endswith(".ipynb") and await self.dir_exists(path):
            return path
        return path.rsplit("/", 1)[0] if "/" in path else ""

    async def is_hidden(self, path: str) -> bool:
        return any(self._hidden_name(p) for p in path.strip("/").split("/") if p)

    async def get(
        self,
        path: str,
        content: bool = True,
        type: str | None = None,
        format: str | None = None,
        require_hash: bool = False,
    ) -> dict[str, Any]:
        path = path.strip("/")
        res = await self._stat(path)
        if res.is_dir:
            if type not in (None, "directory"):
                raise HTTPError(400, f"{path} is a directory, not a {type}", reason="bad type")
            model = self._base_model(path, res)
            model["type"] = "directory"
            if content:
                model["content"] = await self._listing(path)
                model["format"] = "json"
            return model
        if type == "directory":
            raise HTTPError(400, f"{path} is not a directory", reason="bad type")
        model = self._base_model(path, res)
        data = await self._read(path) if (content or require_hash) else b""
        if require_hash:
            model["hash"] = sha256(data)
            model["hash_algorithm"] = "sha256"
        if type == "notebook" or (type is None and path.endswith(".ipynb")):
            model["type"] = "notebook"
            if content:
                try:
                    nb = nbformat.reads(data.decode("utf-8"), as_version=4)
                except Exception as exc:
                    raise HTTPError(400, f"Unreadable Notebook: {path} {exc!r}") from exc
                self._untyped.mark_trusted_cells(nb, path)
                model["content"] = nb
                model["format"] = "json"
                self._untyped.validate_notebook_model(model)
            return model
        model["type"] = "file"
        model["mimetype"] = mimetypes.guess_type(path)[0]
        if content:
            if format in (None, "text"):
                try:
                    model["content"] = data.decode("utf-8")
                    model["format"] = "text"
                except UnicodeDecodeError as exc:
                    if format == "text":
                        raise HTTPError(400, f"{path} is not UTF-8 encoded") from exc
            if model["format"] is None:
                model["content"] = base64.b64encode(data).decode("ascii")
                model["format"] = "base64"
            if model["mimetype"] is None:
                model["mimetype"] = (
                    "text/plain" if model["format"] == "text" else "application/octet-stream"
                )
        return model

    def _bytes_of(self, model: dict[str, Any], path: str) -> bytes:
        if model["type"] == "notebook":
            nb = nbformat.from_dict(model["content"])
            self._untyped.check_and_sign(nb, path)
            text: str = nbformat.writes(nb)
            return text.encode("utf-8")
        fmt = model.get("format")
        if fmt not in ("text", "base64"):
            raise HTTPError(400, "Must specify format of file contents as 'text' or 'base64'")
        content = model["content"]
        try:
            if fmt == "text":
                return str(content).encode("utf-8")
            return base64.b64decode(str(content).encode("ascii"), validate=True)
        except Exception as exc:
            raise HTTPError(400, f"Encoding error saving {path}: {exc}") from exc

    async def save(self, model: dict[str, Any], path: str = "") -> dict[str, Any]:
        path = path.strip("/")
        if not path:
            raise HTTPError(400, "Can't save the root folder")
        if "type" not in model:
            raise HTTPError(400, "No file type provided")
        if "content" not in model and model["type"] != "directory":
            raise HTTPError(400, "No file content provided")
        self._untyped.run_pre_save_hooks(model=model, path=path)
        sp = await self.be.storage_path(path)
        message = None
        try:
            if model["type"] == "directory":
                try:
                    await self.be.run(lambda t: self.be.storage.mkdir(t, sp))
                except AlreadyExists:
                    if not await self.dir_exists(path):
                        raise
            elif model["type"] in ("notebook", "file"):
                data = self._bytes_of(model, path)
                chunk = model.get("chunk")
                if chunk is not None:
                    if chunk == 1 or path not in self._chunks:
                        self._chunks[path] = bytearray()
                    self._chunks[path] += data
                    if chunk != -1:
                        size = len(self._chunks[path])
                        out = {**self._base_model(path, await self._stat_or_placeholder(path))}
                        out.update(type=model["type"], size=size)
                        return out
                    data = bytes(self._chunks.pop(path))
                await self.be.run(lambda t: self.be.storage.write(t, sp, data))
            else:
                raise HTTPError(400, f"Unhandled contents type: {model['type']}")
        except StorageError as exc:
            raise http_error(exc, path) from exc
        if model["type"] == "notebook":
            validation = self._untyped.validate_notebook_model(
                {"type": "notebook", "content": nbformat.from_dict(model["content"])}
            )
            message = validation.get("message")
        out = await self.get(path, content=False)
        if message:
            out["message"] = message
        return out

    async def _stat_or_placeholder(self, path: str) -> Resource:
        try:
            return await self._stat(path)
        except HTTPError:
            from storage_bridge.types import Permissions, ResourceId

            return Resource(
                id=ResourceId("pending", path),
                path=path,
                name=posixpath.basename(path),
                is_dir=False,
                etag="",
                mtime=datetime.now(tz=UTC).timestamp(),
                size=0,
                permissions=Permissions.owner(),
            )

    async def delete_file(self, path: str) -> None:
        path = path.strip("/")
        if not path or self.be.is_shares_folder(path):
            raise HTTPError(400, f"Can't delete {path or 'the root folder'}")
        sp = await self.be.storage_path(path)
        try:
            await self.be.run(lambda t: self.be.storage.delete(t, sp))
        except Locked:
            await delete_through_hub(self.be, sp)  # issue 14: open in a room (hubops.py)
        except StorageError as exc:
            raise http_error(exc, path) from exc

    async def rename_file(self, old_path: str, new_path: str) -> None:
        old_path, new_path = old_path.strip("/"), new_path.strip("/")
        if old_path == new_path:
            return
        if self.be.is_shares_folder(old_path) or self.be.is_shares_folder(new_path):
            raise HTTPError(400, "The shares folder cannot be renamed")
        src = await self.be.storage_path(old_path)
        dst = await self.be.storage_path(new_path)
        try:
            await self.be.run(lambda t: self.be.storage.move(t, src, dst))
        except Locked:
            # issue 14: open in a room, whose lock storage wants: the hub moves it (hubops.py)
            await move_through_hub(self.be, src, dst)
        except StorageError as exc:
            raise http_error(exc, new_path if isinstance(exc, AlreadyExists) else old_path) from exc
