"""The name of a room, ``{format}:{type}:{fileId}``, parsed once into its three parts."""

from __future__ import annotations

from dataclasses import dataclass

from crdt.documents import DocumentKind, kind_for
from storage_bridge.types import Resource, ResourceId


@dataclass(frozen=True, slots=True)
class RoomKey:
    format: str
    type: str
    file_id: str

    @classmethod
    def parse(cls, name: str) -> RoomKey:
        """``json:notebook:<fileId>`` -> RoomKey (raises ``ValueError`` if it has no 3 parts)."""
        parts = name.split(":", 2)
        if len(parts) != 3:
            raise ValueError("room must be format:type:fileId")
        return cls(*parts)

    @classmethod
    def for_resource(cls, resource: Resource) -> RoomKey:
        """The room JupyterLab would open a file in (its kind chosen by the file's name)."""
        fmt, typ = ("json", "notebook") if resource.name.endswith(".ipynb") else ("text", "file")
        return cls(fmt, typ, resource.id.to_file_id())

    def __str__(self) -> str:
        return f"{self.format}:{self.type}:{self.file_id}"

    @property
    def kind(self) -> DocumentKind | None:
        """The document kind, or None when the hub does not support ``format:type``."""
        return kind_for(self.format, self.type)

    @property
    def resource_id(self) -> ResourceId:
        """The storage resource (raises ``InvalidArgument`` for a malformed file id)."""
        return ResourceId.from_file_id(self.file_id)

    def of_file(self, file_id: str) -> RoomKey:
        """The room of another file of the same kind (a work copy, its original)."""
        return RoomKey(self.format, self.type, file_id)
