"""diff3 over lines: classic cases and properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crdt.textmerge import merge3_lines, merge3_regions, merge3_text, split_lines

BASE = "a\nb\nc\nd\ne\n"


@pytest.mark.parametrize(
    ("base", "theirs", "ours", "expected"),
    [
        pytest.param(BASE, BASE, BASE, BASE, id="nothing-changed"),
        pytest.param(BASE, "a\nB\nc\nd\ne\n", BASE, "a\nB\nc\nd\ne\n", id="theirs-only"),
        pytest.param(BASE, BASE, "a\nb\nc\nD\ne\n", "a\nb\nc\nD\ne\n", id="ours-only"),
        pytest.param(BASE, "A\nb\nc\nd\ne\n", "a\nb\nc\nd\nE\n", "A\nb\nc\nd\nE\n", id="apart"),
        pytest.param(BASE, "a\nB\nc\nd\ne\n", "a\nB\nc\nd\ne\n", "a\nB\nc\nd\ne\n", id="same-edit"),
        pytest.param(BASE, "a\nc\nd\ne\n", "a\nc\nd\ne\n", "a\nc\nd\ne\n", id="same-delete"),
        pytest.param(BASE, "a\nb\nc\nd\ne\nf\n", "0\na\nb\nc\nd\ne\n", "0\na\nb\nc\nd\ne\nf\n",
                     id="insert-at-both-ends"),
        pytest.param(BASE, "a\nB\nc\nd\ne\n", "a\nb\nC\nd\ne\n", "a\nB\nC\nd\ne\n",
                     id="adjacent-replacements-merge"),
        pytest.param(BASE, "a\nc\nd\ne\n", "a\nb\nC\nd\ne\n", "a\nC\nd\ne\n",
                     id="delete-next-to-replace"),
        pytest.param(BASE, "", BASE, "", id="theirs-cleared"),
        pytest.param("", "x\n", "", "x\n", id="empty-base-one-side"),
        pytest.param("", "x\n", "x\n", "x\n", id="empty-base-same"),
        pytest.param("a\nb", "a\nb\nc", "A\nb", "A\nb\nc", id="no-final-newline"),
        pytest.param("a\r\nb\r\nc\r\n", "A\r\nb\r\nc\r\n", "a\r\nb\r\nC\r\n", "A\r\nb\r\nC\r\n",
                     id="crlf"),
        pytest.param("x\nx\nx\n", "x\nx\nx\ny\n", "w\nx\nx\nx\n", "w\nx\nx\nx\ny\n",
                     id="repeated-lines"),
    ],
)  # fmt: skip
def test_clean_merges(base: str, theirs: str, ours: str, expected: str) -> None:
    result = merge3_text(base, theirs, ours)
    assert result.clean
    assert result.text == expected


@pytest.mark.parametrize(
    ("base", "theirs", "ours", "conflict_base"),
    [
        pytest.param(BASE, "a\nX\nc\nd\ne\n", "a\nY\nc\nd\ne\n", (1, 2), id="same-line"),
        pytest.param(BASE, "a\nb\nX\nc\nd\ne\n", "a\nb\nY\nc\nd\ne\n", (2, 2),
                     id="both-insert-same-point"),
        pytest.param(BASE, "a\nc\nd\ne\n", "a\nB\nc\nd\ne\n", (1, 2), id="delete-vs-edit"),
        pytest.param(BASE, "a\nb\nX\nc\nd\ne\n", "a\nB\nc\nd\ne\n", (1, 2),
                     id="insert-next-to-edit"),
        pytest.param(BASE, "a\nX\nY\nd\ne\n", "a\nb\nZ\nW\ne\n", (1, 4), id="overlapping-ranges"),
        pytest.param("", "x\n", "y\n", (0, 0), id="empty-base-different"),
    ],
)  # fmt: skip
def test_conflicts_keep_ours(
    base: str, theirs: str, ours: str, conflict_base: tuple[int, int]
) -> None:
    result = merge3_text(base, theirs, ours)
    assert not result.clean
    assert [c.base for c in result.conflicts] == [conflict_base]
    assert result.text == ours


def test_conflict_keeps_ours_but_merges_elsewhere() -> None:
    # the text merge itself resolves only the conflicting region to ours;
    # merge_notebooks then decides to keep the whole cell (tested there)
    base = "1\n2\n3\n4\n5\n6\n"
    theirs = "1\nT\n3\n4\n5\nt\n"
    ours = "1\nO\n3\n4\n5\n6\n"
    result = merge3_text(base, theirs, ours)
    assert len(result.conflicts) == 1
    assert result.text == "1\nO\n3\n4\n5\nt\n"


def test_split_lines_keeps_terminators() -> None:
    assert split_lines("") == []
    assert split_lines("a") == ["a"]
    assert split_lines("a\n") == ["a\n"]
    assert split_lines("a\r\nb\x0cc\u2028d") == ["a\r\n", "b\x0cc\u2028d"]


# --------------------------------------------------------------------------- properties

LINE = st.sampled_from(["a\n", "b\n", "c\n", "d\n", "\n", "x = 1\n", "é\n"])
TEXTS = st.lists(LINE, max_size=12)


@given(st.text(alphabet="ab\n\r\u2028", max_size=30))
def test_split_lines_roundtrip(text: str) -> None:
    lines = split_lines(text)
    assert "".join(lines) == text
    assert all(line.count("\n") == (1 if line.endswith("\n") else 0) for line in lines)


@settings(max_examples=150)
@given(TEXTS, TEXTS, TEXTS)
def test_regions_cover_all_three(base: list[str], theirs: list[str], ours: list[str]) -> None:
    regions = merge3_regions(base, theirs, ours)
    for attr, seq in (("base", base), ("theirs", theirs), ("ours", ours)):
        pos = 0
        for region in regions:
            start, end = getattr(region, attr)
            assert start == pos and end >= start
            pos = end
        assert pos == len(seq)
    for region in regions:
        b = base[region.base[0] : region.base[1]]
        t = theirs[region.theirs[0] : region.theirs[1]]
        o = ours[region.ours[0] : region.ours[1]]
        if region.kind == "unchanged":
            assert b == t == o
        elif region.kind == "same":
            assert t == o
        elif region.kind == "theirs":
            assert o == b
        elif region.kind == "ours":
            assert t == b


@settings(max_examples=150)
@given(TEXTS, TEXTS)
def test_one_sided_and_identical_changes(base: list[str], other: list[str]) -> None:
    assert merge3_lines(base, base, other).lines == tuple(other)
    assert merge3_lines(base, other, base).lines == tuple(other)
    assert merge3_lines(base, other, other).lines == tuple(other)
    assert merge3_lines(base, other, other).clean


@settings(max_examples=150)
@given(TEXTS, TEXTS, TEXTS)
def test_result_is_deterministic_and_symmetric_when_clean(
    base: list[str], theirs: list[str], ours: list[str]
) -> None:
    one = merge3_lines(base, theirs, ours)
    assert one == merge3_lines(base, theirs, ours)
    if one.clean:
        # without conflicts the sides play symmetric roles
        assert merge3_lines(base, ours, theirs).lines == one.lines


@st.composite
def separated_edits(draw: st.DrawFn) -> tuple[list[str], list[str], list[str], list[str]]:
    """base, theirs, ours, expected: edits in two regions with >= 1 untouched line between."""
    n = draw(st.integers(1, 12))
    base = [f"line {i}\n" for i in range(n)]
    a1 = draw(st.integers(0, n - 1))
    a2 = draw(st.integers(a1, n - 1))  # a2 < n: leaves base[a2] as the separator
    b1 = draw(st.integers(a2 + 1, n))
    b2 = draw(st.integers(b1, n))
    x = [f"theirs {i}\n" for i in range(draw(st.integers(0, 3)))]
    y = [f"ours {i}\n" for i in range(draw(st.integers(0, 3)))]
    if a1 == a2 and not x:
        x = ["theirs insert\n"]
    if b1 == b2 and not y:
        y = ["ours insert\n"]
    first = base[:a1] + x + base[a2:]
    second = base[:b1] + y + base[b2:]
    expected = base[:a1] + x + base[a2:b1] + y + base[b2:]
    if draw(st.booleans()):
        return base, first, second, expected
    return base, second, first, expected


@settings(max_examples=200)
@given(separated_edits())
def test_edits_in_different_regions_both_present(
    case: tuple[list[str], list[str], list[str], list[str]],
) -> None:
    base, theirs, ours, expected = case
    result = merge3_lines(base, theirs, ours)
    assert result.clean, result.conflicts
    assert list(result.lines) == expected
