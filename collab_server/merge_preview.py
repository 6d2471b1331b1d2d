"""Merging a work copy back, shown before it is applied (issue 14).

Pure functions over notebook bytes: ``preview`` says what the three-way merge of a work copy
(*theirs*) into its original (*ours*, the live document) from the copy's starting point (*base*)
does by itself, and where a person must choose; ``resolve`` builds the notebook the person chose.
The hub applies that notebook as an ordinary merge whose base is *ours* (room_ops.py), so edits
made to the original meanwhile are kept and open clients receive plain Y updates.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any, Literal

from crdt.merge import MergeResult, merge_notebooks

Choice = Literal["mine", "theirs", "both"]
CHOICES: tuple[Choice, ...] = ("mine", "theirs", "both")
JSONDict = dict[str, Any]


class PreviewError(ValueError):
    """Inputs that cannot be merged (not notebooks), or choices that do not fit the merge."""


@dataclass(frozen=True, slots=True)
class _Inputs:
    base: JSONDict
    theirs: JSONDict
    ours: JSONDict


def _load(data: bytes, what: str) -> JSONDict:
    try:
        parsed = json.loads(data)
    except ValueError as exc:
        raise PreviewError(f"the {what} is not JSON: {exc}") from exc
    if not isinstance(parsed, dict) or not isinstance(parsed.get("cells"), list):
        raise PreviewError(f"the {what} is not a notebook")
    return parsed


def _source(cell: JSONDict | None) -> str:
    if cell is None:
        return ""
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def _by_id(nb: JSONDict) -> dict[str, JSONDict]:
    return {c["id"]: c for c in nb["cells"] if isinstance(c.get("id"), str)}


def _merge(base: bytes, theirs: bytes, ours: bytes) -> tuple[_Inputs, MergeResult]:
    inputs = _Inputs(_load(base, "base"), _load(theirs, "work copy"), _load(ours, "original"))
    result = merge_notebooks(inputs.base, inputs.theirs, inputs.ours)
    if any(c.field == "notebook" for c in result.conflicts):
        raise PreviewError("; ".join(c.message for c in result.conflicts))
    return inputs, result


def preview(base: bytes, theirs: bytes, ours: bytes) -> JSONDict:
    """What merging ``theirs`` into ``ours`` does: automatic changes, and conflicts to choose."""
    inputs, result = _merge(base, theirs, ours)
    ours_cells, theirs_cells = _by_id(inputs.ours), _by_id(inputs.theirs)
    merged_ids = set()
    auto: list[JSONDict] = []
    for index, cell in enumerate(result.notebook["cells"]):
        cell_id = cell.get("id")
        merged_ids.add(cell_id)
        before = ours_cells.get(cell_id) if isinstance(cell_id, str) else None
        if before is None:
            auto.append({"kind": "added", "cellId": cell_id, "index": index,
                         "source": _source(cell), "before": ""})  # fmt: skip
        elif _source(before) != _source(cell) or before.get("cell_type") != cell.get("cell_type"):
            auto.append({"kind": "changed", "cellId": cell_id, "index": index,
                         "source": _source(cell), "before": _source(before)})  # fmt: skip
    for cell_id, cell in ours_cells.items():
        if cell_id not in merged_ids:
            auto.append({"kind": "deleted", "cellId": cell_id, "index": None,
                         "source": "", "before": _source(cell)})  # fmt: skip
    conflicts: list[JSONDict] = []
    notes = list(result.notes)
    for conflict in result.conflicts:
        if conflict.field == "source" and conflict.cell_id is not None:
            cells = result.notebook["cells"]
            merged_cell = next(c for c in cells if c.get("id") == conflict.cell_id)
            conflicts.append({
                "cellId": conflict.cell_id,
                "index": conflict.cell_index,
                "mine": _source(merged_cell),
                "theirs": _source(theirs_cells.get(conflict.cell_id)),
                "message": conflict.message,
            })  # fmt: skip
        else:
            notes.append(conflict.message)  # kept as ours; said, not offered as a choice
    return {"auto": auto, "conflicts": conflicts, "notes": notes}


def resolve(base: bytes, theirs: bytes, ours: bytes, choices: dict[str, str]) -> bytes:
    """The merged notebook with each source conflict settled as chosen (default: mine)."""
    inputs, result = _merge(base, theirs, ours)
    theirs_cells = _by_id(inputs.theirs)
    open_conflicts = {c.cell_id for c in result.conflicts if c.field == "source" and c.cell_id}
    unknown = set(choices) - open_conflicts
    if unknown:
        raise PreviewError(f"no conflict in cell(s) {sorted(unknown)}: preview the merge again")
    bad = {k: v for k, v in choices.items() if v not in CHOICES}
    if bad:
        raise PreviewError(f"a choice is one of {', '.join(CHOICES)}, not {bad}")
    cells: list[JSONDict] = []
    taken = {c.get("id") for c in result.notebook["cells"]}
    for cell in result.notebook["cells"]:
        choice = choices.get(cell.get("id", ""), "mine")
        theirs_source = _source(theirs_cells.get(cell.get("id", "")))
        if choice == "theirs":
            cell = {**cell, "source": theirs_source}
        cells.append(cell)
        if choice == "both":
            extra = copy.deepcopy(cell)
            extra["source"] = theirs_source
            extra["id"] = _free_id(f"{cell['id']}-copy", taken)
            taken.add(extra["id"])
            cells.append(extra)
    notebook = {**result.notebook, "cells": cells}
    return json.dumps(notebook, indent=1, ensure_ascii=False).encode()


def _free_id(stem: str, taken: set[Any]) -> str:
    candidate, n = stem[:60], 2
    while candidate in taken:
        candidate, n = f"{stem[:56]}-{n}", n + 1
    return candidate
