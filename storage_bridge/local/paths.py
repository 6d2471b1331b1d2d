"""Where user paths of the local backend lead: validation against the root and the data dir.

User paths are relative to the root ("/a/b.ipynb" == "a/b.ipynb"). ``..`` is refused, symlinks
are resolved and anything whose real path leaves the root is refused; the data dir is invisible
(``NotFound``). Resources report their canonical (symlink-free) path.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass
from pathlib import Path

from storage_bridge.errors import InvalidArgument, NotFound, PermissionDenied, Unavailable


@dataclass(frozen=True, slots=True)
class Loc:
    """A validated location: the canonical user path and the real filesystem path."""

    path: str  # "/" or "/a/b", no trailing slash
    real: str  # absolute, symlink-free, inside the root

    @property
    def is_root(self) -> bool:
        return self.path == "/"

    @property
    def name(self) -> str:
        return posixpath.basename(self.path)


@dataclass(frozen=True, slots=True)
class Root:
    """The storage root and the data dir, resolved (on the worker thread: this is blocking I/O)."""

    real: str  # realpath of the root
    prefix: str  # ``real`` with one trailing separator
    data_real: str  # realpath of the data dir

    @classmethod
    def resolve(cls, root: Path, data_dir: Path) -> Root:
        real = os.path.realpath(root)
        if not os.path.isdir(real):
            raise Unavailable(f"storage root is not a folder: {root}")
        os.makedirs(data_dir, exist_ok=True)
        prefix = real if real.endswith(os.sep) else real + os.sep
        return cls(real, prefix, os.path.realpath(data_dir))

    def locate(self, path: str) -> Loc:
        if not isinstance(path, str):
            raise InvalidArgument(f"not a path: {path!r}")
        if "\x00" in path:
            raise InvalidArgument("path contains a NUL byte")
        try:
            path.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidArgument("path is not valid UTF-8") from exc
        parts = [p for p in path.split("/") if p not in ("", ".")]
        # Refused outright rather than normalised: no legitimate client needs "..".
        if ".." in parts:
            raise PermissionDenied(f"path leaves the storage root: {path!r}")
        real = os.path.realpath(os.path.join(self.real, *parts))
        if real != self.real and not real.startswith(self.prefix):
            raise PermissionDenied(f"path leaves the storage root: {path!r}")
        data = self.data_real
        if real == data or real.startswith(data + os.sep):
            raise NotFound(f"no such file: {path!r}")
        rel = os.path.relpath(real, self.real)
        user_path = "/" if rel == "." else "/" + rel.replace(os.sep, "/")
        return Loc(user_path, real)

    def contains_data_dir(self, loc: Loc) -> bool:
        return self.data_real.startswith(loc.real.rstrip(os.sep) + os.sep)
