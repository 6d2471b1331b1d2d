"""Normalising and checking notebooks before they are merged or applied.

On disk, nbformat stores multi-line strings as lists of lines; the merge and :mod:`crdt.apply`
compare strings, so everything they read goes through :func:`normalized` first.  The checks
here decide whether a notebook can be merged at all: :func:`normalized` raises
:class:`InvalidNotebook` for anything that is not structurally nbformat 4, and
:func:`schema_error` runs the nbformat schema over an external version's changed cells.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

__all__ = ["InvalidNotebook", "normalize_notebook", "normalized", "schema_error"]

JSONDict = dict[str, Any]

_CELL_TYPES: Final = frozenset({"code", "markdown", "raw"})


class InvalidNotebook(ValueError):
    """The input is not a notebook that can be merged (nbformat 4 structure)."""


def _join(value: Any) -> Any:
    if type(value) is list and all(type(v) is str for v in value):
        return "".join(value)
    return value


def _is_json_mime(mime: str) -> bool:
    return mime == "application/json" or mime.endswith("+json")


def _joined_bundle(bundle: Any) -> Any:
    """A mime bundle with multi-line values joined (the same object if nothing needed it).

    nbformat stores multi-line strings as lists of lines on disk; JSON mime types legitimately hold
    lists, so only non-JSON ones are joined (the same rule as nbformat's ``rejoin_lines``).
    """
    if not isinstance(bundle, dict):
        return bundle
    out: JSONDict | None = None
    for mime, value in bundle.items():
        if type(value) is list and not _is_json_mime(mime):
            joined = _join(value)
            if joined is not value:
                out = dict(bundle) if out is None else out
                out[mime] = joined
    return bundle if out is None else out


def _joined_output(output: Any) -> Any:
    if not isinstance(output, dict):
        return output
    text, data = output.get("text"), output.get("data")
    new_text, new_data = _join(text), _joined_bundle(data)
    if new_text is text and new_data is data:
        return output
    out = dict(output)
    if "text" in output:
        out["text"] = new_text
    if "data" in output:
        out["data"] = new_data
    return out


def _normalized_cell(cell: Mapping[str, Any]) -> JSONDict:
    out = dict(cell)
    out["source"] = _join(out["source"])
    outputs = out.get("outputs")
    if type(outputs) is list and outputs:
        joined = [_joined_output(o) for o in outputs]
        if any(new is not old for new, old in zip(joined, outputs, strict=True)):
            out["outputs"] = joined
    attachments = out.get("attachments")
    if attachments == {}:
        # jupyter_ydoc's get() drops empty attachments; without this, a file's "attachments": {}
        # against the live doc's missing key would look like a change and collide with theirs
        del out["attachments"]
    elif isinstance(attachments, dict):
        bundles = {name: _joined_bundle(b) for name, b in attachments.items()}
        if any(bundles[name] is not attachments[name] for name in attachments):
            out["attachments"] = bundles
    return out


def _structure_error(nb: Any) -> str | None:
    """Why ``nb`` is not even structurally an nbformat-4 notebook, or None."""
    if not isinstance(nb, Mapping):
        return "not a JSON object"
    major = nb.get("nbformat")
    if isinstance(major, bool) or not isinstance(major, int | float) or major != 4:
        return f"unsupported nbformat {major!r} (need 4)"
    minor = nb.get("nbformat_minor", 0)
    if isinstance(minor, bool) or not isinstance(minor, int | float) or minor != int(minor):
        return f"bad nbformat_minor {minor!r}"
    if not isinstance(nb.get("metadata", {}), Mapping):
        return "notebook metadata is not an object"
    cells = nb.get("cells")
    if not isinstance(cells, list):
        return "no cells list"
    # dict, not Mapping, in the per-cell loop: ABC isinstance checks dominate otherwise
    for index, cell in enumerate(cells):
        if not isinstance(cell, dict):
            return f"cell {index} is not an object"
        if cell.get("cell_type") not in _CELL_TYPES:
            return f"cell {index} has cell_type {cell.get('cell_type')!r}"
        source = cell.get("source")
        if type(source) is not str and not (
            type(source) is list and all(type(s) is str for s in source)
        ):
            return f"cell {index} has no string source"
        if not isinstance(cell.get("metadata", {}), dict):
            return f"cell {index} metadata is not an object"
        outputs = cell.get("outputs", ())
        if type(outputs) is not list and outputs != ():
            return f"cell {index} outputs are not a list"
        if outputs and not all(isinstance(o, dict) for o in outputs):
            return f"cell {index} outputs are not objects"
    return None


def normalized(nb: Mapping[str, Any]) -> JSONDict:
    """Structure-checked ``nb`` with multi-line strings joined, without copying everything.

    The notebook and cell dicts are new; nested values (metadata, outputs, ...) are shared with
    ``nb`` unless they had to change.  Nothing of ``nb`` is ever mutated.  Deep copies of 1,000-cell
    notebooks cost more than the whole merge, hence this.
    """
    problem = _structure_error(nb)
    if problem is not None:
        raise InvalidNotebook(problem)
    out = dict(nb)
    out["nbformat"] = int(out["nbformat"])
    if "nbformat_minor" in out:
        out["nbformat_minor"] = int(out["nbformat_minor"])
    out["cells"] = [_normalized_cell(cell) for cell in nb["cells"]]
    return out


def normalize_notebook(nb: Mapping[str, Any]) -> JSONDict:
    """A deep copy of ``nb`` with every multi-line string joined into one ``str``.

    Covers cell sources, stream output text, and non-JSON mime data in outputs and attachments;
    ``nbformat``/``nbformat_minor`` become ints.  Raises :class:`InvalidNotebook` if ``nb`` is not
    structurally an nbformat-4 notebook or not JSON data.
    """
    try:
        # a JSON round trip is the fastest deep copy of JSON data in CPython, and rejects
        # anything that could not be written to an .ipynb file anyway
        out: JSONDict = json.loads(json.dumps(normalized(nb)))
    except (TypeError, ValueError) as exc:
        if isinstance(exc, InvalidNotebook):
            raise
        raise InvalidNotebook(f"not JSON data: {exc}") from exc
    return out


def schema_error(theirs: JSONDict, base: JSONDict) -> str | None:
    """First nbformat schema violation among theirs' cells that differ from base's, or None.

    Cells identical to their base version are skipped: base is what the hub last read or wrote,
    and an old flaw is not the external writer's doing (and ours has the same cell).  Missing and
    duplicate ids are tolerated: the merge matches such cells by content and derives ids.  The
    validator is called directly because ``nbformat.validate`` mutates its argument ("repairs"
    ids with random ones).  fastjsonschema when available: 3-5x faster than jsonschema.
    """
    # deferred: importing the validators (jsonschema) is slow and only needed here
    from nbformat import ValidationError
    from nbformat.validator import get_validator

    minor = int(theirs.get("nbformat_minor", 0))
    b_cells: list[JSONDict] = base["cells"]
    b_by_id = {c["id"]: c for c in b_cells if type(c.get("id")) is str}
    seen: set[str] = set()
    changed: list[JSONDict] = []
    for index, cell in enumerate(theirs["cells"]):
        cid = cell.get("id")
        if type(cid) is str:
            if cid not in seen and b_by_id.get(cid) == cell:
                seen.add(cid)
                continue
        elif index < len(b_cells) and b_cells[index] == cell:
            continue
        if minor >= 5 and (type(cid) is not str or cid in seen):
            cell = {**cell, "id": f"placeholder-{index}"}
        elif type(cid) is str:
            seen.add(cid)
        changed.append(cell)
    checked = {**theirs, "cells": changed}
    try:
        validator = get_validator(version=4, version_minor=minor, name="fastjsonschema")  # type: ignore[no-untyped-call]
    except (ImportError, ValueError):
        validator = get_validator(version=4, version_minor=minor)  # type: ignore[no-untyped-call]
    if validator is None:
        return None  # a future 4.x without a schema here: merge what we understand
    try:
        validator.validate(checked)
    except ValidationError as exc:
        return str(getattr(exc, "message", exc)).splitlines()[0][:300]
    return None
