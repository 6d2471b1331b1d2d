"""Cell matching helpers: the stable subsequence that decides which cells moved."""

from __future__ import annotations

from itertools import combinations, pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from crdt.matching import match_cells, stable_subsequence


def longest_increasing(positions: list[int]) -> int:
    for size in range(len(positions), 0, -1):
        for chosen in combinations(positions, size):
            if all(a < b for a, b in pairwise(chosen)):
                return size
    return 0


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 9), max_size=8, unique=True))
def test_stable_subsequence_is_a_longest_increasing_one(positions: list[int]) -> None:
    kept = sorted(stable_subsequence(positions))
    values = [positions[i] for i in kept]
    assert values == sorted(values)
    assert len(kept) == longest_increasing(positions)
    assert sorted(stable_subsequence(positions)) == kept  # deterministic


def test_ids_are_authoritative_when_both_sides_have_them() -> None:
    a = [{"id": "x", "cell_type": "code", "source": "same"}]
    b = [{"id": "y", "cell_type": "code", "source": "same"}]
    assert match_cells(a, b) == {}
