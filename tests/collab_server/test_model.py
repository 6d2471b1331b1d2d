"""The randomized model test of the hub's promises (tests/model.py): 200 seeded scenarios here;
``CS3COLLAB_MODEL_SCENARIOS=10000`` for the long run. A failure names its seed and steps."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.model import run_scenario

SCENARIOS = int(os.environ.get("CS3COLLAB_MODEL_SCENARIOS", "200"))
FIRST_SEED = int(os.environ.get("CS3COLLAB_MODEL_FIRST_SEED", "0"))


@pytest.mark.timeout(1200)  # 200 scenarios take 2-3 min on 2 busy cores
async def test_model_scenarios(tmp_path: Path) -> None:
    failures = []
    for seed in range(FIRST_SEED, FIRST_SEED + SCENARIOS):
        try:
            await run_scenario(seed, tmp_path)
        except AssertionError as exc:
            failures.append(f"seed {seed}: {exc}")
            if len(failures) >= 5:
                break
    assert not failures, "\n".join(failures)
