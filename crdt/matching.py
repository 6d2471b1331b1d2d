"""Which cell of one version of a notebook is which cell of another, and which kept their order.

:func:`match_cells` pairs cells by ``id`` (nbformat >= 4.5; only the first occurrence of an id
counts, later duplicates are treated as id-less).  Cells without a usable id on at least one side
are matched by position and content: ``difflib.SequenceMatcher`` over ``(cell_type, source)``
pairs identical cells in order; identical cells left over on both sides are paired next (a moved
cell); then, inside each block that still differs, cells of the same type are paired in order by
source similarity (ratio >= 0.6, best total similarity by dynamic programming; plain position
order for blocks above 20x20 cells).  A cell rewritten beyond that similarity counts as deleted
and re-inserted.

:func:`stable_subsequence` finds the cells that kept their relative order: the merge uses it to
tell which cells a side moved, :mod:`crdt.apply` to keep the most Y cells in place.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping, Sequence
from difflib import SequenceMatcher
from typing import Any, Final

from .cell_ids import effective_ids

__all__ = ["SIMILARITY_THRESHOLD", "match_cells", "stable_subsequence"]

SIMILARITY_THRESHOLD: Final = 0.6  # difflib's documented "close match" cut-off
_DP_MAX_BLOCK: Final = 400  # max cells x cells of one block aligned by dynamic programming


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


def stable_subsequence(positions: Sequence[int]) -> set[int]:
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
