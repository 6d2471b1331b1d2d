"""Fixtures for jupyter_cs3 tests: the dev-stack topology (hub on CS3 + one real Jupyter server
per CS3 user) on the session's revad."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from devkit.revad.launcher import RevadHandle
from tests.jupyter_cs3.devstack import DevStack, running_stack

try:
    import jupyter_server  # noqa: F401
except ImportError:  # the 'jupyter' extra is not installed: nothing here can run
    if os.environ.get("CI", "").lower() not in ("1", "true", "yes"):
        collect_ignore_glob = ["test_*.py"]


@pytest.fixture(scope="module")
def stack(revad: RevadHandle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    users = ("einstein", "marie", "richard")
    tokens = {u: f"tok-{u}" for u in users}
    with running_stack(
        tmp_path_factory.mktemp("stack"), revad=revad, users=users, tokens=tokens
    ) as stack:
        yield stack
