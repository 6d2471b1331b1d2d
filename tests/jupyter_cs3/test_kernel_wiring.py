"""``jupyter_cs3.kernels`` on its own against the real revad: what a kernel's environment holds,
and the token file (mode, atomic replacement on every login, removal)."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest

from devkit.revad.launcher import USERS, RevadHandle, home_path
from jupyter_cs3.backend import Backend
from jupyter_cs3.config import CS3Config
from jupyter_cs3.kernels import KernelWiring
from storage_bridge.cs3fs import CS3FileSystem

pytest_plugins = ["tests.revad.fixture"]
pytestmark = pytest.mark.revad


async def test_environment_and_token_file(revad: RevadHandle) -> None:
    config = CS3Config(
        gateway=revad.gateway, username="marie", password=USERS["marie"][0],
        hub_url="http://hub:8900",
    )  # fmt: skip
    backend = Backend(config)
    wiring = KernelWiring(backend)
    try:
        base = {
            "PATH": "/usr/bin",
            "JUPYTER_CS3_PASSWORD": "secret",
            "JUPYTER_CS3_TOKEN": "t",
            "JUPYTER_CS3_HUB_TOKEN": "h",
            "CS3_TOKEN": "stale",
        }
        env = await wiring.environment(base, "Shares/proj")
        assert env["PATH"] == "/usr/bin"
        assert not {k for k in env if k.startswith("JUPYTER_CS3_")} and "CS3_TOKEN" not in env
        assert env["CS3_GATEWAY"] == revad.gateway and env["CS3_HUB_URL"] == "http://hub:8900"
        assert env["CS3_HOME"] == home_path("marie")
        assert env["CS3_CWD"] == f"{home_path('marie')}/Shares/proj"
        token_file = env["CS3_TOKEN_FILE"]
        assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(os.path.dirname(token_file)).st_mode) == 0o700
        first = Path(token_file).read_text().strip()
        assert first == backend.current_token and first not in env.values()

        # every new login of the server replaces the file; readers pick it up
        fs = CS3FileSystem(revad.gateway, token_file=token_file, skip_instance_cache=True)
        assert fs.tokens.get() == first
        # (a login within the same second as the last one may mint the same JWT: log in until
        # the token differs)
        deadline = asyncio.get_running_loop().time() + 10
        renewed = await backend.renew(first)
        while renewed == first:
            assert asyncio.get_running_loop().time() < deadline, "reva minted no new token"
            renewed = await backend.renew(renewed)
        assert Path(token_file).read_text().strip() == renewed == fs.tokens.get()
        assert wiring.token_file.writes >= 2
        # a refresher runs because there is a password: half the token's life, at most 600 s
        assert wiring.token_file.next_delay(renewed, 600.0) == 600.0
        assert wiring.token_file.next_delay(renewed, 10.0) == 10.0
    finally:
        await wiring.aclose()
        await backend.aclose()
    assert not os.path.exists(token_file)
