"""Turn a live ``YNotebook`` into a target notebook with ordinary, minimal Y operations.

Used to apply a merge result (:mod:`crdt.merge`) to the live document: every connected client
receives it as a normal update, and concurrent edits by other peers survive wherever the target
did not touch the same thing.

Why not ``YNotebook.set()``: jupyter_ydoc's ``set`` (``_set`` / ``_update_cell``) does diff cells by
id, but everything below the cell level is replaced wholesale: a changed source is ``clear()`` +
insert (a peer's concurrent typing in that cell is lost or duplicated), metadata is ``clear()`` +
``update()``, changed outputs are cleared, a cell with stream outputs is recreated, the notebook
metadata ``Map`` is replaced, and every moved cell is recreated even when moving a single other cell
would do.  It also deletes ``state`` keys other than dirty/path/document_id.  What is reused:
``YNotebook.create_ycell`` for cells that must be created (it builds the schema's nested types),
and :func:`crdt.matching.match_cells` for cells without ids.

What this does, all in one transaction:

* cells matched by id (by position and content for nbformat < 4.5) and of the same ``cell_type``
  stay the same Y objects;
* a changed source is edited with character-level deletes/inserts from a line diff refined by a
  character diff (offsets converted to UTF-8 bytes, pycrdt's ``Text`` index unit);
* metadata maps are updated key by key, outputs element by element, other keys one by one;
* cell order: the longest run of cells already in target order stays; the other cells are deleted
  and re-created at their new place.  Y arrays have no move that JupyterLab's yjs 13 understands
  (pycrdt 0.14 exposes none either; JupyterLab itself moves cells by delete + insert), so a moved
  cell is necessarily a new Y object;
* a cell whose type changes, or whose nested types are not the schema's, is re-created: frontends
  build a cell's model (and observers) by type when the cell appears;
* the ``state`` map is never touched; ``execution_state`` of kept cells is left alone.

Numbers need no cast: pycrdt stores every Python number as a float, which is what yjs expects.
``read_notebook`` is a fast ``YNotebook.get()`` for the merge's *ours* side.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from difflib import SequenceMatcher
from typing import Any, Final

from jupyter_ydoc import YNotebook
from pycrdt import Array, Map, Text

from .cell_ids import stable_cell_id
from .matching import match_cells, stable_subsequence
from .normalize import normalized
from .textmerge import split_lines

__all__ = ["apply_notebook", "edit_text", "read_notebook"]

JSONDict = dict[str, Any]

# Character-level refinement of a changed block of lines is quadratic; above this many characters
# per side the block is replaced as a whole (minus its common prefix and suffix).
_CHAR_DIFF_LIMIT: Final = 4000


def apply_notebook(ynb: YNotebook, target: Mapping[str, Any]) -> None:
    """Make ``ynb`` hold ``target`` (an nbformat-4 dict) with minimal Y operations.

    Afterwards ``ynb.get()`` equals ``target`` up to jupyter_ydoc's own normalisations (joined
    multi-line strings, empty attachments dropped, ids hidden below nbformat 4.5).  Target cells
    without an id (nbformat < 4.5) that have to be created get an id derived from their content.
    """
    nb = normalized(target)  # only read: Y copies every value it is given
    doc = ynb.ydoc
    with doc.transaction():
        _apply_header(doc.get("meta", type=Map), nb)
        _apply_cells(ynb, nb["cells"])


# --------------------------------------------------------------------------- notebook level


def _apply_header(ymeta: Map[Any], nb: JSONDict) -> None:
    for key in ("nbformat", "nbformat_minor"):
        if key in nb and ymeta.get(key) != nb[key]:
            ymeta[key] = nb[key]
    metadata = nb.get("metadata", {})
    ymetadata = ymeta.get("metadata")
    if isinstance(ymetadata, Map):
        _apply_map(ymetadata, metadata)
    else:
        ymeta["metadata"] = Map(metadata)


def _apply_map(ymap: Map[Any], target: Mapping[str, Any]) -> None:
    """Set/delete only the top-level keys whose values differ."""
    current = _to_json(ymap)
    for key in [k for k in current if k not in target]:
        del ymap[key]
    for key, value in target.items():
        if key not in current or current[key] != value:
            ymap[key] = value


# --------------------------------------------------------------------------- cells


def _to_json(ytype: Array[Any] | Map[Any]) -> Any:
    # str() is yrs' native JSON encoding: one call instead of pycrdt's per-key Python to_py(),
    # an order of magnitude faster on big notebooks.  Integral floats come out as ints, as
    # YNotebook.get() has them.
    return json.loads(str(ytype))


def _cell_view(raw: Any) -> JSONDict:
    """A Y cell as a Python dict comparable with nbformat cells."""
    if not isinstance(raw, dict):
        return {}
    raw.pop("execution_state", None)
    return raw


def read_notebook(ynb: YNotebook) -> JSONDict:
    """The live notebook as a dict: ``ynb.get(deduplicate=False)``, but fast and read-only.

    Same normalisations as jupyter_ydoc (no ``execution_state``, ids hidden below nbformat 4.5,
    empty attachments of markdown/raw cells dropped); numbers are ints where integral.  Unlike
    ``get()`` it never writes to the document (``get()`` repairs duplicated ids in place).
    """
    meta = _to_json(ynb.ydoc.get("meta", type=Map))
    major = int(meta.get("nbformat", 0))
    minor = int(meta.get("nbformat_minor", 0))
    cells = []
    for raw in _to_json(ynb.ycells):
        cell = _cell_view(raw)
        if major == 4 and minor <= 4:
            cell.pop("id", None)
        if cell.get("cell_type") in ("raw", "markdown") and not cell.get("attachments", True):
            del cell["attachments"]  # as YNotebook._cell_to_py
        cells.append(cell)
    return {
        "cells": cells,
        "metadata": meta.get("metadata", {}),
        "nbformat": major,
        "nbformat_minor": minor,
    }


def _reusable(ycell: Any, target: Mapping[str, Any]) -> bool:
    """Whether the Y cell has the nested types the schema (and the frontend's model) expects."""
    if not isinstance(ycell, Map):
        return False
    if not isinstance(ycell.get("source"), Text) or not isinstance(ycell.get("metadata"), Map):
        return False
    return target.get("cell_type") != "code" or isinstance(ycell.get("outputs"), Array)


def _unique_target_ids(targets: list[JSONDict], current: list[JSONDict]) -> None:
    """Give later duplicates of an id a derived one (in place, on our normalised copy).

    merge_notebooks never produces duplicates; this keeps any other target from putting two
    cells with one id into the live doc (jupyter_ydoc would then rename one with a random id).
    """
    seen: set[str] = set()
    dups = []
    for ti, target in enumerate(targets):
        cid = target.get("id")
        if isinstance(cid, str):
            if cid in seen:
                dups.append(ti)
            seen.add(cid)
    if dups:
        taken = seen | {str(c["id"]) for c in current if c.get("id") is not None}
        for ti in dups:
            new_id = stable_cell_id(ti, targets[ti], taken)
            taken.add(new_id)
            targets[ti] = {**targets[ti], "id": new_id}


def _apply_cells(ynb: YNotebook, targets: list[JSONDict]) -> None:
    ycells: Array[Any] = ynb.ycells
    current = [_cell_view(raw) for raw in _to_json(ycells)]
    _unique_target_ids(targets, current)
    pairs = match_cells(current, targets)

    # A pair is kept in place only if types agree and the Y cell is structurally sound; the
    # longest run of kept pairs already in target order stays, everything else is re-created.
    candidates = sorted(
        (ti, ci)
        for ci, ti in pairs.items()
        if current[ci].get("cell_type") == targets[ti].get("cell_type")
        and (_same_cell(current[ci], targets[ti]) or _reusable(ycells[ci], targets[ti]))
    )
    stable = stable_subsequence([ci for _, ci in candidates])
    keep = {candidates[k][1]: candidates[k][0] for k in stable}  # current index -> target index

    # 1. edit kept cells in place (indices are still the original ones)
    for ci, ti in keep.items():
        if not _same_cell(current[ci], targets[ti]):
            _update_cell(ycells[ci], current[ci], targets[ti])

    # 2. delete the rest, from the end, one slice per run of consecutive cells
    drop = [ci for ci in range(len(current)) if ci not in keep]
    while drop:
        stop = drop.pop() + 1
        start = stop - 1
        while drop and drop[-1] == start - 1:
            start = drop.pop()
        del ycells[start:stop]

    # 3. create the missing cells at their target positions (kept ones are already in order)
    kept_targets = set(keep.values())
    taken = {str(c.get("id")) for c in current if c.get("id") is not None}
    taken.update(str(t["id"]) for t in targets if t.get("id") is not None)
    for ti, target in enumerate(targets):
        if ti in kept_targets:
            continue
        cell = target
        if not cell.get("id"):
            # jupyter_ydoc would use uuid4; a derived id keeps the Y update deterministic
            new_id = stable_cell_id(ti, cell, taken)
            taken.add(new_id)
            cell = {**cell, "id": new_id}
        ycells.insert(ti, ynb.create_ycell(cell))


def _same_cell(current: Mapping[str, Any], target: Mapping[str, Any]) -> bool:
    if "id" not in target:  # nbformat < 4.5: the Y cell's hidden id is not part of the content
        return {k: v for k, v in current.items() if k != "id"} == target
    return current == target


def _update_cell(ycell: Map[Any], current: Mapping[str, Any], target: Mapping[str, Any]) -> None:
    for key in [k for k in current if k not in target and k != "id"]:
        del ycell[key]
    for key, value in target.items():
        old = current.get(key)
        if key in current and old == value:
            continue
        if key == "source" and isinstance(old, str):
            edit_text(ycell["source"], old, value)
        elif key == "metadata" and isinstance(value, dict):
            _apply_map(ycell["metadata"], value)
        elif key == "outputs" and isinstance(old, list) and isinstance(value, list):
            _apply_outputs(ycell["outputs"], old, value)
        else:
            ycell[key] = value


def _youtput(output: Mapping[str, Any]) -> Map[Any]:
    # the schema keeps stream text as Text (jupyter_ydoc YNotebook._create_youtputs)
    value = dict(output)
    if value.get("output_type") == "stream" and isinstance(value.get("text"), str):
        value["text"] = Text(value["text"])
    return Map(value)


def _apply_outputs(
    youtputs: Array[Any], old: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]]
) -> None:
    """Replace only the outputs that differ (kept outputs stay the same Y objects)."""
    old_keys = [json.dumps(o, sort_keys=True) for o in old]
    new_keys = [json.dumps(o, sort_keys=True) for o in new]
    opcodes = SequenceMatcher(None, old_keys, new_keys, autojunk=False).get_opcodes()
    for tag, i1, i2, j1, j2 in reversed(opcodes):
        if tag == "equal":
            continue
        if i2 > i1:
            del youtputs[i1:i2]
        for offset, output in enumerate(new[j1:j2]):
            youtputs.insert(i1 + offset, _youtput(output))


