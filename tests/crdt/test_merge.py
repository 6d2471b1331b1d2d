"""Three-way notebook merge: properties over random notebooks and edit scripts, plus cases."""

from __future__ import annotations

import copy
import json
import warnings
from typing import Any

import nbformat
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crdt.matching import match_cells
from crdt.merge import MergeResult, merge_notebooks
from crdt.normalize import InvalidNotebook, normalize_notebook
from crdt.textmerge import merge3_text
from tests.crdt.strategies import (
    CONTENT_OPS,
    OPS,
    EditLog,
    edited,
    notebooks,
    on_disk,
    strip_ids,
)

JSONDict = dict[str, Any]
SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def norm(nb: JSONDict) -> JSONDict:
    return normalize_notebook(nb)


def assert_valid(nb: JSONDict) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nbformat warns (and repairs) on missing/duplicate ids
        nbformat.validate(nbformat.from_dict(copy.deepcopy(nb)))
    ids = [c["id"] for c in nb["cells"] if "id" in c]
    assert len(ids) == len(set(ids)), f"duplicated ids: {ids}"
    if nb["nbformat_minor"] >= 5:
        assert len(ids) == len(nb["cells"])
    else:
        assert not ids


def by_id(nb: JSONDict) -> dict[str, JSONDict]:
    return {c["id"]: c for c in nb["cells"]}


# --------------------------------------------------------------------------- generators


@st.composite
def three_way(
    draw: st.DrawFn, *, with_ids: bool | None = True, ops: tuple[str, ...] = OPS
) -> tuple[JSONDict, JSONDict, JSONDict]:
    """base, theirs, ours: two independent random edit scripts on one random notebook."""
    base = draw(notebooks(with_ids=True))
    theirs, _ = draw(edited(base, "t", ops=ops))
    ours, _ = draw(edited(base, "o", ops=ops))
    ids = draw(st.booleans()) if with_ids is None else with_ids
    if not ids:
        base, theirs, ours = strip_ids(base), strip_ids(theirs), strip_ids(ours)
    return base, theirs, ours


@st.composite
def disjoint(
    draw: st.DrawFn, *, structural: bool = True, unique_sources: bool = False
) -> tuple[JSONDict, JSONDict, JSONDict, EditLog, EditLog]:
    """Both sides edit, insert and delete, but never touch the same existing cell."""
    base = draw(notebooks(with_ids=True, unique_sources=unique_sources))
    ids = [c["id"] for c in base["cells"]]
    mine = draw(st.lists(st.booleans(), min_size=len(ids), max_size=len(ids)))
    t_allowed = frozenset(i for i, m in zip(ids, mine, strict=True) if m)
    o_allowed = frozenset(i for i, m in zip(ids, mine, strict=True) if not m)
    if structural:
        movers = draw(st.sampled_from(["theirs", "ours", "none"]))
        t_ops = OPS if movers == "theirs" else tuple(o for o in OPS if o != "move_cell")
        o_ops = OPS if movers == "ours" else tuple(o for o in OPS if o != "move_cell")
    else:
        t_ops = o_ops = CONTENT_OPS
    theirs, t_log = draw(edited(base, "t", allowed=t_allowed, ops=t_ops, nb_metadata_key="tk"))
    ours, o_log = draw(edited(base, "o", allowed=o_allowed, ops=o_ops, nb_metadata_key="ok"))
    return base, theirs, ours, t_log, o_log


def expected_disjoint(base: JSONDict, theirs: JSONDict, ours: JSONDict) -> dict[str, JSONDict]:
    """Per id, the cell the merge must produce when the two sides touched disjoint cells."""
    b, t, o = by_id(base), by_id(theirs), by_id(ours)
    out: dict[str, JSONDict] = {}
    for cid, cell in t.items():
        if cid not in b:
            out[cid] = cell
        elif cid in o:
            out[cid] = cell if cell != b[cid] else o[cid]
    for cid, cell in o.items():
        if cid not in b:
            out[cid] = cell
    return out


def restricted(order: list[str], keep: set[str]) -> list[str]:
    return [k for k in order if k in keep]


# --------------------------------------------------------------------------- properties


