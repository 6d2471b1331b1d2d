"""Three-way merges of the values inside a notebook: dicts, scalars, one cell, the header.

The policy is :mod:`crdt.merge`'s (its module docstring): the side that changed a value wins;
both sides changing it differently keeps ours (the live value), which is a conflict unless what
changed is recomputable (outputs) or volatile UI/kernel state, which only gets a note.

Conflicts are collected as ``(field, message)`` pairs and notes as strings, in lists the caller
passes in, so one cell's or one header's findings can be attributed by the caller.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from .textmerge import merge3_text

__all__ = [
    "MISSING",
    "VOLATILE_CELL_METADATA",
    "VOLATILE_NOTEBOOK_METADATA",
    "content_view",
    "merge_cell",
    "merge_dict",
    "merge_header",
    "merge_nbformat_minor",
    "merge_scalar",
]

JSONDict = dict[str, Any]
Findings = list[tuple[str, str]]  # (field, message) of each conflict

_RUN_KEYS: Final = ("outputs", "execution_count")
VOLATILE_CELL_METADATA: Final = frozenset(
    {"collapsed", "scrolled", "jupyter", "execution", "ExecuteTime", "trusted"}
)
VOLATILE_NOTEBOOK_METADATA: Final = frozenset({"language_info", "widgets"})

# YNotebook.set() fills these in when a notebook lacks them, so the live doc has them although the
# file does not.  They count as absent: a real kernelspec added by an external writer must not
# collide with the placeholder.
_YDOC_PLACEHOLDERS: Final = {
    "language_info": {"name": ""},
    "kernelspec": {"name": "", "display_name": ""},
}


class _Missing:
    """Marks an absent key, distinct from a present ``None`` value."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"


MISSING: Final = _Missing()


def merge_dict(
    base: Mapping[str, Any],
    theirs: Mapping[str, Any],
    ours: Mapping[str, Any],
    path: str,
    volatile: frozenset[str],
    all_volatile: bool,
    conflicts: Findings,
    notes: list[str],
) -> JSONDict:
    """Key-wise three-way merge; both-changed keys keep ours (conflict unless volatile)."""
    out: JSONDict = {}
    keys = list(ours) + [k for k in theirs if k not in ours]
    for key in keys:
        b = base.get(key, MISSING)
        t = theirs.get(key, MISSING)
        o = ours.get(key, MISSING)
        value: Any
        if t in (b, o):
            value = o
        elif o == b:
            value = t
        elif isinstance(t, dict) and isinstance(o, dict) and isinstance(b, dict | _Missing):
            value = merge_dict(
                b if isinstance(b, dict) else {},
                t,
                o,
                f"{path}.{key}",
                frozenset(),
                all_volatile or key in volatile,
                conflicts,
                notes,
            )
        else:
            value = o
            where = f"{path}.{key}"
            if all_volatile or key in volatile:
                notes.append(f"{where}: changed on both sides; kept the live value")
            else:
                conflicts.append((where, f"{where} changed on both sides; kept the live value"))
        if value is not MISSING:
            out[key] = value
    return out


def merge_scalar(b: Any, t: Any, o: Any) -> tuple[Any, bool]:
    """(merged value, both sides changed it differently)."""
    if t in (b, o):
        return o, False
    if o == b:
        return t, False
    return o, True


def content_view(cell: Mapping[str, Any]) -> JSONDict:
    """What counts as a human edit: everything but id, run results and volatile UI metadata."""
    view = {k: v for k, v in cell.items() if k not in ("id", "outputs", "execution_count")}
    metadata = view.get("metadata")
    if isinstance(metadata, dict):
        view["metadata"] = {k: v for k, v in metadata.items() if k not in VOLATILE_CELL_METADATA}
    return view


def _fit_cell_type(cell: JSONDict) -> None:
    """Make the keys match the cell type (the nbformat schema forbids the others)."""
    if cell.get("cell_type") == "code":
        cell.setdefault("outputs", [])
        cell.setdefault("execution_count", None)
        cell.pop("attachments", None)
    else:
        cell.pop("outputs", None)
        cell.pop("execution_count", None)


def merge_cell(
    b: JSONDict,
    t: JSONDict,
    o: JSONDict,
    conflicts: Findings,
    notes: list[str],
    label: str,
) -> JSONDict:
    """One cell present on all three sides; ``label`` names it in notes."""
    if t in (b, o):
        return o
    if o == b:
        return t
    out: JSONDict = {}
    run_done = False
    for key in list(o) + [k for k in t if k not in o]:
        if key in _RUN_KEYS:
            # outputs and execution_count are one unit, merged when the first of them comes up
            if not run_done:
                run_done = True
                out.update(_merge_run(b, t, o, notes, label))
            continue
        bv, tv, ov = b.get(key, MISSING), t.get(key, MISSING), o.get(key, MISSING)
        value = _merge_cell_value(key, bv, tv, ov, conflicts, notes, label)
        if value is not MISSING:
            out[key] = value
    if out.get("cell_type") != o.get("cell_type") or out.get("cell_type") != t.get("cell_type"):
        dropped = [k for k in (*_RUN_KEYS, "attachments") if k in out]
        _fit_cell_type(out)
        lost = [k for k in dropped if k not in out]
        if lost:
            notes.append(f"{label}: cell type is now {out.get('cell_type')}; dropped {lost}")
    return out


