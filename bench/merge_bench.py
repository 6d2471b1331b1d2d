"""Throughput of the three-way notebook merge (crdt.merge) and of applying it (crdt.apply).

A notebook of N cells (default 1,000: code cells with a small output, markdown cells), an
external version with a few edits (lines changed in 10 cells, 3 cells inserted, 2 deleted,
metadata on 2, 1 moved) and a live version with other edits (lines changed in 10 other cells,
2 inserted, 5 re-run).  Prints the median time per merge and cells/s, for nbformat 4.5 (cells
matched by id) and 4.4 (no ids: matched by position and content), with and without nbformat
schema validation of the external version, the time to apply the result to a live YNotebook, and
the time to read the live document into a dict (the merge's *ours*).

    python bench/merge_bench.py [--cells 1000] [--runs 15]
"""

from __future__ import annotations

import argparse
import copy
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

from jupyter_ydoc import YNotebook
from pycrdt import Doc

from crdt.apply import apply_notebook, read_notebook
from crdt.merge import merge_notebooks

JSONDict = dict[str, Any]


def make_notebook(n: int, rng: random.Random) -> JSONDict:
    cells: list[JSONDict] = []
    for i in range(n):
        lines = [f"value_{i}_{k} = compute({i}, {k})\n" for k in range(rng.randint(3, 10))]
        if i % 3 == 2:
            cells.append(
                {
                    "id": f"cell-{i}",
                    "cell_type": "markdown",
                    "metadata": {},
                    "source": f"## Section {i}\n" + "".join(f"Some text {k}.\n" for k in range(3)),
                }
            )
        else:
            cells.append(
                {
                    "id": f"cell-{i}",
                    "cell_type": "code",
                    "metadata": {"tags": ["t"]} if i % 10 == 0 else {},
                    "source": "".join(lines),
                    "execution_count": i + 1,
                    "outputs": [
                        {"output_type": "stream", "name": "stdout", "text": f"out {i}\n"},
                        {
                            "output_type": "execute_result",
                            "execution_count": i + 1,
                            "data": {"text/plain": f"{i}"},
                            "metadata": {},
                        },
                    ],
                }
            )
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
        "cells": cells,
    }


def edit_line(cell: JSONDict, rng: random.Random, tag: str) -> None:
    lines = cell["source"].splitlines(keepends=True)
    k = rng.randrange(len(lines))
    lines[k] = lines[k].rstrip("\n") + f"  # {tag}\n"
    cell["source"] = "".join(lines)


def make_versions(n: int, seed: int = 1) -> tuple[JSONDict, JSONDict, JSONDict]:
    rng = random.Random(seed)
    base = make_notebook(n, rng)
    theirs, ours = copy.deepcopy(base), copy.deepcopy(base)
    indices = rng.sample(range(n), 20)
    t_cells, o_cells = indices[:10], indices[10:]
    for i in t_cells:
        edit_line(theirs["cells"][i], rng, "theirs")
    for i in o_cells:
        edit_line(ours["cells"][i], rng, "ours")
    for i in rng.sample(range(n), 2):
        theirs["cells"][i]["metadata"]["collapsed"] = True
    for i in [c for c in rng.sample(range(n), 20) if ours["cells"][c]["cell_type"] == "code"][:5]:
        ours["cells"][i]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "re\n"}]
        ours["cells"][i]["execution_count"] = 10_000 + i
    moved = theirs["cells"].pop(n // 2)
    theirs["cells"].insert(n // 4, moved)
    for victim in sorted(rng.sample(range(n - 10), 2), reverse=True):
        if victim not in indices:
            del theirs["cells"][victim]
    for k in range(3):
        at = rng.randrange(len(theirs["cells"]))
        theirs["cells"].insert(at, {**copy.deepcopy(base["cells"][0]), "id": f"theirs-new-{k}"})
    for k in range(2):
        at = rng.randrange(len(ours["cells"]))
        ours["cells"].insert(at, {**copy.deepcopy(base["cells"][1]), "id": f"ours-new-{k}"})
    return base, theirs, ours


def without_ids(nb: JSONDict) -> JSONDict:
    out = copy.deepcopy(nb)
    out["nbformat_minor"] = 4
    for cell in out["cells"]:
        cell.pop("id", None)
    return out


def median_seconds(fn: Callable[[], object], runs: int) -> float:
    fn()  # warm-up (imports, caches)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    n, runs = args.cells, args.runs

    base, theirs, ours = make_versions(n)
    result = merge_notebooks(base, theirs, ours)
    print(
        f"{n} cells; merged: {len(result.notebook['cells'])} cells, "
        f"{len(result.conflicts)} conflicts, {len(result.notes)} notes"
    )

    cases: list[tuple[str, Callable[[], object]]] = [
        ("merge, ids (4.5), schema-validate theirs", lambda: merge_notebooks(base, theirs, ours)),
        (
            "merge, ids (4.5), no validation",
            lambda: merge_notebooks(base, theirs, ours, validate_theirs=False),
        ),
    ]
    b4, t4, o4 = without_ids(base), without_ids(theirs), without_ids(ours)
    r4 = merge_notebooks(b4, t4, o4, validate_theirs=False)
    print(f"4.4 variant: {len(r4.notebook['cells'])} cells, {len(r4.conflicts)} conflicts")
    cases.append(
        (
            "merge, no ids (4.4), no validation",
            lambda: merge_notebooks(b4, t4, o4, validate_theirs=False),
        )
    )
    for label, fn in cases:
        seconds = median_seconds(fn, runs)
        print(f"{label:45s} {seconds * 1000:8.1f} ms/merge {n / seconds:10,.0f} cells/s")

    # apply: a fresh live doc holding ours for every run; only apply_notebook is timed
    ours_update = _load_update(ours)
    times = []
    for _ in range(runs):
        ynb = YNotebook(Doc())
        ynb.ydoc.apply_update(ours_update)
        before = ynb.ydoc.get_state()
        start = time.perf_counter()
        apply_notebook(ynb, result.notebook)
        times.append(time.perf_counter() - start)
        size = len(ynb.ydoc.get_update(before))
    seconds = statistics.median(times)
    print(
        f"{'apply_notebook (result into live doc)':45s} {seconds * 1000:8.1f} ms/apply "
        f"{n / seconds:10,.0f} cells/s; Y update {size:,} bytes"
    )
    # reading ours out of the live doc, the merge's other input
    live = YNotebook(Doc())
    live.ydoc.apply_update(ours_update)
    for label, reader in (
        ("read_notebook(ynb) (live doc -> dict)", lambda: read_notebook(live)),
        ("YNotebook.get() for comparison", lambda: live.get()),
    ):
        seconds = median_seconds(reader, runs)
        print(f"{label:45s} {seconds * 1000:8.1f} ms/read  {n / seconds:10,.0f} cells/s")


def _load_update(nb: JSONDict) -> bytes:
    ynb = YNotebook(Doc(client_id=0))
    ynb.set(copy.deepcopy(nb))
    return ynb.ydoc.get_update()


if __name__ == "__main__":
    main()
