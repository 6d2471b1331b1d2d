"""Document kinds: how a file's bytes become a Y document and back.

One ``DocumentKind`` per ``format:type`` pair JupyterLab asks for. The schema is jupyter_ydoc's
(``YNotebook`` / ``YUnicode``), so unmodified JupyterLab clients read and write it.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass
from typing import Any, Protocol

import nbformat
from jupyter_ydoc import YNotebook, YUnicode
from jupyter_ydoc.ybasedoc import YBaseDoc
from nbformat.v4.rwbase import split_lines, strip_transient
from pycrdt import Doc

from crdt.apply import apply_notebook, edit_text, read_notebook
from crdt.cell_ids import unique_cell_ids
from crdt.errors import ExportError, LoadError
from crdt.merge import merge_notebooks
from crdt.textmerge import merge3_text

# Deterministic loads use a fixed client id so that two rebuilds of the same bytes produce
# identical Y items (and a client holding one rebuild merges cleanly into the other).
DETERMINISTIC_CLIENT_ID = 0


class DocumentKind(Protocol):
    @property
    def format(self) -> str: ...

    @property
    def type(self) -> str: ...

    def bind(self, doc: Doc[Any]) -> YBaseDoc:
        """The jupyter_ydoc view over a Y doc of this kind."""
        ...

    def load(self, data: bytes) -> bytes:
        """Deterministically turn file bytes into a Y update (raises ``LoadError``)."""
        ...

    def export(self, ydoc: YBaseDoc) -> bytes:
        """The file bytes of the live document (raises ``ExportError``)."""
        ...

    def read(self, ydoc: YBaseDoc) -> Any:
        """The live document as plain Python data (on the doc's own thread)."""
        ...

    def serialize(self, content: Any) -> bytes:
        """File bytes of what ``read`` returned; pure, so it may run on any thread."""
        ...

    def merge_into(self, ydoc: YBaseDoc, base: bytes, theirs: bytes) -> list[str]:
        """Three-way merge an external version into the live doc with ordinary Y operations.

        ``base`` is the version the live doc last read or wrote. Returns what could not be
        merged (empty when clean): the caller keeps ``theirs`` as a conflict copy then.
        """
        ...


def content_hash(data: bytes) -> str:
    """The hash clients see in ``state.hash`` (same as Jupyter's contents manager: sha256)."""
    return hashlib.sha256(data).hexdigest()


def _deterministic_update(kind: DocumentKind, content: Any) -> bytes:
    doc: Doc[Any] = Doc(client_id=DETERMINISTIC_CLIENT_ID)
    view = kind.bind(doc)
    view.set(content)
    return doc.get_update()


@dataclass(frozen=True)
class NotebookKind:
    format: str = "json"
    type: str = "notebook"

    def bind(self, doc: Doc[Any]) -> YBaseDoc:
        return YNotebook(doc)

    def load(self, data: bytes) -> bytes:
        return _deterministic_update(self, parse_notebook(data))

    def export(self, ydoc: YBaseDoc) -> bytes:
        return self.serialize(self.read(ydoc))

    def serialize(self, content: Any) -> bytes:
        return serialize_notebook(content)

    def read(self, ydoc: YBaseDoc) -> dict[str, Any]:
        assert isinstance(ydoc, YNotebook)
        nb = read_notebook(ydoc)  # 4x faster than ydoc.get() and read-only (measured, 1 MB)
        ids = [c.get("id") for c in nb["cells"] if c.get("id")]
        if len(ids) != len(set(ids)):
            # YNotebook.get() repairs duplicated ids in the live doc (drops exact duplicates,
            # renames the others); the repair is an ordinary Y change every client receives.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                nb = ydoc.get()
        return nb

    def merge_into(self, ydoc: YBaseDoc, base: bytes, theirs: bytes) -> list[str]:
        assert isinstance(ydoc, YNotebook)
        try:
            base_nb = parse_notebook(base)
        except LoadError as exc:
            return [f"the last known version is unreadable ({exc}); kept the live document"]
        result = merge_notebooks(base_nb, theirs, read_notebook(ydoc))
        apply_notebook(ydoc, result.notebook)
        return [c.message for c in result.conflicts]


@dataclass(frozen=True)
class TextKind:
    format: str = "text"
    type: str = "file"

    def bind(self, doc: Doc[Any]) -> YBaseDoc:
        return YUnicode(doc)

    def load(self, data: bytes) -> bytes:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise LoadError(f"not UTF-8 text: {exc}") from exc
        return _deterministic_update(self, text)

    def export(self, ydoc: YBaseDoc) -> bytes:
        return self.serialize(self.read(ydoc))

    def read(self, ydoc: YBaseDoc) -> str:
        text = ydoc.get()
        assert isinstance(text, str)
        return text

    def serialize(self, content: Any) -> bytes:
        assert isinstance(content, str)
        return content.encode("utf-8")

    def merge_into(self, ydoc: YBaseDoc, base: bytes, theirs: bytes) -> list[str]:
        assert isinstance(ydoc, YUnicode)
        try:
            their_text = theirs.decode("utf-8")
        except UnicodeDecodeError:
            return ["the external version is not UTF-8 text"]
        ours = ydoc.get()
        merged = merge3_text(base.decode("utf-8", "replace"), their_text, ours)
        edit_text(ydoc._ysource, ours, merged.text)
        return [
            f"both sides changed lines {c.base[0] + 1}-{c.base[1]} differently"
            for c in merged.conflicts
        ]


KINDS: dict[tuple[str, str], DocumentKind] = {
    ("json", "notebook"): NotebookKind(),
    ("text", "file"): TextKind(),
}


def kind_for(fmt: str, typ: str) -> DocumentKind | None:
    return KINDS.get((fmt, typ))


def parse_notebook(data: bytes) -> dict[str, Any]:
    """Parse .ipynb bytes into a v4 notebook dict with deterministic, unique cell ids.

    Old notebooks (nbformat < 4.5) get ids derived from position and content rather than uuid4,
    so that the load stays deterministic; ids are stripped again on export for < 4.5.
    """
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise LoadError(f"not JSON: {exc}") from exc
    if not isinstance(raw, dict) or ("cells" not in raw and raw.get("nbformat", 0) >= 4):
        raise LoadError("not a notebook: no cells")
    try:
        # v3 and older: let nbformat upgrade it
        upgrade = raw.get("nbformat") != 4
        nb = nbformat.reads(json.dumps(raw), as_version=4) if upgrade else raw  # type: ignore[no-untyped-call]
    except Exception as exc:  # nbformat raises a zoo of exception types
        raise LoadError(f"not a notebook: {exc}") from exc
    cells = nb.get("cells")
    if not isinstance(cells, list):
        raise LoadError("not a notebook: cells is not a list")
    for index, cell in enumerate(cells):
        if not isinstance(cell, dict) or "cell_type" not in cell:
            raise LoadError(f"not a notebook: cell {index} is malformed")
        if isinstance(cell.get("source"), list):
            cell["source"] = "".join(cell["source"])
    for cell, cell_id in zip(cells, unique_cell_ids(cells), strict=True):
        cell["id"] = cell_id
    if not cells:
        # YNotebook.set would insert a default cell with a random id: make it deterministic.
        cells.append(
            {
                "cell_type": "code",
                "execution_count": None,
                "metadata": {"trusted": True},
                "outputs": [],
                "source": "",
                "id": "initial-cell",
            }
        )
    return dict(nb)


def serialize_notebook(nb: dict[str, Any]) -> bytes:
    """Validate once and serialise exactly as Jupyter's contents manager does.

    Same bytes as ``nbformat.writes`` (indent 1, sorted keys, multi-line strings as lists,
    transient fields dropped), but the schema runs once: ``nbformat.validator.normalize`` +
    ``validate`` + ``writes`` validated the notebook three times and deep-copied it, 165 ms for
    a 1 MB notebook against ~60 ms here (measured).
    """
    try:
        node = nbformat.from_dict(_with_unique_ids(nb))  # type: ignore[no-untyped-call]
        nbformat.validate(node)
    except Exception as exc:  # ValidationError, SchemaError, KeyError ... all mean "invalid"
        raise ExportError(f"notebook does not validate: {exc}") from exc
    # from_dict built new containers, so splitting lines in place touches nothing of the caller's
    node = strip_transient(split_lines(node))  # type: ignore[no-untyped-call]
    text = json.dumps(node, indent=1, sort_keys=True, separators=(",", ": "), ensure_ascii=False)
    return (text + "\n").encode("utf-8")


def warm_up_export() -> None:
    """Build nbformat's schema validator (a few hundred ms, once per process) ahead of time."""
    serialize_notebook(dict(nbformat.v4.new_notebook()))  # type: ignore[no-untyped-call]


def _with_unique_ids(nb: dict[str, Any]) -> dict[str, Any]:
    """nbformat >= 4.5 cells need unique ids: add missing ones, rename repeats (deterministic)."""
    if (nb.get("nbformat"), nb.get("nbformat_minor", 0)) < (4, 5):
        return nb
    cells = nb.get("cells", [])
    unique = [
        cell if cell.get("id") == cell_id else {**cell, "id": cell_id}
        for cell, cell_id in zip(cells, unique_cell_ids(cells), strict=True)
    ]
    return {**nb, "cells": unique}
