"""Hypothesis strategies: random nbformat-4 notebooks and random edit scripts on them.

Edits mimic what people and tools do to a notebook: change, insert or delete source lines, insert,
delete or move cells, change cell or notebook metadata, replace outputs (a re-run).  ``edited``
returns the edited notebook plus an :class:`EditLog` of what was touched, which the merge
properties use to compute the expected result.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

JSONDict = dict[str, Any]

# Small alphabets on purpose: repeated lines and similar cells make alignment interesting.
# Non-ASCII characters exercise the byte offsets of pycrdt's Text.
_CHARS = "abxy =(1)+é😀"
LINES = st.text(alphabet=_CHARS, max_size=8).map(lambda s: s + "\n")

METADATA = st.fixed_dictionaries(
    {},
    optional={
        "tags": st.lists(st.sampled_from(["a", "b", "hide", "x"]), max_size=2, unique=True),
        "collapsed": st.booleans(),
        "custom": st.one_of(st.integers(0, 3), st.text(alphabet="ab", max_size=2)),
        "jupyter": st.fixed_dictionaries({"source_hidden": st.booleans()}),
    },
)

STREAM = st.builds(
    lambda name, text: {"output_type": "stream", "name": name, "text": text},
    st.sampled_from(["stdout", "stderr"]),
    st.text(alphabet=_CHARS + "\n", max_size=10),
)
RESULT = st.builds(
    lambda n, text: {
        "output_type": "execute_result",
        "execution_count": n,
        "data": {"text/plain": text},
        "metadata": {},
    },
    st.integers(1, 9),
    st.text(alphabet=_CHARS, max_size=6),
)
DISPLAY = st.builds(
    lambda text: {
        "output_type": "display_data",
        "data": {"text/plain": text, "application/json": {"v": [1, 2]}},
        "metadata": {},
    },
    st.text(alphabet=_CHARS, max_size=6),
)
OUTPUTS = st.lists(st.one_of(STREAM, RESULT, DISPLAY), max_size=2)
EXECUTION_COUNT = st.one_of(st.none(), st.integers(1, 50))


@st.composite
def sources(draw: st.DrawFn, max_lines: int = 5) -> str:
    lines = draw(st.lists(LINES, max_size=max_lines))
    text = "".join(lines)
    if text and draw(st.booleans()):
        text = text[:-1]  # the last line of a cell usually has no newline
    return text


@st.composite
def cells(draw: st.DrawFn, cell_id: str | None, cell_type: str | None = None) -> JSONDict:
    ctype = cell_type or draw(st.sampled_from(["code", "code", "markdown", "raw"]))
    cell: JSONDict = {"cell_type": ctype, "metadata": draw(METADATA), "source": draw(sources())}
    if cell_id is not None:
        cell["id"] = cell_id
    if ctype == "code":
        cell["outputs"] = draw(OUTPUTS)
        cell["execution_count"] = draw(EXECUTION_COUNT)
    return cell


def on_disk(nb: JSONDict) -> JSONDict:
    """The on-disk form: multi-line strings as lists of lines (what json.loads of .ipynb gives)."""
    out = copy.deepcopy(nb)
    for cell in out["cells"]:
        cell["source"] = cell["source"].splitlines(keepends=True)
        for output in cell.get("outputs", []):
            if "text" in output:
                output["text"] = output["text"].splitlines(keepends=True)
            data = output.get("data", {})
            if "text/plain" in data:
                data["text/plain"] = data["text/plain"].splitlines(keepends=True)
    return out


@st.composite
def notebooks(
    draw: st.DrawFn,
    *,
    with_ids: bool | None = None,
    min_cells: int = 0,
    max_cells: int = 8,
    unique_sources: bool = False,
) -> JSONDict:
    """A valid notebook; ``unique_sources`` starts every cell with a line of its own."""
    ids = draw(st.booleans()) if with_ids is None else with_ids
    n = draw(st.integers(min_cells, max_cells))
    nb: JSONDict = {
        "nbformat": 4,
        "nbformat_minor": 5 if ids else 4,
        "metadata": draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "kernelspec": st.just(
                        {"name": "python3", "display_name": "Python 3", "language": "python"}
                    ),
                    "language_info": st.just({"name": "python"}),
                    "title": st.text(alphabet="ab", max_size=3),
                },
            )
        ),
        "cells": [draw(cells(f"c{i}" if ids else None)) for i in range(n)],
    }
    if unique_sources:
        for i, cell in enumerate(nb["cells"]):
            cell["source"] = f"# cell {i}\n{cell['source']}"
    return nb


# --------------------------------------------------------------------------- edit scripts


@dataclass
class EditLog:
    """What an edit script did, by cell id (ids are always present while editing)."""

    edited: set[str] = field(default_factory=set)  # content changed (source/metadata/type)
    rerun: set[str] = field(default_factory=set)  # outputs / execution_count changed
    inserted: set[str] = field(default_factory=set)
    deleted: set[str] = field(default_factory=set)
    moved: bool = False
    nb_metadata_keys: set[str] = field(default_factory=set)
    ops: list[str] = field(default_factory=list)

    @property
    def touched(self) -> set[str]:
        return self.edited | self.rerun | self.inserted | self.deleted


OPS = (
    "edit_line",
    "insert_line",
    "delete_line",
    "insert_cell",
    "delete_cell",
    "move_cell",
    "set_metadata",
    "del_metadata",
    "rerun",
    "nb_metadata",
    "change_type",
)
CONTENT_OPS = ("edit_line", "insert_line", "delete_line", "set_metadata", "del_metadata", "rerun")


def _fresh_line(draw: st.DrawFn, prefix: str) -> str:
    # prefixed so a new line never equals an existing one by accident in the exact properties
    return f"{prefix}{draw(st.text(alphabet=_CHARS, max_size=5))}\n"


@st.composite
def edited(
    draw: st.DrawFn,
    nb: JSONDict,
    prefix: str,
    *,
    allowed: frozenset[str] | None = None,
    ops: tuple[str, ...] = OPS,
    max_ops: int = 5,
    nb_metadata_key: str | None = None,
) -> tuple[JSONDict, EditLog]:
    """Apply a random edit script to a copy of ``nb`` (cells must have ids).

    ``prefix`` makes new ids and lines of this side unique; ``allowed`` limits which existing
    cells may be changed, deleted or moved (None: all); ``nb_metadata_key`` is the only notebook
    metadata key this side may set (None: any of a few).
    """
    out = copy.deepcopy(nb)
    cells_ = out["cells"]
    log = EditLog()
    counter = 0
    for _ in range(draw(st.integers(0, max_ops))):
        op = draw(st.sampled_from(ops))
        movable = [
            i
            for i, c in enumerate(cells_)
            if (allowed is None or c["id"] in allowed or c["id"] in log.inserted)
        ]
        if op in ("edit_line", "insert_line", "delete_line", "set_metadata", "del_metadata"):
            if not movable:
                continue
            cell = cells_[draw(st.sampled_from(movable))]
            lines = cell["source"].splitlines(keepends=True)
            if op == "edit_line" and lines:
                k = draw(st.integers(0, len(lines) - 1))
                lines[k] = _fresh_line(draw, prefix)
            elif op == "insert_line":
                k = draw(st.integers(0, len(lines)))
                if k == len(lines) and lines and not lines[-1].endswith("\n"):
                    lines[-1] += "\n"
                lines.insert(k, _fresh_line(draw, prefix))
            elif op == "delete_line" and lines:
                del lines[draw(st.integers(0, len(lines) - 1))]
            elif op == "set_metadata":
                key = draw(st.sampled_from(["tags", "custom", "slide"]))
                value = f"{prefix}{counter}"
                cell["metadata"][key] = [value] if key == "tags" else value
            elif op == "del_metadata" and cell["metadata"]:
                del cell["metadata"][draw(st.sampled_from(sorted(cell["metadata"])))]
            else:
                continue
            cell["source"] = "".join(lines)
            log.edited.add(cell["id"])
        elif op == "rerun":
            code = [i for i in movable if cells_[i]["cell_type"] == "code"]
            if not code:
                continue
            cell = cells_[draw(st.sampled_from(code))]
            cell["outputs"] = [
                {"output_type": "stream", "name": "stdout", "text": f"{prefix} run {counter}\n"}
            ]
            cell["execution_count"] = draw(st.integers(1, 99))
            log.rerun.add(cell["id"])
        elif op == "insert_cell":
            new_id = f"{prefix}{counter}"
            at = draw(st.integers(0, len(cells_)))
            cell = draw(cells(new_id))
            cell["source"] = _fresh_line(draw, prefix) + cell["source"]
            cells_.insert(at, cell)
            log.inserted.add(new_id)
        elif op == "delete_cell":
            if not movable:
                continue
            i = draw(st.sampled_from(movable))
            cid = cells_.pop(i)["id"]
            if cid in log.inserted:
                log.inserted.discard(cid)
            else:
                log.deleted.add(cid)
            log.edited.discard(cid)
            log.rerun.discard(cid)
        elif op == "move_cell":
            if not movable or len(cells_) < 2:
                continue
            i = draw(st.sampled_from(movable))
            cell = cells_.pop(i)
            cells_.insert(draw(st.integers(0, len(cells_))), cell)
            log.moved = True
        elif op == "nb_metadata":
            key = nb_metadata_key or draw(st.sampled_from(["title", "custom", "extra"]))
            out["metadata"][key] = f"{prefix}{counter}"
            log.nb_metadata_keys.add(key)
        elif op == "change_type":
            if not movable:
                continue
            cell = cells_[draw(st.sampled_from(movable))]
            new_type = draw(st.sampled_from(["code", "markdown", "raw"]))
            if new_type == cell["cell_type"]:
                continue
            cell["cell_type"] = new_type
            if new_type == "code":
                cell.setdefault("outputs", [])
                cell.setdefault("execution_count", None)
                cell.pop("attachments", None)
            else:
                cell.pop("outputs", None)
                cell.pop("execution_count", None)
            log.edited.add(cell["id"])
        else:
            continue
        counter += 1
        log.ops.append(op)
    return out, log


def strip_ids(nb: JSONDict) -> JSONDict:
    out = copy.deepcopy(nb)
    out["nbformat_minor"] = 4
    for cell in out["cells"]:
        cell.pop("id", None)
    return out
