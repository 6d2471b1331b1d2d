from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devkit.hubproc import HubProcess

pytest_plugins = ["tests.revad.fixture", "tests.revad.sharing"]


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


@pytest.fixture
def hubs() -> Iterator[Callable[..., HubProcess]]:
    """Start hubs with custom settings; every one is stopped at teardown, even on failure."""
    started: list[HubProcess] = []

    def start(**kwargs: Any) -> HubProcess:
        proc = HubProcess(**kwargs)
        started.append(proc)
        return proc.start()

    yield start
    for proc in started:
        proc.stop()