@SETTINGS
@given(three_way(with_ids=None), st.booleans())
def test_one_side_unchanged_gives_the_other(
    case: tuple[JSONDict, JSONDict, JSONDict], disk_form: bool
) -> None:
    base, theirs, ours = case
    conv = on_disk if disk_form else (lambda nb: nb)
    # theirs == base: the result is ours
    result = merge_notebooks(conv(base), conv(base), conv(ours))
    assert result.clean
    assert result.notebook == norm(ours)
    # ours == base: the result is theirs
    result = merge_notebooks(conv(base), conv(theirs), conv(base))
    assert result.clean
    assert result.notebook == norm(theirs)
    # both made the same changes: the result is that
    result = merge_notebooks(conv(base), conv(theirs), conv(theirs))
    assert result.clean
    assert result.notebook == norm(theirs)


@SETTINGS
@given(disjoint())
def test_disjoint_changes_are_all_kept(
    case: tuple[JSONDict, JSONDict, JSONDict, EditLog, EditLog],
) -> None:
    base, theirs, ours, t_log, o_log = case
    result = merge_notebooks(base, theirs, ours)
    assert result.clean, result.conflicts
    merged = result.notebook
    assert by_id(merged) == expected_disjoint(base, theirs, ours)
    # notebook metadata: each side set its own key
    for key in t_log.nb_metadata_keys:
        assert merged["metadata"][key] == theirs["metadata"][key]
    for key in o_log.nb_metadata_keys:
        assert merged["metadata"][key] == ours["metadata"][key]
    # order: the side that did not move cells keeps its relative order, and so does the mover
    m_order = [c["id"] for c in merged["cells"]]
    t_order = [c["id"] for c in theirs["cells"]]
    o_order = [c["id"] for c in ours["cells"]]
    if not o_log.moved:
        assert restricted(m_order, set(t_order)) == restricted(t_order, set(m_order))
    if not t_log.moved:
        assert restricted(m_order, set(o_order)) == restricted(o_order, set(m_order))
    assert_valid(merged)


@SETTINGS
@given(disjoint(structural=False, unique_sources=True))
def test_disjoint_content_edits_without_ids(
    case: tuple[JSONDict, JSONDict, JSONDict, EditLog, EditLog],
) -> None:
    """nbformat < 4.5: cells are matched by position and content; no structural edits."""
    base, theirs, ours, _, _ = case
    expected_cells = [
        expected_disjoint(base, theirs, ours)[c["id"]] for c in base["cells"]
    ]  # no inserts/deletes/moves: base order
    result = merge_notebooks(strip_ids(base), strip_ids(theirs), strip_ids(ours))
    assert result.clean, result.conflicts
    assert result.notebook["cells"] == strip_ids({"cells": expected_cells})["cells"]
    assert_valid(result.notebook)


@SETTINGS
@given(disjoint(structural=True, unique_sources=True))
def test_disjoint_structural_edits_without_ids(
    case: tuple[JSONDict, JSONDict, JSONDict, EditLog, EditLog],
) -> None:
    """Without ids every change still arrives; only cell identity is a guess."""
    base, theirs, ours, _, _ = case
    expected = expected_disjoint(base, theirs, ours)
    result = merge_notebooks(strip_ids(base), strip_ids(theirs), strip_ids(ours))
    got = sorted(json.dumps(c, sort_keys=True) for c in result.notebook["cells"])
    want = sorted(
        json.dumps(c, sort_keys=True)
        for c in strip_ids({"cells": list(expected.values())})["cells"]
    )
    if result.clean:
        assert got == want
    else:
        # a mis-guessed identity may turn into a delete/edit conflict: nothing is lost then
        assert all(c.field == "cell" for c in result.conflicts)
        assert set(want) <= set(got)
    assert_valid(result.notebook)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(three_way(with_ids=None))
def test_any_edits_deterministic_unique_ids_valid(
    case: tuple[JSONDict, JSONDict, JSONDict],
) -> None:
    base, theirs, ours = case
    snapshot = copy.deepcopy(case)
    one = merge_notebooks(base, theirs, ours)
    two = merge_notebooks(copy.deepcopy(base), copy.deepcopy(theirs), copy.deepcopy(ours))
    assert (base, theirs, ours) == snapshot, "inputs must not be modified"
    assert json.dumps(one.notebook) == json.dumps(two.notebook)  # same content and key order
    assert one.conflicts == two.conflicts and one.notes == two.notes
    assert_valid(one.notebook)
    for conflict in one.conflicts:
        if conflict.cell_index is not None:
            cell = one.notebook["cells"][conflict.cell_index]
            assert conflict.cell_id == cell.get("id")


