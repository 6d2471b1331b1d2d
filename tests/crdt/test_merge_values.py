"""Value merges: the side that changed a key wins; both changing it keeps ours."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from crdt.merge_values import VOLATILE_CELL_METADATA, merge_dict, merge_scalar

JSONDict = dict[str, Any]
VALUES = st.one_of(st.none(), st.integers(0, 3), st.sampled_from(["a", "b"]))
DICTS = st.dictionaries(st.sampled_from(["k", "tags", "collapsed", "x"]), VALUES, max_size=4)


@settings(max_examples=200, deadline=None)
@given(DICTS, DICTS)
def test_one_side_unchanged_gives_the_other(base: JSONDict, changed: JSONDict) -> None:
    conflicts: list[tuple[str, str]] = []
    notes: list[str] = []
    assert merge_dict(base, changed, base, "m", frozenset(), False, conflicts, notes) == changed
    assert merge_dict(base, base, changed, "m", frozenset(), False, conflicts, notes) == changed
    assert conflicts == [] and notes == []


def test_both_changed_keeps_ours_conflict_unless_volatile() -> None:
    conflicts: list[tuple[str, str]] = []
    notes: list[str] = []
    base = {"tags": ["a"], "collapsed": False}
    theirs = {"tags": ["t"], "collapsed": True}
    ours = {"tags": ["o"], "collapsed": None}
    merged = merge_dict(
        base, theirs, ours, "metadata", VOLATILE_CELL_METADATA, False, conflicts, notes
    )
    assert merged == ours
    assert [where for where, _ in conflicts] == ["metadata.tags"]
    assert len(notes) == 1 and notes[0].startswith("metadata.collapsed")


def test_merge_scalar() -> None:
    assert merge_scalar(1, 1, 2) == (2, False)
    assert merge_scalar(1, 3, 1) == (3, False)
    assert merge_scalar(1, 3, 2) == (2, True)