def _merge_cell_value(
    key: str, bv: Any, tv: Any, ov: Any, conflicts: Findings, notes: list[str], label: str
) -> Any:
    """The merged value of one key of a cell other than outputs/execution_count (or MISSING)."""
    if key == "id":
        return ov if ov is not MISSING else tv
    if key == "source" and isinstance(bv, str) and isinstance(tv, str) and isinstance(ov, str):
        return _merge_source(bv, tv, ov, conflicts)
    if (
        key in ("metadata", "attachments")
        and isinstance(tv, dict)
        and isinstance(ov, dict)
        and (bv is MISSING or isinstance(bv, dict))
    ):
        volatile = VOLATILE_CELL_METADATA if key == "metadata" else frozenset()
        sub_notes: list[str] = []
        base = bv if isinstance(bv, dict) else {}
        merged = merge_dict(base, tv, ov, key, volatile, False, conflicts, sub_notes)
        notes.extend(f"{label}: {note}" for note in sub_notes)
        return merged
    value, both = merge_scalar(bv, tv, ov)
    if both:
        conflicts.append((key, f"{key} changed on both sides; kept the live one"))
    return value


def _merge_source(base: str, theirs: str, ours: str, conflicts: Findings) -> str:
    """diff3 of a cell's source; overlapping changes keep ours whole (no half-merged cell)."""
    merged = merge3_text(base, theirs, ours)
    if merged.clean:
        return merged.text
    lines = ", ".join(f"{r.base[0] + 1}-{r.base[1]}" for r in merged.conflicts)
    conflicts.append(
        (
            "source",
            f"the same lines (base lines {lines}) were changed live and in the "
            "external version; kept the live source",
        )
    )
    return ours


def _merge_run(b: JSONDict, t: JSONDict, o: JSONDict, notes: list[str], label: str) -> JSONDict:
    """outputs and execution_count, taken together from the side that changed them."""
    b_run = tuple(b.get(k, MISSING) for k in _RUN_KEYS)
    t_run = tuple(t.get(k, MISSING) for k in _RUN_KEYS)
    o_run = tuple(o.get(k, MISSING) for k in _RUN_KEYS)
    run, both = merge_scalar(b_run, t_run, o_run)
    if both:
        notes.append(f"{label}: outputs changed on both sides; kept the live outputs")
    return {k: v for k, v in zip(_RUN_KEYS, run, strict=True) if v is not MISSING}


# --------------------------------------------------------------------------- notebook level


def _without_placeholders(metadata: Mapping[str, Any]) -> JSONDict:
    return {k: v for k, v in metadata.items() if _YDOC_PLACEHOLDERS.get(k) != v}


def merge_nbformat_minor(base: JSONDict, theirs: JSONDict, ours: JSONDict) -> int:
    """The merged ``nbformat_minor``: changed on both sides, the higher wins (upgrades only)."""
    b = base.get("nbformat_minor", 0)
    t = theirs.get("nbformat_minor", 0)
    o = ours.get("nbformat_minor", 0)
    value, both = merge_scalar(b, t, o)
    return int(max(t, o) if both else value)


def merge_header(
    base: JSONDict,
    theirs: JSONDict,
    ours: JSONDict,
    cells: list[JSONDict],
    minor: int,
    conflicts: Findings,
    notes: list[str],
) -> JSONDict:
    """The merged notebook around the already merged ``cells``: metadata and top-level keys."""
    b, t, o = base, theirs, ours
    out: JSONDict = {}
    for key in list(o) + [k for k in t if k not in o]:
        if key == "cells":
            out["cells"] = cells
        elif key == "nbformat_minor":
            out[key] = minor
        elif key == "nbformat":
            out[key] = 4
        elif key == "metadata" and isinstance(t.get(key, {}), dict):
            o_meta = o.get(key, {}) if isinstance(o.get(key), dict) else {}
            b_meta = b.get(key, {}) if isinstance(b.get(key), dict) else {}
            out[key] = _merge_notebook_metadata(b_meta, t.get(key, {}), o_meta, conflicts, notes)
        else:
            value, both = merge_scalar(
                b.get(key, MISSING), t.get(key, MISSING), o.get(key, MISSING)
            )
            if both:
                notes.append(f"notebook key {key!r} changed on both sides; kept live")
            if value is not MISSING:
                out[key] = value
    out.setdefault("cells", cells)
    out.setdefault("nbformat", 4)
    out.setdefault("nbformat_minor", minor)
    return out


def _merge_notebook_metadata(
    b_meta: JSONDict, t_meta: JSONDict, o_meta: JSONDict, conflicts: Findings, notes: list[str]
) -> JSONDict:
    sub: Findings = []
    merged = merge_dict(
        _without_placeholders(b_meta),
        _without_placeholders(t_meta),
        _without_placeholders(o_meta),
        "metadata",
        VOLATILE_NOTEBOOK_METADATA,
        False,
        sub,
        notes,
    )
    for name in _YDOC_PLACEHOLDERS:
        if name not in merged and name in o_meta and name not in b_meta:
            merged[name] = o_meta[name]  # leave the live doc's placeholder alone
    conflicts.extend((where, f"notebook {msg}") for where, msg in sub)
    return merged