@SETTINGS
@given(three_way(with_ids=True))
def test_conflicted_cells_keep_ours_and_clean_cells_lose_nothing(
    case: tuple[JSONDict, JSONDict, JSONDict],
) -> None:
    base, theirs, ours = case
    result = merge_notebooks(base, theirs, ours)
    merged = by_id(result.notebook)
    o = by_id(ours)
    for conflict in result.conflicts:
        if conflict.field == "source":
            assert conflict.cell_id is not None
            assert merged[conflict.cell_id]["source"] == o[conflict.cell_id]["source"]
    # no silent loss: every cell theirs edited or inserted is in the result or is a conflict
    b, t = by_id(base), by_id(theirs)
    conflicted = {c.cell_id for c in result.conflicts}
    for cid, cell in t.items():
        if cid not in b or (cell != b[cid] and cell["source"] != b[cid]["source"]):
            assert cid in merged or cid in conflicted
    # a source changed on one side only arrives as it is; changed on both, it is the diff3 merge
    for cid, cell in merged.items():
        if cid not in b or cid not in t or cid not in o or cid in conflicted:
            continue
        bs, ts, os_ = b[cid]["source"], t[cid]["source"], o[cid]["source"]
        assert cell["source"] == merge3_text(bs, ts, os_).text


# --------------------------------------------------------------------------- cases


def nb(*cells: JSONDict, minor: int = 5, **metadata: Any) -> JSONDict:
    return {"nbformat": 4, "nbformat_minor": minor, "metadata": metadata, "cells": list(cells)}


def code(cid: str | None, source: str, **extra: Any) -> JSONDict:
    cell: JSONDict = {
        "cell_type": "code",
        "metadata": {},
        "source": source,
        "outputs": [],
        "execution_count": None,
    }
    if cid is not None:
        cell["id"] = cid
    cell.update(extra)
    return cell


def md(cid: str | None, source: str, **extra: Any) -> JSONDict:
    cell: JSONDict = {"cell_type": "markdown", "metadata": {}, "source": source}
    if cid is not None:
        cell["id"] = cid
    cell.update(extra)
    return cell


def sources(result: MergeResult) -> list[str]:
    return [c["source"] for c in result.notebook["cells"]]


def test_line_edits_in_one_cell_merge() -> None:
    base = nb(code("a", "x = 1\ny = 2\nz = 3\n"))
    theirs = nb(code("a", "x = 10\ny = 2\nz = 3\n"))
    ours = nb(code("a", "x = 1\ny = 2\nz = 30\n"))
    result = merge_notebooks(base, theirs, ours)
    assert result.clean
    assert sources(result) == ["x = 10\ny = 2\nz = 30\n"]


def test_overlapping_line_edits_conflict_and_keep_ours_whole() -> None:
    base = nb(code("a", "x = 1\ny = 2\nz = 3\nw = 4\n"), md("b", "text"))
    theirs = nb(code("a", "x = 1\ny = 20\nz = 3\nw = 40\n"), md("b", "text!"))
    ours = nb(code("a", "x = 1\ny = 21\nz = 3\nw = 4\n"), md("b", "text"))
    result = merge_notebooks(base, theirs, ours)
    assert not result.clean
    [conflict] = result.conflicts
    assert (conflict.cell_id, conflict.cell_index, conflict.field) == ("a", 0, "source")
    assert "base lines 2-2" in conflict.message
    # the cell keeps ours entirely (theirs' non-conflicting w = 40 goes to the conflict copy),
    # other cells still merge
    assert sources(result) == ["x = 1\ny = 21\nz = 3\nw = 4\n", "text!"]


def test_delete_vs_edit_keeps_the_edited_cell() -> None:
    base = nb(code("a", "1"), code("b", "2"), code("c", "3"))
    theirs = nb(code("a", "1"), code("c", "3 edited"))  # deleted b
    ours = nb(code("a", "1"), code("b", "2 edited"), code("c", "3"))
    result = merge_notebooks(base, theirs, ours)
    assert sources(result) == ["1", "2 edited", "3 edited"]
    assert [(c.cell_id, c.field) for c in result.conflicts] == [("b", "cell")]
    # and the other way round: ours deleted, theirs edited -> restored at theirs' position
    result = merge_notebooks(base, ours, theirs)
    assert sources(result) == ["1", "2 edited", "3 edited"]
    assert [(c.cell_id, c.field) for c in result.conflicts] == [("b", "cell")]


