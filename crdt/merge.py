"""Three-way merge of Jupyter notebooks (nbformat 4), pure and deterministic.

``merge_notebooks(base, theirs, ours)`` merges an external version of a notebook (*theirs*, e.g. a
file written behind the hub's back) into the live document (*ours*), relative to the version the
hub last read or wrote (*base*).  The result is a plain notebook dict; :mod:`crdt.apply` turns the
live Y document into it with ordinary, minimal Y operations.

Policy (what a human could lose is a :class:`Conflict`; everything else is merged silently)
-----------------------------------------------------------------------------------------
* **Cell identity.**  Cells are matched by ``id`` (nbformat >= 4.5; only the first occurrence of
  an id counts, later duplicates are treated as id-less).  Cells without a usable id on at least
  one side are matched by position and content (:func:`match_cells`): ``difflib.SequenceMatcher``
  over ``(cell_type, source)`` pairs identical cells in order; identical cells left over on both
  sides are paired next (a moved cell); then, inside each block that still differs, cells of the
  same type are paired in order by source similarity (ratio >= 0.6, best total similarity by
  dynamic programming; plain position order for blocks above 20x20 cells).  A cell rewritten
  beyond that similarity counts as deleted and re-inserted.
* **Inserts and deletions** from both sides are applied.  Both sides inserting the same cell (same
  id and content, or no id, same content and same preceding cell) yields it once.  The same id
  inserted with different content on both sides yields two cells; theirs gets a derived id.
* **Delete vs edit.**  A cell deleted on one side and edited on the other (source, type, attachments
  or non-volatile metadata changed) is kept in its edited form, with a ``"cell"`` conflict.  A cell
  whose only change on the other side is outputs / execution count / UI state stays deleted (those
  are recomputable); a note records it.
* **Order.**  Start from ours' order; theirs' inserts and the cells theirs *moved* (cells outside
  a longest common subsequence of base and theirs order) are placed right after their predecessor
  in theirs' order (after ours' own inserts made at the same or an earlier place).  Moves of
  different cells by the two sides are both applied; a cell moved by both sides keeps ours'
  position: a note, not a conflict, since nothing is lost.  (Which cells "moved" is the smallest
  set explaining the new order; swapping neighbours is ambiguous and either reading is valid.)
* **Sources** are merged line-wise with diff3 (:mod:`crdt.textmerge`).  Changes of different lines
  merge, also of adjacent lines; overlapping changes with different results (or both sides
  inserting at the same point, or an insertion touching the other side's change) are a
  ``"source"`` conflict and the cell keeps ours' source in full: a half-merged cell mixing both
  versions is more likely wrong than either, and the external version is preserved whole in the
  conflict copy.
* **Metadata** (notebook and cell) and **attachments** are merged key by key, recursively into
  nested dicts; the side that changed a key wins.  Both sides changing one key differently keeps
  ours; that is a conflict (field ``"metadata.<path>"``) unless the key is volatile UI/kernel state
  (cell: ``collapsed``, ``scrolled``, ``jupyter``, ``execution``, ``ExecuteTime``, ``trusted``;
  notebook: ``language_info``, ``widgets``), which only gets a note.
* **Outputs and execution_count** are one unit (the result of one run): taken from the side that
  changed them; both changed differently keeps ours with a note and no conflict, because outputs
  are recomputable and mixing two runs would be incoherent.
* **cell_type** changed differently on both sides keeps ours with a conflict.  After the merge a
  cell's keys are made to fit its type (code cells get ``outputs``/``execution_count``, markdown and
  raw cells lose them) so the result validates.
* **nbformat / nbformat_minor** changed on both sides: the higher wins (format upgrades only).  Ids
  are required from 4.5 on (missing ones are derived) and removed below 4.5 (the 4.0-4.4 schemas
  forbid them).  Ids are unique: cells that come from ours keep their ids first, any clash or gap
  gets an id derived from a hash of the cell and its position (:mod:`crdt.cell_ids`), so identical
  inputs give identical output (no uuid4 anywhere).
* **An invalid external version** (not nbformat 4, or failing the nbformat schema) is not merged:
  the result is ours, with a ``"notebook"`` conflict, so the caller writes a conflict copy.

``MergeResult.clean`` is the caller's decision: if it is false, the external version goes to a
conflict copy and clients are told; the merged notebook is applied either way (it never loses ours).
"""

from __future__ import annotations

import json
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from typing import Any, Final

from .cell_ids import effective_ids, finalize_ids
from .textmerge import merge3_text