# --------------------------------------------------------------------------- text


def _text_ops(old: str, new: str) -> list[tuple[int, int, str]]:
    """Non-overlapping (start, end, replacement) edits in ``old``'s character indices, ascending.

    Lines first (cheap, and keeps edits of distinct lines apart), then characters inside each
    changed block, so typing-sized changes become typing-sized operations.
    """
    a, b = split_lines(old), split_lines(new)
    offsets = [0]
    for line in a:
        offsets.append(offsets[-1] + len(line))
    ops: list[tuple[int, int, str]] = []
    matcher = SequenceMatcher(None, a, b, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        start, end = offsets[i1], offsets[i2]
        old_chunk, new_chunk = old[start:end], "".join(b[j1:j2])
        if tag != "replace":
            ops.append((start, end, new_chunk))
        elif len(old_chunk) <= _CHAR_DIFF_LIMIT and len(new_chunk) <= _CHAR_DIFF_LIMIT:
            chars = SequenceMatcher(None, old_chunk, new_chunk, autojunk=False)
            for ctag, c1, c2, d1, d2 in chars.get_opcodes():
                if ctag != "equal":
                    ops.append((start + c1, start + c2, new_chunk[d1:d2]))
        else:
            prefix = 0
            limit = min(len(old_chunk), len(new_chunk))
            while prefix < limit and old_chunk[prefix] == new_chunk[prefix]:
                prefix += 1
            suffix = 0
            while (
                suffix < limit - prefix
                and old_chunk[len(old_chunk) - 1 - suffix] == new_chunk[len(new_chunk) - 1 - suffix]
            ):
                suffix += 1
            ops.append(
                (
                    start + prefix,
                    end - suffix,
                    new_chunk[prefix : len(new_chunk) - suffix],
                )
            )
    return ops


def edit_text(ytext: Text, old: str, new: str) -> None:
    """Turn ``ytext`` (currently ``old``) into ``new`` with character-level deletes/inserts.

    Indices are converted to UTF-8 byte offsets, the unit of pycrdt's ``Text``; edits are applied
    from the end so earlier offsets stay valid.
    """
    if old == new:
        return
    ops = _text_ops(old, new)
    ascii_only = old.isascii()
    with ytext.doc.transaction():  # one update, also when called on its own
        for start, end, replacement in reversed(ops):
            if ascii_only:
                b_start, b_end = start, end
            else:
                b_start = len(old[:start].encode("utf-8"))
                b_end = b_start + len(old[start:end].encode("utf-8"))
            if b_end > b_start:
                del ytext[b_start:b_end]
            if replacement:
                ytext.insert(b_start, replacement)