def test_delete_vs_rerun_deletes_with_a_note() -> None:
    base = nb(code("a", "1"), code("b", "2"))
    theirs = nb(code("a", "1"))
    out = [{"output_type": "stream", "name": "stdout", "text": "2\n"}]
    ours = nb(code("a", "1"), code("b", "2", outputs=out, execution_count=3))
    result = merge_notebooks(base, theirs, ours)
    assert result.clean
    assert sources(result) == ["1"]
    assert any("outputs" in note for note in result.notes)


def test_moves_from_the_side_that_moved() -> None:
    base = nb(code("a", "a"), code("b", "b"), code("c", "c"), code("d", "d"))
    theirs = nb(code("c", "c"), code("a", "a"), code("b", "b"), code("d", "d"))  # moved c up
    ours = nb(code("a", "a"), code("b", "b!"), code("c", "c"), code("d", "d"), code("e", "e"))
    result = merge_notebooks(base, theirs, ours)
    assert result.clean
    assert sources(result) == ["c", "a", "b!", "d", "e"]


def test_same_cell_moved_differently_keeps_ours_without_conflict() -> None:
    base = nb(code("a", "a"), code("b", "b"), code("c", "c"), code("d", "d"))
    theirs = nb(code("b", "b"), code("c", "c"), code("d", "d"), code("a", "a"))  # a to the end
    ours = nb(code("b", "b"), code("c", "c"), code("a", "a"), code("d", "d"))  # a after c
    result = merge_notebooks(base, theirs, ours)
    assert result.clean
    assert sources(result) == ["b", "c", "a", "d"]
    assert any("moved on both sides" in note for note in result.notes)


def test_moves_of_different_cells_are_both_applied() -> None:
    base = nb(code("a", "a"), code("b", "b"), code("c", "c"))
    theirs = nb(code("c", "c"), code("a", "a"), code("b", "b"))  # c to the top
    ours = nb(code("b", "b"), code("c", "c"), code("a", "a"))  # a to the end
    result = merge_notebooks(base, theirs, ours)
    assert result.clean
    assert sources(result) == ["c", "b", "a"]


def test_inserts_at_the_same_place_keep_both_ours_first() -> None:
    base = nb(code("a", "a"), code("b", "b"))
    theirs = nb(code("a", "a"), code("t", "theirs"), code("b", "b"))
    ours = nb(code("a", "a"), code("o", "ours"), code("b", "b"))
    result = merge_notebooks(base, theirs, ours)
    assert result.clean
    assert sources(result) == ["a", "ours", "theirs", "b"]


def test_same_id_inserted_on_both_sides() -> None:
    base = nb(code("a", "a"))
    same = merge_notebooks(
        base, nb(code("a", "a"), code("n", "x")), nb(code("a", "a"), code("n", "x"))
    )
    assert [c["id"] for c in same.notebook["cells"]] == ["a", "n"]
    diff = merge_notebooks(
        base, nb(code("a", "a"), code("n", "x")), nb(code("a", "a"), code("n", "y"))
    )
    assert sources(diff) == ["a", "y", "x"]
    ids = [c["id"] for c in diff.notebook["cells"]]
    assert ids[:2] == ["a", "n"] and ids[2] not in ("a", "n")  # ours keeps the id


def test_duplicated_ids_in_theirs_are_repaired() -> None:
    base = nb(code("a", "a"), code("b", "b"))
    theirs = nb(code("a", "a"), code("b", "b"), code("b", "copy of b"))
    result = merge_notebooks(base, theirs, base, validate_theirs=False)
    assert sources(result) == ["a", "b", "copy of b"]
    assert_valid(result.notebook)


