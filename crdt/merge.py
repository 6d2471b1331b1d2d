"""Three-way merge of Jupyter notebooks (nbformat 4), pure and deterministic.

``merge_notebooks(base, theirs, ours)`` merges an external version of a notebook (*theirs*, e.g. a
file written behind the hub's back) into the live document (*ours*), relative to the version the
hub last read or wrote (*base*).  The result is a plain notebook dict; :mod:`crdt.apply` turns the
live Y document into it with ordinary, minimal Y operations.  This module holds the merge of the
cell lists (which cells, in which order); inputs are checked by :mod:`crdt.normalize`, cells are
paired by :mod:`crdt.matching`, and values inside a cell or the header are merged by
:mod:`crdt.merge_values`.

Policy (what a human could lose is a :class:`Conflict`; everything else is merged silently)
-----------------------------------------------------------------------------------------
* **Cell identity.**  Cells are matched by ``id`` (nbformat >= 4.5; only the first occurrence of
  an id counts, later duplicates are treated as id-less), else by position and content
  (:func:`crdt.matching.match_cells`, whose module docstring has the details).  A cell rewritten
  beyond recognition counts as deleted and re-inserted.
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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .cell_ids import effective_ids, finalize_ids
from .matching import match_cells, stable_subsequence
from .merge_values import content_view, merge_cell, merge_header, merge_nbformat_minor
from .normalize import InvalidNotebook, normalized, schema_error

# InvalidNotebook is part of merge_notebooks' contract (raised for a bad base or ours), hence here
__all__ = ["Conflict", "InvalidNotebook", "MergeResult", "merge_notebooks"]

JSONDict = dict[str, Any]


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


# --------------------------------------------------------------------------- the merge

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
    stable = stable_subsequence(positions)
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
    o_nb = normalized(ours)
    b_nb = normalized(base)
    try:
        parsed: Any = theirs
        if isinstance(theirs, bytes | str):
            try:
                parsed = json.loads(theirs)
            except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
                raise InvalidNotebook(f"not JSON: {exc}") from exc
        t_nb = normalized(parsed)
        problem = schema_error(t_nb, b_nb) if validate_theirs else None
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
        minor = merge_nbformat_minor(self.base, self.theirs, self.ours)
        finalize_ids(merged_cells, [from_ours[key] for key in order], minor)
        header_conflicts: list[tuple[str, str]] = []
        notebook = merge_header(
            self.base, self.theirs, self.ours, merged_cells, minor, header_conflicts, self.notes
        )
        self.conflicts.extend((None, where, message) for where, message in header_conflicts)

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
                cells[key] = merge_cell(b, t, o, sub, self.notes, label)
                from_ours[key] = True
                self.conflicts.extend((key, where, msg) for where, msg in sub)
            elif k is not None:  # deleted by theirs
                survivor = self.o_cells[k]
                if self._kept_despite_deletion(key, b, survivor, label, by_ours=True):
                    cells[key] = survivor
                    from_ours[key] = True
            elif j is not None:  # deleted by ours
                survivor = self.t_cells[j]
                if self._kept_despite_deletion(key, b, survivor, label, by_ours=False):
                    cells[key] = survivor
                    from_ours[key] = False
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

    def _kept_despite_deletion(
        self, key: _Key, base: JSONDict, survivor: JSONDict, label: str, *, by_ours: bool
    ) -> bool:
        """Whether a cell deleted by one side stays, edited by the other (a conflict) or goes.

        ``survivor`` is the cell on the side that kept it (ours if ``by_ours``).  Changed outputs
        alone do not keep it: they are recomputable, so that only gets a note.
        """
        if content_view(survivor) != content_view(base):
            message = (
                "deleted in the external version but edited live; kept"
                if by_ours
                else "deleted live but edited in the external version; kept"
            )
            self.conflicts.append((key, "cell", message))
            return True
        if survivor != base:
            gone = (
                "deleted externally; its new live outputs went too"
                if by_ours
                else "deleted live; its new external outputs went too"
            )
            self.notes.append(f"{label}: {gone}")
        return False

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
