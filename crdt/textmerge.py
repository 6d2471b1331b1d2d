"""Line-wise three-way merge (diff3) over plain strings.

Pure functions, stdlib only.  The algorithm is the classic diff3 formulation (as in GNU diff3 and
bzr's ``merge3``): align base with each side (``difflib.SequenceMatcher``), keep the base lines that
are matched on *both* sides as synchronisation points, and between two consecutive sync points
compare the three chunks:

* theirs chunk == base chunk  -> the change is ours alone: take ours;
* ours chunk == base chunk    -> the change is theirs alone: take theirs;
* theirs chunk == ours chunk  -> both made the same change: take it once;
* otherwise                   -> conflict.

A conflict region is then looked at more closely (unlike GNU diff3, which stops there): each side's
changes inside it are diffed against the base chunk, and if no change of one side overlaps or
touches a change of the other, they are applied together.  So edits of *adjacent* lines merge
(theirs rewrites line 3, ours line 4).  Two changes clash when their base ranges overlap, start at
the same line, or end at the same line, or one inserts inside the other's range: that catches both
sides inserting at one point (the order would be arbitrary) and an insertion right next to or inside
the other side's change.

Naming follows :func:`crdt.merge.merge_notebooks`: ``theirs`` is the external version, ``ours`` the
live one; conflict regions resolve to ours so the live document never loses what users typed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Literal

__all__ = [
    "ConflictRegion",
    "Region",
    "TextMergeResult",
    "merge3_lines",
    "merge3_regions",
    "merge3_text",
    "split_lines",
]

RegionKind = Literal["unchanged", "theirs", "ours", "same", "conflict"]


@dataclass(frozen=True, slots=True)
class Region:
    """One chunk of a three-way alignment; ranges are half-open line indices."""

    kind: RegionKind
    base: tuple[int, int]
    theirs: tuple[int, int]
    ours: tuple[int, int]


@dataclass(frozen=True, slots=True)
class ConflictRegion:
    """Lines changed differently on both sides (half-open ranges in each version)."""

    base: tuple[int, int]
    theirs: tuple[int, int]
    ours: tuple[int, int]


@dataclass(frozen=True, slots=True)
class TextMergeResult:
    """Merged lines (ours inside conflict regions) and the conflicting regions."""

    lines: tuple[str, ...]
    conflicts: tuple[ConflictRegion, ...]

    @property
    def text(self) -> str:
        return "".join(self.lines)

    @property
    def clean(self) -> bool:
        return not self.conflicts


def split_lines(text: str) -> list[str]:
    """Split into lines keeping their terminators, so ``"".join`` restores the text exactly.

    Only ``\\n`` (and ``\\r\\n`` as a unit) terminate a line: ``str.splitlines`` would also split on
    form feeds and Unicode separators, which notebook sources may legitimately contain.
    """
    lines: list[str] = []
    start = 0
    while True:
        end = text.find("\n", start)
        if end < 0:
            if start < len(text):
                lines.append(text[start:])
            return lines
        lines.append(text[start : end + 1])
        start = end + 1


def _matching_blocks(a: Sequence[str], b: Sequence[str]) -> list[tuple[int, int, int]]:
    # autojunk=False: with autojunk, lines that are frequent in long inputs (blank lines, "    )")
    # could never anchor a match, which makes alignments worse and results less predictable.
    return [
        (m.a, m.b, m.size)
        for m in SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks()
    ]


def _sync_regions(
    base: Sequence[str], theirs: Sequence[str], ours: Sequence[str]
) -> list[tuple[int, int, int, int, int, int]]:
    """Base ranges matched on both sides, as (base_start, base_end, t_start, t_end, o_start, o_end).

    The list ends with an empty sentinel region at the end of all three sequences.
    """
    tm = _matching_blocks(base, theirs)
    om = _matching_blocks(base, ours)
    regions: list[tuple[int, int, int, int, int, int]] = []
    i = j = 0
    while i < len(tm) and j < len(om):
        t_base, t_start, t_len = tm[i]
        o_base, o_start, o_len = om[j]
        lo = max(t_base, o_base)
        hi = min(t_base + t_len, o_base + o_len)
        if lo < hi:
            t_sub = t_start + (lo - t_base)
            o_sub = o_start + (lo - o_base)
            regions.append((lo, hi, t_sub, t_sub + hi - lo, o_sub, o_sub + hi - lo))
        # advance whichever block ends first; the other may still overlap the next one
        if t_base + t_len < o_base + o_len:
            i += 1
        else:
            j += 1
    regions.append((len(base), len(base), len(theirs), len(theirs), len(ours), len(ours)))
    return regions


def _hunks(base: Sequence[str], side: Sequence[str]) -> list[tuple[int, int, int, int]]:
    """The non-equal opcodes of base -> side as (base_start, base_end, side_start, side_end)."""
    matcher = SequenceMatcher(None, base, side, autojunk=False)
    return [(i1, i2, j1, j2) for tag, i1, i2, j1, j2 in matcher.get_opcodes() if tag != "equal"]


def _clash(h: tuple[int, int, int, int], k: tuple[int, int, int, int]) -> bool:
    """Base ranges overlap, share a start or an end, or an insertion falls inside the other."""
    (hs, he), (ks, ke) = h[:2], k[:2]
    if max(hs, ks) < min(he, ke) or hs == ks or he == ke:
        return True
    return (hs == he and ks < hs < ke) or (ks == ke and hs < ks < he)


def _split_conflict(
    b_chunk: Sequence[str],
    t_chunk: Sequence[str],
    o_chunk: Sequence[str],
    zb: int,
    zt: int,
    zo: int,
) -> list[Region] | None:
    """Finer regions for a conflict gap whose changes do not really collide, else None.

    ``zb``/``zt``/``zo`` are the chunk's offsets in base/theirs/ours.
    """
    t_hunks, o_hunks = _hunks(b_chunk, t_chunk), _hunks(b_chunk, o_chunk)
    if any(_clash(h, k) for h in t_hunks for k in o_hunks):
        return None
    tagged = sorted([(h, True) for h in t_hunks] + [(k, False) for k in o_hunks])
    out: list[Region] = []
    pb = pt = po = 0  # positions inside the chunks; between hunks all three agree
    for (b1, b2, s1, s2), is_theirs in tagged:
        if b1 > pb:
            n = b1 - pb
            out.append(
                Region(
                    "unchanged", (zb + pb, zb + b1), (zt + pt, zt + pt + n), (zo + po, zo + po + n)
                )
            )
            pt, po = pt + n, po + n
        if is_theirs:
            region = Region(
                "theirs", (zb + b1, zb + b2), (zt + s1, zt + s2), (zo + po, zo + po + b2 - b1)
            )
            pt, po = s2, po + b2 - b1
        else:
            region = Region(
                "ours", (zb + b1, zb + b2), (zt + pt, zt + pt + b2 - b1), (zo + s1, zo + s2)
            )
            pt, po = pt + b2 - b1, s2
        out.append(region)
        pb = b2
    if pb < len(b_chunk):
        n = len(b_chunk) - pb
        out.append(
            Region(
                "unchanged",
                (zb + pb, zb + len(b_chunk)),
                (zt + pt, zt + pt + n),
                (zo + po, zo + po + n),
            )
        )
    return out


def _gap_regions(
    b_chunk: Sequence[str],
    t_chunk: Sequence[str],
    o_chunk: Sequence[str],
    zb: int,
    zt: int,
    zo: int,
) -> list[Region]:
    """Classify the chunks between two sync regions (offsets zb/zt/zo in base/theirs/ours)."""
    whole = ((zb, zb + len(b_chunk)), (zt, zt + len(t_chunk)), (zo, zo + len(o_chunk)))
    if t_chunk == o_chunk:
        return [Region("same", *whole)]
    if t_chunk == b_chunk:
        return [Region("ours", *whole)]
    if o_chunk == b_chunk:
        return [Region("theirs", *whole)]
    split = _split_conflict(b_chunk, t_chunk, o_chunk, zb, zt, zo)
    return split if split is not None else [Region("conflict", *whole)]


def _iter_regions(
    base: Sequence[str], theirs: Sequence[str], ours: Sequence[str]
) -> Iterator[Region]:
    zb = zt = zo = 0
    for b_start, b_end, t_start, t_end, o_start, o_end in _sync_regions(base, theirs, ours):
        if t_start > zt or o_start > zo or b_start > zb:
            yield from _gap_regions(
                base[zb:b_start], theirs[zt:t_start], ours[zo:o_start], zb, zt, zo
            )
        if b_end > b_start:
            yield Region("unchanged", (b_start, b_end), (t_start, t_end), (o_start, o_end))
        zb, zt, zo = b_end, t_end, o_end


def merge3_regions(base: Sequence[str], theirs: Sequence[str], ours: Sequence[str]) -> list[Region]:
    """The diff3 alignment of three line sequences, in order, covering all of them."""
    return list(_iter_regions(base, theirs, ours))


def merge3_lines(
    base: Sequence[str], theirs: Sequence[str], ours: Sequence[str]
) -> TextMergeResult:
    """Three-way merge of line sequences; conflicting regions resolve to ``ours``."""
    if theirs in (base, ours):
        return TextMergeResult(tuple(ours), ())
    if ours == base:
        return TextMergeResult(tuple(theirs), ())
    out: list[str] = []
    conflicts: list[ConflictRegion] = []
    for region in _iter_regions(base, theirs, ours):
        if region.kind == "theirs":
            out.extend(theirs[region.theirs[0] : region.theirs[1]])
        else:
            # unchanged / ours / same / conflict all read ours: equal text for the first three,
            # and the documented resolution for the last.
            out.extend(ours[region.ours[0] : region.ours[1]])
            if region.kind == "conflict":
                conflicts.append(ConflictRegion(region.base, region.theirs, region.ours))
    return TextMergeResult(tuple(out), tuple(conflicts))


def merge3_text(base: str, theirs: str, ours: str) -> TextMergeResult:
    """Line-wise three-way merge of strings (see :func:`merge3_lines`)."""
    if theirs in (base, ours):
        return TextMergeResult(tuple(split_lines(ours)), ())
    if ours == base:
        return TextMergeResult(tuple(split_lines(theirs)), ())
    return merge3_lines(split_lines(base), split_lines(theirs), split_lines(ours))