def test_metadata_per_key_and_conflicts() -> None:
    base = nb(code("a", "a", metadata={"tags": ["x"], "collapsed": False}), title="t")
    theirs = nb(
        code("a", "a", metadata={"tags": ["y"], "collapsed": True, "slide": "s"}), title="T"
    )
    ours = nb(code("a", "a", metadata={"tags": ["z"], "collapsed": False, "custom": 1}), title="t")
    result = merge_notebooks(base, theirs, ours)
    cell = result.notebook["cells"][0]
    assert cell["metadata"] == {"tags": ["z"], "collapsed": True, "custom": 1, "slide": "s"}
    assert result.notebook["metadata"] == {"title": "T"}
    assert [(c.cell_id, c.field) for c in result.conflicts] == [("a", "metadata.tags")]


def test_volatile_metadata_conflict_is_only_a_note() -> None:
    base = nb(code("a", "a", metadata={"collapsed": False}), language_info={"name": "python"})
    theirs = nb(code("a", "a", metadata={"collapsed": True}), language_info={"name": "py", "v": 1})
    ours = nb(code("a", "a", metadata={"scrolled": True}), language_info={"name": "python3"})
    result = merge_notebooks(base, theirs, ours)
    assert result.clean
    assert result.notebook["metadata"]["language_info"] == {"name": "python3", "v": 1}
    assert result.notebook["cells"][0]["metadata"] == {"scrolled": True}


def test_outputs_from_the_side_that_ran() -> None:
    out_t = [{"output_type": "stream", "name": "stdout", "text": "t\n"}]
    out_o = [{"output_type": "stream", "name": "stdout", "text": "o\n"}]
    base = nb(code("a", "a"), code("b", "b"))
    theirs = nb(code("a", "a", outputs=out_t, execution_count=1), code("b", "b", outputs=out_t))
    ours = nb(code("a", "a!"), code("b", "b", outputs=out_o, execution_count=7))
    result = merge_notebooks(base, theirs, ours)
    assert result.clean
    a, b = result.notebook["cells"]
    assert (a["source"], a["outputs"], a["execution_count"]) == ("a!", out_t, 1)
    assert (b["outputs"], b["execution_count"]) == (out_o, 7)
    assert any("outputs changed on both sides" in n for n in result.notes)


def test_cell_type_change_fits_keys() -> None:
    out = [{"output_type": "stream", "name": "stdout", "text": "x\n"}]
    base = nb(code("a", "# title\n", outputs=out, execution_count=1))
    theirs = nb(md("a", "# title\n"))
    ours = nb(code("a", "# title\nmore\n", outputs=out, execution_count=1))
    result = merge_notebooks(base, theirs, ours)
    assert result.clean
    assert result.notebook["cells"] == [md("a", "# title\nmore\n")]
    assert_valid(result.notebook)


def test_old_notebooks_match_by_content() -> None:
    base = nb(
        code(None, "import os\n"),
        md(None, "# Title\nsome text\n"),
        code(None, "print(1)\n"),
        minor=4,
    )
    theirs = nb(
        code(None, "import os\n"),
        md(None, "# Title\nsome text, edited\n"),
        code(None, "print(1)\n"),
        minor=4,
    )
    ours = nb(
        code(None, "import sys\n"),  # a short cell rewritten: no longer "the same cell"
        md(None, "# Title\nsome text\n"),
        code(None, "new cell\n"),
        code(None, "print(1)\nprint(2)\n"),
        minor=4,
    )
    result = merge_notebooks(base, theirs, ours)
    assert result.clean
    assert sources(result) == [
        "import sys\n",
        "# Title\nsome text, edited\n",
        "new cell\n",
        "print(1)\nprint(2)\n",
    ]
    assert all("id" not in c for c in result.notebook["cells"])


def test_match_cells_by_content_and_similarity() -> None:
    a = [
        code(None, "one\n"),
        code(None, "two two two\n"),
        md(None, "three\n"),
        code(None, "four\n"),
    ]
    b = [
        code(None, "zero\n"),
        code(None, "one\n"),
        code(None, "two two TWO\n"),
        code(None, "four\n"),
    ]
    # "three" (markdown) has no counterpart; the edited "two" is paired by similarity
    assert match_cells(a, b) == {0: 1, 1: 2, 3: 3}


