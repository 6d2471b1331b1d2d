from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hubproc import HubProcess


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[HubProcess]:
    """A real hub (uvicorn subprocess) serving ``tmp_path/root``."""
    root = tmp_path / "root"
    root.mkdir()
    proc = HubProcess(root=root, data_dir=tmp_path / "data").start()
    try:
        yield proc
    finally:
        proc.stop()