__all__ = [
    "Conflict",
    "InvalidNotebook",
    "MergeResult",
    "match_cells",
    "merge_notebooks",
    "normalize_notebook",
]

JSONDict = dict[str, Any]

SIMILARITY_THRESHOLD: Final = 0.6  # difflib's documented "close match" cut-off
_DP_MAX_BLOCK: Final = 400  # max cells x cells of one block aligned by dynamic programming

_RUN_KEYS: Final = ("outputs", "execution_count")
VOLATILE_CELL_METADATA: Final = frozenset(
    {"collapsed", "scrolled", "jupyter", "execution", "ExecuteTime", "trusted"}
)
VOLATILE_NOTEBOOK_METADATA: Final = frozenset({"language_info", "widgets"})
_CELL_TYPES: Final = frozenset({"code", "markdown", "raw"})


class _Missing:
    """Marks an absent key, distinct from a present ``None`` value."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"


MISSING: Final = _Missing()


class InvalidNotebook(ValueError):
    """The input is not a notebook this module can merge (nbformat 4 structure)."""


@dataclass(frozen=True, slots=True)
class Conflict:
    """A change of theirs that the merged notebook does not contain (or contains with a caveat).

    ``cell_id``/``cell_index`` locate the cell in the *merged* notebook (``None`` for notebook-level
    conflicts; ``cell_id`` is also ``None`` for notebooks below nbformat 4.5, which have no ids).
    ``field`` is ``"source"``, ``"cell"`` (delete vs edit), ``"cell_type"``, ``"metadata.<path>"``,
    ``"attachments.<path>"``, or ``"notebook"`` (the external version could not be merged at all).
    """

    cell_id: str | None
    cell_index: int | None
    field: str
    message: str


@dataclass(frozen=True, slots=True)
class MergeResult:
    """The merged notebook, what could not be merged, and informational notes.

    ``notebook`` is always safe to apply to the live document: it holds every change of ours.
    ``clean`` false means some change of theirs is not in it (see ``conflicts``): the caller saves
    the external version as a conflict copy and tells the clients.  ``notes`` list decisions that
    lost nothing a human would miss (both sides moved a cell, re-ran a cell, toggled UI state...).
    """

    notebook: JSONDict
    conflicts: list[Conflict]
    notes: list[str] = field(default_factory=list)
    clean: bool = field(init=False)

    def __post_init__(self) -> None:
        # a field (not a property) so it shows in repr and dataclasses.asdict; derived, never stale
        object.__setattr__(self, "clean", not self.conflicts)


# --------------------------------------------------------------------------- normalisation


def _join(value: Any) -> Any:
    if type(value) is list and all(type(v) is str for v in value):
        return "".join(value)
    return value


def _is_json_mime(mime: str) -> bool:
    return mime == "application/json" or mime.endswith("+json")


def _joined_bundle(bundle: Any) -> Any:
    """A mime bundle with multi-line values joined (the same object if nothing needed it).

    nbformat stores multi-line strings as lists of lines on disk; JSON mime types legitimately hold
    lists, so only non-JSON ones are joined (the same rule as nbformat's ``rejoin_lines``).
    """
    if not isinstance(bundle, dict):
        return bundle
    out: JSONDict | None = None
    for mime, value in bundle.items():
        if type(value) is list and not _is_json_mime(mime):
            joined = _join(value)
            if joined is not value:
                out = dict(bundle) if out is None else out
                out[mime] = joined
    return bundle if out is None else out


def _joined_output(output: Any) -> Any:
    if not isinstance(output, dict):
        return output
    text, data = output.get("text"), output.get("data")
    new_text, new_data = _join(text), _joined_bundle(data)
    if new_text is text and new_data is data:
        return output
    out = dict(output)
    if "text" in output:
        out["text"] = new_text
    if "data" in output:
        out["data"] = new_data
    return out


def _normalized_cell(cell: Mapping[str, Any]) -> JSONDict:
    out = dict(cell)
    out["source"] = _join(out["source"])
    outputs = out.get("outputs")
    if type(outputs) is list and outputs:
        joined = [_joined_output(o) for o in outputs]
        if any(new is not old for new, old in zip(joined, outputs, strict=True)):
            out["outputs"] = joined
    attachments = out.get("attachments")
    if attachments == {}:
        # jupyter_ydoc's get() drops empty attachments; without this, a file's "attachments": {}
        # against the live doc's missing key would look like a change and collide with theirs
        del out["attachments"]
    elif isinstance(attachments, dict):
        bundles = {name: _joined_bundle(b) for name, b in attachments.items()}
        if any(bundles[name] is not attachments[name] for name in attachments):
            out["attachments"] = bundles
    return out


def _structure_error(nb: Any) -> str | None:
    """Why ``nb`` is not even structurally an nbformat-4 notebook, or None."""
    if not isinstance(nb, Mapping):
        return "not a JSON object"
    major = nb.get("nbformat")
    if isinstance(major, bool) or not isinstance(major, int | float) or major != 4:
        return f"unsupported nbformat {major!r} (need 4)"
    minor = nb.get("nbformat_minor", 0)
    if isinstance(minor, bool) or not isinstance(minor, int | float) or minor != int(minor):
        return f"bad nbformat_minor {minor!r}"
    if not isinstance(nb.get("metadata", {}), Mapping):
        return "notebook metadata is not an object"
    cells = nb.get("cells")
    if not isinstance(cells, list):
        return "no cells list"
    # dict, not Mapping, in the per-cell loop: ABC isinstance checks dominate otherwise
    for index, cell in enumerate(cells):
        if not isinstance(cell, dict):
            return f"cell {index} is not an object"
        if cell.get("cell_type") not in _CELL_TYPES:
            return f"cell {index} has cell_type {cell.get('cell_type')!r}"
        source = cell.get("source")
        if type(source) is not str and not (
            type(source) is list and all(type(s) is str for s in source)
        ):
            return f"cell {index} has no string source"
        if not isinstance(cell.get("metadata", {}), dict):
            return f"cell {index} metadata is not an object"
        outputs = cell.get("outputs", ())
        if type(outputs) is not list and outputs != ():
            return f"cell {index} outputs are not a list"
        if outputs and not all(isinstance(o, dict) for o in outputs):
            return f"cell {index} outputs are not objects"
    return None


def _normalized(nb: Mapping[str, Any]) -> JSONDict:
    """Structure-checked ``nb`` with multi-line strings joined, without copying everything.

    The notebook and cell dicts are new; nested values (metadata, outputs, ...) are shared with
    ``nb`` unless they had to change.  Nothing of ``nb`` is ever mutated.  Deep copies of 1,000-cell
    notebooks cost more than the whole merge, hence this.
    """
    problem = _structure_error(nb)
    if problem is not None:
        raise InvalidNotebook(problem)
    out = dict(nb)
    out["nbformat"] = int(out["nbformat"])
    if "nbformat_minor" in out:
        out["nbformat_minor"] = int(out["nbformat_minor"])
    out["cells"] = [_normalized_cell(cell) for cell in nb["cells"]]
    return out


def normalize_notebook(nb: Mapping[str, Any]) -> JSONDict:
    """A deep copy of ``nb`` with every multi-line string joined into one ``str``.

    Covers cell sources, stream output text, and non-JSON mime data in outputs and attachments;
    ``nbformat``/``nbformat_minor`` become ints.  Raises :class:`InvalidNotebook` if ``nb`` is not
    structurally an nbformat-4 notebook or not JSON data.
    """
    try:
        # a JSON round trip is the fastest deep copy of JSON data in CPython, and rejects
        # anything that could not be written to an .ipynb file anyway
        out: JSONDict = json.loads(json.dumps(_normalized(nb)))
    except (TypeError, ValueError) as exc:
        if isinstance(exc, InvalidNotebook):
            raise
        raise InvalidNotebook(f"not JSON data: {exc}") from exc
    return out


def _schema_error(theirs: JSONDict, base: JSONDict) -> str | None:
    """First nbformat schema violation among theirs' cells that differ from base's, or None.

    Cells identical to their base version are skipped: base is what the hub last read or wrote,
    and an old flaw is not the external writer's doing (and ours has the same cell).  Missing and
    duplicate ids are tolerated: the merge matches such cells by content and derives ids.  The
    validator is called directly because ``nbformat.validate`` mutates its argument ("repairs"
    ids with random ones).  fastjsonschema when available: 3-5x faster than jsonschema.
    """
    # deferred: importing the validators (jsonschema) is slow and only needed here
    from nbformat import ValidationError
    from nbformat.validator import get_validator

    minor = int(theirs.get("nbformat_minor", 0))
    b_cells: list[JSONDict] = base["cells"]
    b_by_id = {c["id"]: c for c in b_cells if type(c.get("id")) is str}
    seen: set[str] = set()
    changed: list[JSONDict] = []
    for index, cell in enumerate(theirs["cells"]):
        cid = cell.get("id")
        if type(cid) is str:
            if cid not in seen and b_by_id.get(cid) == cell:
                seen.add(cid)
                continue
        elif index < len(b_cells) and b_cells[index] == cell:
            continue
        if minor >= 5 and (type(cid) is not str or cid in seen):
            cell = {**cell, "id": f"placeholder-{index}"}
        elif type(cid) is str:
            seen.add(cid)
        changed.append(cell)
    checked = {**theirs, "cells": changed}
    try:
        validator = get_validator(version=4, version_minor=minor, name="fastjsonschema")  # type: ignore[no-untyped-call]
    except (ImportError, ValueError):
        validator = get_validator(version=4, version_minor=minor)  # type: ignore[no-untyped-call]
    if validator is None:
        return None  # a future 4.x without a schema here: merge what we understand
    try:
        validator.validate(checked)
    except ValidationError as exc:
        return str(getattr(exc, "message", exc)).splitlines()[0][:300]
    return None


# --------------------------------------------------------------------------- cell matching


def _similarity(a: Mapping[str, Any], b: Mapping[str, Any]) -> float:
    if a.get("cell_type") != b.get("cell_type"):
        return 0.0
    sa, sb = a.get("source", ""), b.get("source", "")
    if sa == sb:
        return 1.0
    matcher = SequenceMatcher(None, sa, sb)
    # the cheap upper bounds reject most non-matches before the quadratic ratio()
    if matcher.real_quick_ratio() < SIMILARITY_THRESHOLD:
        return 0.0
    if matcher.quick_ratio() < SIMILARITY_THRESHOLD:
        return 0.0
    return matcher.ratio()


def _align_block(
    a_idx: Sequence[int],
    b_idx: Sequence[int],
    a_cells: Sequence[Mapping[str, Any]],
    b_cells: Sequence[Mapping[str, Any]],
) -> list[tuple[int, int]]:
    """Order-preserving pairing of two runs of differing cells by source similarity."""
    n, m = len(a_idx), len(b_idx)
    if n == 0 or m == 0:
        return []
    if n * m > _DP_MAX_BLOCK:
        # big rewrites: pairing by position keeps this linear; identity matters little there
        return [
            (a_idx[k], b_idx[k])
            for k in range(min(n, m))
            if _similarity(a_cells[a_idx[k]], b_cells[b_idx[k]]) >= SIMILARITY_THRESHOLD
        ]
    sim = [[_similarity(a_cells[a], b_cells[b]) for b in b_idx] for a in a_idx]
    best = [[0.0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        for j in range(m - 1, -1, -1):
            value = max(best[i + 1][j], best[i][j + 1])
            if sim[i][j] >= SIMILARITY_THRESHOLD:
                value = max(value, sim[i][j] + best[i + 1][j + 1])
            best[i][j] = value
    pairs: list[tuple[int, int]] = []
    i = j = 0
    while i < n and j < m:
        s = sim[i][j]
        if s >= SIMILARITY_THRESHOLD and best[i][j] == s + best[i + 1][j + 1]:
            pairs.append((a_idx[i], b_idx[j]))
            i += 1
            j += 1
        elif best[i][j] == best[i + 1][j]:
            i += 1
        else:
            j += 1
    return pairs


def match_cells(
    a_cells: Sequence[Mapping[str, Any]], b_cells: Sequence[Mapping[str, Any]]
) -> dict[int, int]:
    """Which cell of ``b_cells`` is the same cell as each cell of ``a_cells`` (index -> index).

    Ids first (first occurrence of each id); the remaining cells are matched by position and content
    where at least one of the two has no usable id (see the module docstring).  Sources must be
    ``str``.
    """
    a_ids, b_ids = effective_ids(a_cells), effective_ids(b_cells)
    b_by_id = {cid: j for j, cid in enumerate(b_ids) if cid is not None}
    pairs: dict[int, int] = {}
    for i, cid in enumerate(a_ids):
        if cid is not None and (j := b_by_id.get(cid)) is not None:
            pairs[i] = j
    matched_b = set(pairs.values())
    a_rest = [i for i in range(len(a_cells)) if i not in pairs]
    b_rest = [j for j in range(len(b_cells)) if j not in matched_b]
    a_free = [i for i in a_rest if a_ids[i] is None]
    b_free = [j for j in b_rest if b_ids[j] is None]
    if not a_free and not b_free:
        return pairs  # both sides fully identified: ids are authoritative
    # Every candidate pair must have an id-less member: two different ids are two different cells.
    if a_free and b_free:
        a_cand, b_cand = a_free, b_free
    elif a_free:
        a_cand, b_cand = a_free, b_rest
    else:
        a_cand, b_cand = a_rest, b_free
    a_keys = [(a_cells[i].get("cell_type"), a_cells[i].get("source")) for i in a_cand]
    b_keys = [(b_cells[j].get("cell_type"), b_cells[j].get("source")) for j in b_cand]
    opcodes = SequenceMatcher(None, a_keys, b_keys, autojunk=False).get_opcodes()
    # 1. identical cells in the same order
    for tag, i1, i2, j1, _ in opcodes:
        if tag == "equal":
            for k in range(i2 - i1):
                pairs[a_cand[i1 + k]] = b_cand[j1 + k]
    # 2. identical cells left over on both sides: the same cell, moved
    paired_b = set(pairs.values())
    left_b: dict[tuple[Any, Any], list[int]] = {}
    for k, j in enumerate(b_cand):
        if j not in paired_b:
            left_b.setdefault(b_keys[k], []).append(j)
    for k, i in enumerate(a_cand):
        if i not in pairs and (same := left_b.get(a_keys[k])):
            pairs[i] = same.pop(0)
    # 3. edited cells: similar sources inside each block that still differs
    paired_b = set(pairs.values())
    for tag, i1, i2, j1, j2 in opcodes:
        if tag == "replace":
            a_block = [i for i in a_cand[i1:i2] if i not in pairs]
            b_block = [j for j in b_cand[j1:j2] if j not in paired_b]
            for a, b in _align_block(a_block, b_block, a_cells, b_cells):
                pairs[a] = b
    return pairs


def _stable_subsequence(positions: Sequence[int]) -> set[int]:
    """Indices into ``positions`` forming one longest increasing subsequence (deterministic).

    With ``positions`` = each common cell's base position in a side's order, the complement are the
    cells that side moved (the fewest cells whose moving explains the new order).
    """
    tails: list[int] = []  # tails[k]: smallest tail value of an increasing run of length k+1
    tail_at: list[int] = []  # index (into positions) of that tail
    parent: list[int] = [-1] * len(positions)
    for idx, value in enumerate(positions):
        k = bisect_left(tails, value)
        if k == len(tails):
            tails.append(value)
            tail_at.append(idx)
        else:
            tails[k] = value
            tail_at[k] = idx
        parent[idx] = tail_at[k - 1] if k > 0 else -1
    out: set[int] = set()
    idx = tail_at[-1] if tail_at else -1
    while idx >= 0:
        out.add(idx)
        idx = parent[idx]
    return out


# --------------------------------------------------------------------------- value merging


def _merge_dict(
    base: Mapping[str, Any],
    theirs: Mapping[str, Any],
    ours: Mapping[str, Any],
    path: str,
    volatile: frozenset[str],
    all_volatile: bool,
    conflicts: list[tuple[str, str]],
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
            value = _merge_dict(
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


def _as_dict(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


def _merge_scalar(b: Any, t: Any, o: Any) -> tuple[Any, bool]:
    """(merged value, both sides changed it differently)."""
    if t in (b, o):
        return o, False
    if o == b:
        return t, False
    return o, True


def _content_view(cell: Mapping[str, Any]) -> JSONDict:
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


def _merge_cell(
    b: JSONDict,
    t: JSONDict,
    o: JSONDict,
    conflicts: list[tuple[str, str]],
    notes: list[str],
    label: str,
) -> JSONDict:
    if t in (b, o):
        return o
    if o == b:
        return t
    out: JSONDict = {}
    keys = list(o) + [k for k in t if k not in o]
    run_done = False
    for key in keys:
        bv, tv, ov = b.get(key, MISSING), t.get(key, MISSING), o.get(key, MISSING)
        if key == "id":
            out["id"] = ov if ov is not MISSING else tv
        elif key == "source" and all(isinstance(v, str) for v in (bv, tv, ov)):
            merged = merge3_text(bv, tv, ov)
            if merged.clean:
                out["source"] = merged.text
            else:
                out["source"] = ov
                lines = ", ".join(f"{r.base[0] + 1}-{r.base[1]}" for r in merged.conflicts)
                conflicts.append(
                    (
                        "source",
                        f"the same lines (base lines {lines}) were changed live and in the "
                        "external version; kept the live source",
                    )
                )
        elif key in ("metadata", "attachments") and (
            (tvd := _as_dict(tv)) is not None
            and (ovd := _as_dict(ov)) is not None
            and (bv is MISSING or isinstance(bv, dict))
        ):
            volatile = VOLATILE_CELL_METADATA if key == "metadata" else frozenset()
            sub_notes: list[str] = []
            out[key] = _merge_dict(
                bv if isinstance(bv, dict) else {},
                tvd,
                ovd,
                key,
                volatile,
                False,
                conflicts,
                sub_notes,
            )
            notes.extend(f"{label}: {note}" for note in sub_notes)
        elif key in _RUN_KEYS:
            if run_done:
                continue
            run_done = True
            b_run = tuple(b.get(k, MISSING) for k in _RUN_KEYS)
            t_run = tuple(t.get(k, MISSING) for k in _RUN_KEYS)
            o_run = tuple(o.get(k, MISSING) for k in _RUN_KEYS)
            run, both = _merge_scalar(b_run, t_run, o_run)
            if both:
                notes.append(f"{label}: outputs changed on both sides; kept the live outputs")
            for k, v in zip(_RUN_KEYS, run, strict=True):
                if v is not MISSING:
                    out[k] = v
        else:
            value, both = _merge_scalar(bv, tv, ov)
            if both:
                conflicts.append((key, f"{key} changed on both sides; kept the live one"))
            if value is not MISSING:
                out[key] = value
    if out.get("cell_type") != o.get("cell_type") or out.get("cell_type") != t.get("cell_type"):
        dropped = [k for k in (*_RUN_KEYS, "attachments") if k in out]
        _fit_cell_type(out)
        lost = [k for k in dropped if k not in out]
        if lost:
            notes.append(f"{label}: cell type is now {out.get('cell_type')}; dropped {lost}")
    return out


# --------------------------------------------------------------------------- the merge

# YNotebook.set() fills these in when a notebook lacks them, so the live doc has them although the
# file does not.  They count as absent: a real kernelspec added by an external writer must not
# collide with the placeholder.
_YDOC_PLACEHOLDERS: Final = {
    "language_info": {"name": ""},
    "kernelspec": {"name": "", "display_name": ""},
}


def _without_placeholders(metadata: Mapping[str, Any]) -> JSONDict:
    return {k: v for k, v in metadata.items() if _YDOC_PLACEHOLDERS.get(k) != v}


_Key = tuple[str, int]  # ("b", base index) | ("t", theirs index) | ("o", ours index)


def _anchors(order: Sequence[_Key]) -> list[int]:
    """For each position, the base index of the nearest preceding base cell (-1 at the start)."""
    out: list[int] = []
    last = -1
    for key in order:
        out.append(last)
        if key[0] == "b":
            last = key[1]
    return out


def _moved(base_keys_in_order: Sequence[_Key]) -> set[_Key]:
    positions = [k[1] for k in base_keys_in_order]
    stable = _stable_subsequence(positions)
    return {k for idx, k in enumerate(base_keys_in_order) if idx not in stable}


def _without_id(cell: Mapping[str, Any]) -> JSONDict:
    return {k: v for k, v in cell.items() if k != "id"}


def merge_notebooks(
    base: Mapping[str, Any],
    theirs: Mapping[str, Any] | bytes | str,
    ours: Mapping[str, Any],
    *,
    validate_theirs: bool = True,
) -> MergeResult:
    """Three-way merge of nbformat-4 notebook dicts (see the module docstring for the policy).

    ``base`` and ``ours`` must be structurally valid (else :class:`InvalidNotebook`).  ``theirs``
    may also be the raw file content (``bytes``/``str``); it is checked (JSON, structure, and the
    nbformat schema unless ``validate_theirs`` is false) and if it is not a mergeable notebook the
    result is ours with a ``"notebook"`` conflict, so "invalid file" and "unmergeable edits" reach
    the caller the same way: ``result.clean`` is false, write the conflict copy.

    Inputs are never modified; the result shares unchanged nested values (outputs, metadata
    values, ...) with them instead of copying (deep copies would cost more than the merge), so
    copy it before mutating it.
    """
    o_nb = _normalized(ours)
    b_nb = _normalized(base)
    try:
        parsed: Any = theirs
        if isinstance(theirs, bytes | str):
            try:
                parsed = json.loads(theirs)
            except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
                raise InvalidNotebook(f"not JSON: {exc}") from exc
        t_nb = _normalized(parsed)
        problem = _schema_error(t_nb, b_nb) if validate_theirs else None
    except InvalidNotebook as exc:
        problem = str(exc)
    if problem is not None:
        cells = o_nb["cells"]
        finalize_ids(cells, [True] * len(cells), int(o_nb.get("nbformat_minor", 0)))
        return MergeResult(
            notebook=o_nb,
            conflicts=[
                Conflict(None, None, "notebook", f"the external version was not merged: {problem}")
            ],
        )
    return _Merge(b_nb, t_nb, o_nb).run()


class _Merge:
    """One merge; holds the three normalised notebooks and the bookkeeping between the steps."""

    def __init__(self, base: JSONDict, theirs: JSONDict, ours: JSONDict) -> None:
        self.base, self.theirs, self.ours = base, theirs, ours
        self.b_cells: list[JSONDict] = base["cells"]
        self.t_cells: list[JSONDict] = theirs["cells"]
        self.o_cells: list[JSONDict] = ours["cells"]
        self.notes: list[str] = []
        # (cell key or None for notebook level, field, message); resolved to ids at the end
        self.conflicts: list[tuple[_Key | None, str, str]] = []

    def run(self) -> MergeResult:
        bt = match_cells(self.b_cells, self.t_cells)
        bo = match_cells(self.b_cells, self.o_cells)
        t_order: list[_Key] = [("t", j) for j in range(len(self.t_cells))]
        o_order: list[_Key] = [("o", k) for k in range(len(self.o_cells))]
        for i, j in bt.items():
            t_order[j] = ("b", i)
        for i, k in bo.items():
            o_order[k] = ("b", i)

        alias = self._unify_inserts(t_order, o_order)
        cells, from_ours = self._cell_contents(bt, bo, alias)
        order = self._order(t_order, o_order, alias, cells)

        merged_cells = [cells[key] for key in order]
        minor = self._merge_header_minor()
        finalize_ids(merged_cells, [from_ours[key] for key in order], minor)
        notebook = self._merge_header(merged_cells, minor)

        position = {key: index for index, key in enumerate(order)}
        conflicts: list[Conflict] = []
        for key, where, message in self.conflicts:
            if key is None:
                conflicts.append(Conflict(None, None, where, message))
                continue
            index = position[key]
            cid = merged_cells[index].get("id")
            cell_id = cid if isinstance(cid, str) else None
            where_text = f"cell {index + 1}" + (f" ({cell_id})" if cell_id else "")
            conflicts.append(Conflict(cell_id, index, where, f"{where_text}: {message}"))
        return MergeResult(notebook=notebook, conflicts=conflicts, notes=self.notes)

    # -- inserts made by both sides

    def _unify_inserts(self, t_order: list[_Key], o_order: list[_Key]) -> dict[_Key, _Key]:
        """theirs-insert key -> ours-insert key for cells both sides inserted identically."""
        t_ids = effective_ids(self.t_cells)
        o_ids = effective_ids(self.o_cells)
        o_inserts_by_id: dict[str, _Key] = {}
        o_groups: dict[int, list[_Key]] = {}
        for key, anchor in zip(o_order, _anchors(o_order), strict=True):
            if key[0] != "o":
                continue
            cid = o_ids[key[1]]
            if cid is not None:
                o_inserts_by_id[cid] = key
            o_groups.setdefault(anchor, []).append(key)
        alias: dict[_Key, _Key] = {}
        taken: set[_Key] = set()
        for key, anchor in zip(t_order, _anchors(t_order), strict=True):
            if key[0] != "t":
                continue
            t_cell = self.t_cells[key[1]]
            cid = t_ids[key[1]]
            if cid is not None and (o_key := o_inserts_by_id.get(cid)) is not None:
                # same id inserted on both sides: one cell if identical, else two (renamed later)
                if o_key not in taken and _without_id(t_cell) == _without_id(
                    self.o_cells[o_key[1]]
                ):
                    alias[key] = o_key
                    taken.add(o_key)
                continue
            content = None
            for o_key in o_groups.get(anchor, ()):
                if o_key in taken:
                    continue
                o_id = o_ids[o_key[1]]
                if cid is not None and o_id is not None:
                    continue  # two different ids are two different cells
                if content is None:
                    content = _without_id(t_cell)
                if content == _without_id(self.o_cells[o_key[1]]):
                    alias[key] = o_key
                    taken.add(o_key)
                    break
        return alias

    # -- per-cell contents, deletions

    def _cell_contents(
        self, bt: dict[int, int], bo: dict[int, int], alias: dict[_Key, _Key]
    ) -> tuple[dict[_Key, JSONDict], dict[_Key, bool]]:
        cells: dict[_Key, JSONDict] = {}
        from_ours: dict[_Key, bool] = {}
        for i, b in enumerate(self.b_cells):
            key: _Key = ("b", i)
            j, k = bt.get(i), bo.get(i)
            label = f"cell {b['id']}" if type(b.get("id")) is str else f"base cell {i + 1}"
            if j is not None and k is not None:
                sub: list[tuple[str, str]] = []
                t, o = self.t_cells[j], self.o_cells[k]
                cells[key] = _merge_cell(b, t, o, sub, self.notes, label)
                from_ours[key] = True
                self.conflicts.extend((key, where, msg) for where, msg in sub)
            elif k is not None:
                o = self.o_cells[k]
                if _content_view(o) != _content_view(b):
                    cells[key] = o
                    from_ours[key] = True
                    self.conflicts.append(
                        (key, "cell", "deleted in the external version but edited live; kept")
                    )
                elif o != b:
                    self.notes.append(f"{label}: deleted externally; its new live outputs went too")
            elif j is not None:
                t = self.t_cells[j]
                if _content_view(t) != _content_view(b):
                    cells[key] = t
                    from_ours[key] = False
                    self.conflicts.append(
                        (key, "cell", "deleted live but edited in the external version; kept")
                    )
                elif t != b:
                    self.notes.append(f"{label}: deleted live; its new external outputs went too")
        o_matched = set(bo.values())
        for k, o in enumerate(self.o_cells):
            if k not in o_matched:
                cells[("o", k)] = o
                from_ours[("o", k)] = True
        t_matched = set(bt.values())
        for j, t in enumerate(self.t_cells):
            if j not in t_matched and ("t", j) not in alias:
                cells[("t", j)] = t
                from_ours[("t", j)] = False
        return cells, from_ours

    # -- order

    def _order(
        self,
        t_order: list[_Key],
        o_order: list[_Key],
        alias: dict[_Key, _Key],
        cells: Mapping[_Key, JSONDict],
    ) -> list[_Key]:
        t_base = [k for k in t_order if k[0] == "b"]
        o_base = [k for k in o_order if k[0] == "b"]
        moved_t = _moved(t_base)
        moved_o = _moved(o_base)
        in_ours = set(o_order)

        if moved_t & moved_o:
            common = set(t_base) & set(o_base)
            if [k for k in t_base if k in common] != [k for k in o_base if k in common]:
                self.notes.append(
                    f"{len(moved_t & moved_o)} cell(s) moved on both sides; kept the live order"
                )

        to_place: set[_Key] = set()
        for key in t_order:
            if key not in cells or key in alias:
                continue
            if key[0] == "t" or key not in in_ours or (key in moved_t and key not in moved_o):
                to_place.add(key)

        merged = [k for k in o_order if k in cells and k not in to_place]
        unified = set(alias.values())
        t_anchor = dict(zip(t_order, _anchors(t_order), strict=True))
        o_anchor = dict(zip(o_order, _anchors(o_order), strict=True))
        prev: _Key | None = None
        for key in t_order:
            key = alias.get(key, key)
            if key in to_place:
                at = 0 if prev is None else merged.index(prev) + 1
                # Ours' inserts that follow an earlier (or the same) base cell than this one's
                # anchor come first: that orders inserts from both sides by where they were made,
                # also when the cell they followed is gone.
                while (
                    at < len(merged)
                    and merged[at][0] == "o"
                    and merged[at] not in unified
                    and o_anchor[merged[at]] <= t_anchor[key]
                ):
                    at += 1
                merged.insert(at, key)
                prev = key
            elif key in cells and key in in_ours:
                prev = key
        return merged

    # -- notebook level

    def _merge_header_minor(self) -> int:
        b = self.base.get("nbformat_minor", 0)
        t = self.theirs.get("nbformat_minor", 0)
        o = self.ours.get("nbformat_minor", 0)
        value, both = _merge_scalar(b, t, o)
        return int(max(t, o) if both else value)

    def _merge_header(self, cells: list[JSONDict], minor: int) -> JSONDict:
        b, t, o = self.base, self.theirs, self.ours
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
                sub: list[tuple[str, str]] = []
                merged = _merge_dict(
                    _without_placeholders(b_meta),
                    _without_placeholders(t.get(key, {})),
                    _without_placeholders(o_meta),
                    "metadata",
                    VOLATILE_NOTEBOOK_METADATA,
                    False,
                    sub,
                    self.notes,
                )
                for name in _YDOC_PLACEHOLDERS:
                    if name not in merged and name in o_meta and name not in b_meta:
                        merged[name] = o_meta[name]  # leave the live doc's placeholder alone
                out[key] = merged
                self.conflicts.extend((None, where, f"notebook {msg}") for where, msg in sub)
            else:
                value, both = _merge_scalar(
                    b.get(key, MISSING), t.get(key, MISSING), o.get(key, MISSING)
                )
                if both:
                    self.notes.append(f"notebook key {key!r} changed on both sides; kept live")
                if value is not MISSING:
                    out[key] = value
        out.setdefault("cells", cells)
        out.setdefault("nbformat", 4)
        out.setdefault("nbformat_minor", minor)
        return out
