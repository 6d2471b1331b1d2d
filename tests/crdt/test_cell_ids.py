"""Derived cell ids: both schemes pinned byte for byte, uniqueness and validity."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from crdt.cell_ids import (
    ID_PATTERN,
    effective_ids,
    finalize_ids,
    merged_cell_id,
    stable_cell_id,
    unique_cell_ids,
)

JSONDict = dict[str, Any]
CELL = {"cell_type": "code", "source": "print(1)\n"}

# Ids already in stored files and live documents: a change of scheme would rename those cells.
# The values are what the three places produced before they shared this module.


def test_stable_scheme_is_pinned() -> None:
    assert stable_cell_id(3, CELL, set()) == "f1de78a5b2a8"
    assert stable_cell_id(3, CELL, {"f1de78a5b2a8"}) == "418bed3cda64"  # a clash re-hashes
    # a source stored as a list of lines gives the id of the joined source
    assert stable_cell_id(0, {"cell_type": "markdown", "source": ["# a\n", "b"]}, ()) == (
        "6de199d28a10"
    )


def test_merged_scheme_is_pinned() -> None:
    assert merged_cell_id(CELL, 3, set()) == "5de3bcd713a5"
    assert merged_cell_id(CELL, 3, {"5de3bcd713a5"}) == "a72ac2953ade"  # a clash bumps the attempt


def test_unique_cell_ids_keeps_first_ids_and_derives_the_rest() -> None:
    cells = [
        {"cell_type": "code", "id": "x", "source": "a"},
        {"cell_type": "code", "id": "x", "source": "a"},
        {"cell_type": "raw", "source": ""},
    ]
    assert unique_cell_ids(cells) == ["x", "4bee1f1aaf1f", "75b6f01d18be"]


CELLS = st.lists(
    st.fixed_dictionaries(
        {
            "cell_type": st.sampled_from(["code", "markdown"]),
            "source": st.sampled_from(["", "a", "b\n"]),
        },
        optional={"id": st.sampled_from(["", "a", "b", "not valid!", "a"])},
    ),
    max_size=8,
)


@settings(max_examples=200, deadline=None)
@given(CELLS)
def test_unique_cell_ids_are_unique_and_keep_first_occurrences(cells: list[JSONDict]) -> None:
    ids = unique_cell_ids(cells)
    assert len(set(ids)) == len(ids)
    for cell_id, first in zip(ids, effective_ids(cells), strict=True):
        if first is not None:
            assert cell_id == first
    assert unique_cell_ids(cells) == ids


@settings(max_examples=200, deadline=None)
@given(CELLS, st.lists(st.booleans(), min_size=8, max_size=8))
def test_finalize_ids_gives_valid_unique_ids_ours_first(
    cells: list[JSONDict], from_ours: list[bool]
) -> None:
    before = [cell.get("id") for cell in cells]
    finalize_ids(cells, from_ours, minor=5)
    ids = [cell["id"] for cell in cells]
    assert len(set(ids)) == len(ids)
    assert all(ID_PATTERN.fullmatch(cell_id) for cell_id in ids)
    for index, old in enumerate(before):
        if from_ours[index] and isinstance(old, str) and ID_PATTERN.fullmatch(old):
            claimed_by_earlier_ours = old in before[:index] and any(
                from_ours[k] for k in range(index) if before[k] == old
            )
            if not claimed_by_earlier_ours:
                assert cells[index]["id"] == old


def test_finalize_ids_below_45_removes_ids() -> None:
    cells: list[JSONDict] = [{"cell_type": "code", "source": "", "id": "a"}]
    finalize_ids(cells, [True], minor=4)
    assert cells == [{"cell_type": "code", "source": ""}]