def test_upgrade_to_45_keeps_and_derives_ids() -> None:
    base = nb(code(None, "a\n"), code(None, "b\n"), minor=4)
    theirs = nb(code("x1", "a\n"), code("x2", "b\n"))  # an external tool upgraded to 4.5
    ours = nb(code(None, "a\n"), code(None, "b\n"), code(None, "c\n"), minor=4)
    result = merge_notebooks(base, theirs, ours)
    assert result.notebook["nbformat_minor"] == 5
    ids = [c["id"] for c in result.notebook["cells"]]
    assert ids[:2] == ["x1", "x2"] and len(set(ids)) == 3
    assert_valid(result.notebook)
    assert merge_notebooks(base, theirs, ours).notebook == result.notebook


@pytest.mark.parametrize(
    "theirs",
    [
        {"not": "a notebook"},
        {"nbformat": 3, "nbformat_minor": 0, "worksheets": []},
        {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [{"cell_type": "code"}]},
        b"{not json",
        b"\xff\xfe binary",
        b"[1, 2]",
        # structurally fine, but fails the schema (code cell without outputs)
        {
            "nbformat": 4,
            "nbformat_minor": 5,
            "metadata": {},
            "cells": [{"id": "a", "cell_type": "code", "metadata": {}, "source": ""}],
        },
    ],
)
def test_invalid_theirs_is_a_notebook_conflict(theirs: JSONDict | bytes) -> None:
    base = nb(code("a", "a"))
    ours = nb(code("a", "a live"))
    result = merge_notebooks(base, theirs, ours)
    assert not result.clean
    assert [c.field for c in result.conflicts] == ["notebook"]
    assert result.notebook == ours


def test_invalid_base_or_ours_raises() -> None:
    with pytest.raises(InvalidNotebook):
        merge_notebooks({"cells": 1}, nb(), nb())
    with pytest.raises(InvalidNotebook):
        merge_notebooks(nb(), nb(), {"nbformat": 4, "cells": [{"cell_type": "x", "source": ""}]})


def test_normalize_joins_multiline_strings_but_not_json() -> None:
    cell = code(
        "a",
        ["x\n", "y"],
        outputs=[
            {"output_type": "stream", "name": "stdout", "text": ["1\n", "2\n"]},
            {
                "output_type": "display_data",
                "metadata": {},
                "data": {"text/plain": ["a\n", "b"], "application/json": ["keep", "list"]},
            },
        ],
    )
    out = normalize_notebook(nb(cell))["cells"][0]
    assert out["source"] == "x\ny"
    assert out["outputs"][0]["text"] == "1\n2\n"
    assert out["outputs"][1]["data"] == {"text/plain": "a\nb", "application/json": ["keep", "list"]}
    assert cell["source"] == ["x\n", "y"]  # input untouched


def test_jupyter_ydoc_placeholders_do_not_collide_with_a_real_kernelspec() -> None:
    # the file has no kernelspec; YNotebook.set() put placeholders into the live doc
    base = nb(md("a", "x"))
    ours = nb(md("a", "x"))
    ours["metadata"] = {
        "kernelspec": {"name": "", "display_name": ""},
        "language_info": {"name": ""},
    }
    theirs = nb(md("a", "x"))
    theirs["metadata"] = {"kernelspec": {"name": "python3", "display_name": "Python 3"}}
    result = merge_notebooks(base, theirs, ours)
    assert result.clean
    assert result.notebook["metadata"] == {
        "kernelspec": {"name": "python3", "display_name": "Python 3"},
        "language_info": {"name": ""},
    }
    # and when theirs did not touch the metadata the live placeholders stay as they are
    assert merge_notebooks(base, base, ours).notebook == normalize_notebook(ours)


def test_empty_attachments_equal_missing() -> None:
    # the file has "attachments": {}, the live doc (jupyter_ydoc get()) drops it
    base = nb(md("a", "![img](attachment:x.png)", attachments={}))
    ours = nb(md("a", "![img](attachment:x.png)"))
    png = {"x.png": {"image/png": "iVBORw0KGgo="}}
    theirs = nb(md("a", "![img](attachment:x.png)", attachments=png))
    result = merge_notebooks(base, theirs, ours)
    assert result.clean
    assert result.notebook["cells"][0]["attachments"] == png


def test_theirs_as_file_bytes() -> None:
    base = nb(code("a", "a\n"))
    theirs = json.dumps(on_disk(nb(code("a", "a\nb\n")))).encode()
    result = merge_notebooks(base, theirs, base)
    assert result.clean
    assert sources(result) == ["a\nb\n"]
