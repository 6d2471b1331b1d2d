"""Raw messages that tell a room's clients what happened to their document (issue 14).

Stock JupyterLab ignores them; @cs3collab/lab shows them (a notification naming the writer,
with "show changes"). Kept small: at most ``MAX_CELLS`` cells, sources cut to ``MAX_SOURCE``.
"""

from __future__ import annotations

import json
from typing import Any

MAX_CELLS = 20
MAX_SOURCE = 2000


def _cells(data: bytes) -> dict[str, tuple[int, str]] | None:
    try:
        nb = json.loads(data)
        cells = nb["cells"]
    except (ValueError, KeyError, TypeError):
        return None  # not a notebook (a text file, or invalid JSON): no per-cell summary
    out: dict[str, tuple[int, str]] = {}
    for index, cell in enumerate(cells):
        if isinstance(cell, dict) and isinstance(cell.get("id"), str):
            source = cell.get("source", "")
            out[cell["id"]] = (index, "".join(source) if isinstance(source, list) else str(source))
    return out


def changed_cells(base: bytes, theirs: bytes) -> list[dict[str, Any]]:
    """What the other writer changed relative to ``base``: added, changed, deleted cells."""
    before, after = _cells(base), _cells(theirs)
    if before is None or after is None:
        return []
    changes: list[dict[str, Any]] = []
    for cell_id, (index, source) in after.items():
        old = before.get(cell_id)
        if old is None or old[1] != source:
            changes.append({"kind": "added" if old is None else "changed", "cellId": cell_id,
                            "index": index, "source": source[:MAX_SOURCE],
                            "before": "" if old is None else old[1][:MAX_SOURCE]})  # fmt: skip
    for cell_id, (index, source) in before.items():
        if cell_id not in after:
            changes.append({"kind": "deleted", "cellId": cell_id, "index": index,
                            "source": "", "before": source[:MAX_SOURCE]})  # fmt: skip
    return changes[:MAX_CELLS]


def external_change(who: str, base: bytes | None, theirs: bytes, conflicts: int) -> dict[str, Any]:
    """``{"type": "external_change"}``: a version written elsewhere was merged into the room."""
    return {
        "type": "external_change",
        "who": who or "another application",
        "changes": changed_cells(base, theirs) if base is not None else [],
        "conflicts": conflicts,
    }
