"""The docker-compose topology as local processes on loopback (``scripts/dev-stack``).

revad (reva v2.27.7, built from its Go module) + the cs3collab hub on CS3 + one JupyterLab
server per CS3 user (default einstein and marie), each logged in as its user with the
jupyter_cs3 extension. The tests use the same launcher.

CLI: ``python -m tests.jupyter_cs3.devstack [--users einstein,marie] [--replicas 2] [--demo]
[--workdir DIR]`` prints the URLs (with each user's Jupyter token) as JSON and runs until
Ctrl-C / SIGTERM.
``--replicas N`` (default 2, as docker-compose.yml) runs N hub instances sharing rooms over a
redis-server (``--fanout redis``); the Jupyter servers are spread over them (einstein on the
first, marie on the second). ``--demo`` puts ``welcome.ipynb`` in einstein's home, shared
with marie as editor.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import secrets
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devkit.hubproc import HubProcess
from devkit.redisproc import RedisProcess
from devkit.revad.launcher import USERS, RevadHandle, home_path, start_revad
from devkit.signals import StopRequest
from tests.jupyter_cs3.jupyterproc import JupyterProcess, start_all

DEMO_NB = {
    "cells": [
        {
            "cell_type": "markdown",
            "id": "intro",
            "metadata": {},
            "source": "# Co-editing on CS3\nOpen this notebook as einstein and as marie.",
        },
        {
            "cell_type": "code",
            "execution_count": None,
            "id": "code",
            "metadata": {},
            "outputs": [],
            "source": "",
        },
    ],
    "metadata": {},
    "nbformat": 4,
    "nbformat_minor": 5,
}


def cs3_config(gateway: str, hub_url: str, user: str) -> dict[str, Any]:
    return {
        "storage": "cs3",
        "gateway": gateway,
        "username": user,
        "password": USERS[user][0],
        "hub_url": hub_url,
    }


def public_files_url(revad: RevadHandle) -> str:
    """``CS3Config.public_link_url`` for the test revad: ocdav's anonymous download of a link
    (devkit/revad/gateway.toml serves it on the gateway's HTTP port)."""
    port = revad.ports["GATEWAY_HTTP"]
    return f"http://127.0.0.1:{port}/remote.php/dav/public-files/{{token}}/{{name}}"


@dataclass
class DevStack:
    revad: RevadHandle
    hub: HubProcess  # the first hub instance
    servers: dict[str, JupyterProcess] = field(default_factory=dict)
    hubs: list[HubProcess] = field(default_factory=list)  # all instances (replicas > 1: Redis)
    redis: RedisProcess | None = None

    def __getitem__(self, user: str) -> JupyterProcess:
        return self.servers[user]

    def describe(self) -> dict[str, Any]:
        return {
            "revad_gateway": self.revad.gateway,
            "hub": self.hub.http_url,
            "hubs": [h.http_url for h in self.hubs or [self.hub]],
            "redis": None if self.redis is None else self.redis.url,
            "jupyter": {
                user: {"url": f"{s.url}/lab?token={s.token}", "token": s.token}
                for user, s in self.servers.items()
            },
            "users": {user: USERS[user][0] for user in self.servers},
        }


@contextlib.contextmanager
def running_stack(
    workdir: Path,
    *,
    revad: RevadHandle | None = None,
    users: tuple[str, ...] = ("einstein", "marie"),
    hub_env: dict[str, str] | None = None,
    tokens: dict[str, str] | None = None,
    extra_config: dict[str, Any] | None = None,
    replicas: int = 1,
) -> Iterator[DevStack]:
    """Start (revad if not given,) the hub(s) and one Jupyter server per user; stop them all.
    With ``replicas`` > 1 the hubs share rooms over a redis-server of their own."""
    with contextlib.ExitStack() as stack:
        if revad is None:
            revad = start_revad(workdir / "revad")
            stack.callback(revad.stop)
        (workdir / "hubroot").mkdir(parents=True, exist_ok=True)
        redis = None
        fanout: list[str] = []
        if replicas > 1:
            redis = RedisProcess(data_dir=workdir / "redis")
            stack.callback(redis.stop)
            redis.start()
            fanout = ["--fanout", "redis", "--redis-url", redis.url]
        hubs = []
        for n in range(replicas):
            hub = HubProcess(
                root=workdir / "hubroot",
                data_dir=workdir / "hubdata",
                args=["--storage", "cs3", "--gateway", revad.gateway, *fanout,
                      *(["--instance-name", f"hub-{n}"] if fanout else [])],
                env=hub_env or {},
            )  # fmt: skip
            stack.callback(hub.stop)
            hub.start()
            hubs.append(hub)
        servers = {
            user: JupyterProcess(
                workdir / f"jupyter-{user}",
                cs3_config(revad.gateway, hubs[i % len(hubs)].http_url, user)
                | {"public_link_url": public_files_url(revad)},
                token=(tokens or {}).get(user) or secrets.token_urlsafe(16),
                extra_config=extra_config or {},
            )
            for i, user in enumerate(users)
        }
        for server in servers.values():
            stack.callback(server.stop)
        start_all(list(servers.values()))
        yield DevStack(revad, hubs[0], servers, hubs, redis)


async def make_demo(gateway: str) -> str:
    """einstein's welcome.ipynb shared with marie (editor); returns einstein's path."""
    from storage_bridge.cs3 import CS3Storage
    from storage_bridge.cs3.shares import accept_received_share, create_share
    from storage_bridge.errors import AlreadyExists

    storage = CS3Storage(gateway)
    try:
        token = await storage.authenticate("einstein", USERS["einstein"][0])
        path = f"{home_path('einstein')}/welcome.ipynb"
        with contextlib.suppress(AlreadyExists):
            await storage.create(token, path, json.dumps(DEMO_NB, indent=1).encode())
            share = await create_share(storage, token, path, "marie", "editor")
            marie = await storage.authenticate("marie", USERS["marie"][0])
            await accept_received_share(storage, marie, share.id)
        return path
    finally:
        await storage.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", default="einstein,marie", help="comma-separated CS3 users")
    parser.add_argument("--workdir", type=Path, help="keep state and logs here (default: temp)")
    parser.add_argument(
        "--replicas", type=int, default=2, help="hub instances sharing rooms over Redis"
    )
    parser.add_argument("--demo", action="store_true", help="create a notebook shared with marie")
    args = parser.parse_args(argv)
    users = tuple(u for u in args.users.split(",") if u)
    unknown = [u for u in users if u not in USERS]
    if unknown:
        parser.error(f"unknown users {unknown}; known: {sorted(USERS)}")
    stop = StopRequest()
    with contextlib.ExitStack() as keep:
        workdir = args.workdir or Path(keep.enter_context(tempfile.TemporaryDirectory("-dev")))
        workdir.mkdir(parents=True, exist_ok=True)
        with running_stack(workdir, users=users, replicas=max(1, args.replicas)) as stack:
            info = stack.describe()
            if args.demo:
                info["demo"] = asyncio.run(make_demo(stack.revad.gateway))
            print(json.dumps(info, indent=2), flush=True)
            while not stop.requested:
                dead = [u for u, s in stack.servers.items() if s.proc and s.proc.poll() is not None]
                if dead or not stack.revad.alive():
                    print(f"dev-stack: process exited ({dead or 'revad'})", file=sys.stderr)
                    return 1
                time.sleep(0.5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
