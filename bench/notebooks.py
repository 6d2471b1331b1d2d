"""Synthetic notebooks of a given size, with code, markdown and outputs (for benchmarks)."""

from __future__ import annotations

import base64
import json
import random
from typing import Any


def make_notebook(target_bytes: int, seed: int = 1) -> dict[str, Any]:
    """A realistic-looking notebook whose .ipynb is about ``target_bytes`` long."""
    rng = random.Random(seed)
    cells: list[dict[str, Any]] = []
    size = 0
    i = 0
    while size < target_bytes:
        kind = i % 4
        if kind == 0:
            cell = {
                "cell_type": "markdown",
                "id": f"md-{i}",
                "metadata": {},
                "source": f"## Section {i}\n\nSome explanation of step {i}.\n",
            }
        else:
            lines = [f"x{j} = compute({i}, {j})\n" for j in range(rng.randint(3, 15))]
            outputs: list[dict[str, Any]] = [
                {
                    "name": "stdout",
                    "output_type": "stream",
                    "text": "".join(f"value {i}.{k} = {rng.random():.6f}\n" for k in range(20)),
                }
            ]
            if kind == 3:  # a plot: base64 PNG-like payload, the bulk of real notebooks
                blob = base64.b64encode(rng.randbytes(12_000)).decode()
                outputs.append(
                    {
                        "data": {"image/png": blob, "text/plain": "<Figure>"},
                        "metadata": {},
                        "output_type": "display_data",
                    }
                )
            cell = {
                "cell_type": "code",
                "execution_count": i,
                "id": f"code-{i}",
                "metadata": {},
                "outputs": outputs,
                "source": "".join(lines),
            }
        cells.append(cell)
        size += len(json.dumps(cell))
        i += 1
    return {
        "cells": cells,
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
