"""Per-origin sequencing: replays are dropped, losses are seen, nothing is applied twice."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from collab_server.scaleout.entries import Entry, EntryKind
from collab_server.scaleout.sequence import OriginSequences, Verdict


def entry(origin: str, seq: int, lineage: str = "L") -> Entry:
    return Entry(origin=origin, seq=seq, lineage=lineage, kind=EntryKind.UPDATE, payload=b"x")


def test_own_and_foreign_lineage_entries_are_never_applied() -> None:
    seqs = OriginSequences(instance="a", lineage="L")
    assert seqs.classify(entry("a", 1)) is Verdict.OWN
    assert seqs.classify(entry("b", 1, lineage="other")) is Verdict.FOREIGN_LINEAGE
    assert seqs.classify(entry("b", 1)) is Verdict.APPLY  # the foreign one did not count


def test_a_join_counts_what_it_read_as_seen() -> None:
    seqs = OriginSequences(instance="a", lineage="L")
    seqs.joined_at({"b": 7})
    assert seqs.classify(entry("b", 7)) is Verdict.DUPLICATE
    assert seqs.classify(entry("b", 8)) is Verdict.APPLY
    assert seqs.classify(entry("c", 3)) is Verdict.GAP  # never saw c's first two


def test_own_sequence_numbers_start_at_one_without_gaps() -> None:
    seqs = OriginSequences(instance="a", lineage="L")
    assert [seqs.next_own() for _ in range(3)] == [1, 2, 3]


# A stream as the reader sees it: each origin's entries in order, some replayed (a retried
# XADD lands twice, later), some lost (trimmed before this reader got to them).
deliveries = st.lists(
    st.tuples(st.sampled_from(["b", "c", "d"]), st.sampled_from(["keep", "replay", "lose"])),
    max_size=60,
)


@settings(max_examples=300, derandomize=True)
@given(deliveries)
def test_each_entry_applied_at_most_once_and_every_loss_is_reported(
    plan: list[tuple[str, str]],
) -> None:
    next_seq: dict[str, int] = {}
    stream: list[Entry] = []
    lost: dict[str, set[int]] = {}
    for origin, fate in plan:
        seq = next_seq[origin] = next_seq.get(origin, 0) + 1
        if fate == "lose":
            lost.setdefault(origin, set()).add(seq)
            continue
        stream.append(entry(origin, seq))
        if fate == "replay":
            stream.append(entry(origin, seq))
    seqs = OriginSequences(instance="a", lineage="L")
    applied: list[tuple[str, int]] = []
    gaps: set[str] = set()
    for item in stream:
        verdict = seqs.classify(item)
        if verdict in (Verdict.APPLY, Verdict.GAP):
            applied.append((item.origin, item.seq))
        if verdict is Verdict.GAP:
            gaps.add(item.origin)
    assert len(applied) == len(set(applied)), "an entry was applied twice"
    delivered = {(e.origin, e.seq) for e in stream}
    assert set(applied) == delivered, "a delivered entry was dropped"
    for origin, seqs_lost in lost.items():
        # A loss before a later delivered entry of that origin must be reported as a gap.
        if any(o == origin and s > min(seqs_lost) for o, s in delivered):
            assert origin in gaps
