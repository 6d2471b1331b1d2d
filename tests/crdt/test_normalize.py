"""Normalisation: joined multi-line strings, shared nested values, structure errors."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from crdt.normalize import InvalidNotebook, normalized

JSONDict = dict[str, Any]


def notebook(*cells: JSONDict) -> JSONDict:
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": list(cells)}


def test_normalized_joins_without_touching_the_input_and_shares_the_rest() -> None:
    output = {"output_type": "execute_result", "data": {"text/plain": "1"}, "metadata": {}}
    cell = {
        "cell_type": "code",
        "source": ["a\n", "b"],
        "metadata": {"tags": ["x"]},
        "outputs": [output],
        "execution_count": 1,
    }
    nb = notebook(cell)
    before = copy.deepcopy(nb)
    out = normalized(nb)
    assert nb == before
    assert out["cells"][0]["source"] == "a\nb"
    assert out["cells"][0]["metadata"] is cell["metadata"]
    assert out["cells"][0]["outputs"][0] is output  # nothing to join: the same object


@pytest.mark.parametrize(
    "bad",
    [
        [],
        {"nbformat": 3, "cells": []},
        {"nbformat": 4, "nbformat_minor": 1.5, "cells": []},
        {"nbformat": 4, "metadata": [], "cells": []},
        {"nbformat": 4},
        notebook({"cell_type": "heading", "source": ""}),
        notebook({"cell_type": "code", "source": 1}),
        notebook({"cell_type": "code", "source": "", "outputs": [1]}),
    ],
)
def test_not_nbformat_4_is_invalid(bad: Any) -> None:
    with pytest.raises(InvalidNotebook):
        normalized(bad)
