"""Document kinds: deterministic load, export equal to Jupyter's own serialisation."""

from __future__ import annotations

import json
from typing import Any

import nbformat
import pytest
from hypothesis import given, settings
from pycrdt import Doc

from crdt.documents import KINDS, parse_notebook, serialize_notebook
from crdt.errors import ExportError, LoadError
from tests.crdt.strategies import notebooks

NOTEBOOK = KINDS[("json", "notebook")]
TEXT = KINDS[("text", "file")]


def _live(data: bytes) -> Any:
    doc: Doc[Any] = Doc()
    doc.apply_update(NOTEBOOK.load(data))
    return NOTEBOOK.bind(doc)


@settings(max_examples=60, deadline=None)
@given(notebooks())
def test_export_is_byte_identical_to_nbformat_writes(nb: dict[str, Any]) -> None:
    view = _live(json.dumps(nb).encode())
    exported = NOTEBOOK.export(view)
    reference = nbformat.writes(nbformat.from_dict(view.get())) + "\n"
    assert exported == reference.encode()


@settings(max_examples=60, deadline=None)
@given(notebooks())
def test_load_is_deterministic_at_the_item_level(nb: dict[str, Any]) -> None:
    data = json.dumps(nb).encode()
    a, b = Doc(), Doc()
    a.apply_update(NOTEBOOK.load(data))
    b.apply_update(NOTEBOOK.load(data))
    # same items: each side has nothing the other lacks, merging them duplicates nothing
    assert a.get_state() == b.get_state()
    a.apply_update(b.get_update())
    assert len(NOTEBOOK.bind(a).get()["cells"]) == len(NOTEBOOK.bind(b).get()["cells"])


def test_old_notebooks_get_deterministic_ids_and_keep_no_ids_on_export() -> None:
    nb = {"cells": [{"cell_type": "code", "source": "1", "metadata": {}, "outputs": [],
                     "execution_count": None}],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 4}  # fmt: skip
    assert (
        parse_notebook(json.dumps(nb).encode())["cells"][0]["id"]
        == parse_notebook(json.dumps(nb).encode())["cells"][0]["id"]
    )
    exported = json.loads(NOTEBOOK.export(_live(json.dumps(nb).encode())))
    assert "id" not in exported["cells"][0]


def test_duplicated_ids_are_repaired_on_export() -> None:
    cell = {"cell_type": "markdown", "source": "a", "metadata": {}, "id": "same"}
    nb = {"cells": [cell, {**cell, "source": "b"}], "metadata": {}, "nbformat": 4,
          "nbformat_minor": 5}  # fmt: skip
    out = serialize_notebook(nb)
    ids = [c["id"] for c in json.loads(out)["cells"]]
    assert len(set(ids)) == 2 and ids[0] == "same"


@pytest.mark.parametrize("data", [b"{not json", b"[]", b'{"nbformat": 4}', b'{"cells": 3}'])
def test_bad_notebooks_fail_to_load(data: bytes) -> None:
    with pytest.raises(LoadError):
        NOTEBOOK.load(data)


def test_invalid_live_notebook_fails_to_export() -> None:
    with pytest.raises(ExportError):
        serialize_notebook({"cells": [{"cell_type": "nonsense"}], "metadata": {},
                            "nbformat": 4, "nbformat_minor": 5})  # fmt: skip


def test_text_round_trip_and_utf8() -> None:
    doc: Doc[Any] = Doc()
    doc.apply_update(TEXT.load("héllo\n".encode()))
    assert TEXT.export(TEXT.bind(doc)) == "héllo\n".encode()
    with pytest.raises(LoadError):
        TEXT.load(b"\xff\xfe\x00")
