"""Cell ids: which ids count, and how a missing or clashing id is derived.

Every derived id is a hash of the cell and its position, never a uuid4, so the same input always
gives the same id (the same Y update, the same file).  There are two schemes, each kept byte for
byte as it was when it lived in its caller, because ids end up in stored files and live documents:

* :func:`stable_cell_id`, for loading a file (:mod:`crdt.documents`), exporting it, and cells that
  :mod:`crdt.apply` creates in the live doc: sha256 of ``index NUL cell_type NUL source``; a clash
  re-hashes the id.
* :func:`merged_cell_id`, for cells of a merge result (:mod:`crdt.merge`): sha256 of the JSON
  ``[cell_type, source, merged position]`` plus ``#attempt``; a clash bumps the attempt.

The two never have to agree: an id is derived only where a cell has none (or a taken one), and
from then on the cell carries it; no step re-derives an id to find a cell again.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Container, Mapping, Sequence
from typing import Any, Final

__all__ = [
    "ID_PATTERN",
    "effective_ids",
    "finalize_ids",
    "merged_cell_id",
    "stable_cell_id",
    "unique_cell_ids",
]

ID_PATTERN: Final = re.compile(r"[a-zA-Z0-9_-]{1,64}")  # nbformat 4.5 schema for cell ids

_DIGEST_CHARS: Final = 12


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:_DIGEST_CHARS]


def stable_cell_id(index: int, cell: Mapping[str, Any], taken: Container[str]) -> str:
    """The id of the cell at ``index`` derived from its type and source, not in ``taken``."""
    source = cell.get("source", "")
    text = "".join(source) if isinstance(source, list) else str(source)
    cell_id = _digest(f"{index}\0{cell.get('cell_type')}\0{text}")
    while cell_id in taken:
        cell_id = _digest(cell_id)
    return cell_id


def unique_cell_ids(cells: Sequence[Mapping[str, Any]]) -> list[str]:
    """Each cell's id, or a :func:`stable_cell_id` where it is missing, empty or a repeat."""
    seen: set[str] = set()
    out: list[str] = []
    for index, cell in enumerate(cells):
        cell_id = cell.get("id")
        if not isinstance(cell_id, str) or not cell_id or cell_id in seen:
            cell_id = stable_cell_id(index, cell, seen)
        seen.add(cell_id)
        out.append(cell_id)
    return out


def merged_cell_id(cell: Mapping[str, Any], position: int, taken: Container[str]) -> str:
    """A fresh id that depends only on the cell and its merged position, not in ``taken``."""
    payload = json.dumps([cell.get("cell_type"), cell.get("source"), position], sort_keys=True)
    attempt = 0
    while True:
        cell_id = _digest(f"{payload}#{attempt}")
        if cell_id not in taken:
            return cell_id
        attempt += 1


def finalize_ids(cells: list[dict[str, Any]], from_ours: Sequence[bool], minor: int) -> None:
    """Unique ids for nbformat >= 4.5 (ours' cells claim first), none below (schema forbids).

    In place: ids that are missing, invalid or taken get a :func:`merged_cell_id`.
    """
    if minor < 5:
        for cell in cells:
            cell.pop("id", None)
        return
    taken: set[str] = set()
    needs: list[int] = []
    for priority in (True, False):
        for index, cell in enumerate(cells):
            if from_ours[index] != priority:
                continue
            cell_id = cell.get("id")
            if isinstance(cell_id, str) and ID_PATTERN.fullmatch(cell_id) and cell_id not in taken:
                taken.add(cell_id)
            else:
                needs.append(index)
    for index in sorted(needs):
        new_id = merged_cell_id(cells[index], index, taken)
        taken.add(new_id)
        cells[index]["id"] = new_id


def effective_ids(cells: Sequence[Mapping[str, Any]]) -> list[str | None]:
    """Each cell's id if it is a non-empty string seen for the first time, else None.

    What cell matching and the merge go by: a later duplicate of an id is treated as a cell
    without one.
    """
    seen: set[str] = set()
    out: list[str | None] = []
    for cell in cells:
        cell_id = cell.get("id")
        if isinstance(cell_id, str) and cell_id and cell_id not in seen:
            seen.add(cell_id)
            out.append(cell_id)
        else:
            out.append(None)
    return out
