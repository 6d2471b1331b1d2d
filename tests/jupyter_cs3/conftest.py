"""Fixtures for jupyter_cs3 tests: the topology (hub on CS3 + one Jupyter server per user)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.hubproc import HubProcess
from tests.jupyter_cs3.jupyterproc import JupyterProcess, start_all
from tests.jupyter_cs3.stack import Stack, cs3_config
from tests.revad.launcher import RevadHandle

try:
    import jupyter_server  # noqa: F401
except ImportError:  # the 'jupyter' extra is not installed: nothing here can run
    if os.environ.get("CI", "").lower() not in ("1", "true", "yes"):
        collect_ignore_glob = ["test_*.py"]


@pytest.fixture(scope="module")
def stack(revad: RevadHandle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("stack")
    (work / "hubroot").mkdir()
    hub = HubProcess(
        root=work / "hubroot",
        data_dir=work / "hubdata",
        args=["--storage", "cs3", "--gateway", revad.gateway],
    ).start()
    users = ("einstein", "marie", "richard")
    servers = {
        u: JupyterProcess(work / u, cs3_config(revad, hub, u), token=f"tok-{u}") for u in users
    }
    try:
        start_all(list(servers.values()))
        yield Stack(revad, hub, servers)
    finally:
        for server in servers.values():
            server.stop()
        hub.stop()
