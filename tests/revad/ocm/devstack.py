"""Two sites as local processes (``scripts/dev-stack --sites 2``): for each site its revad (with
the OCM services, devkit/revad/ocm/sites.py), its own cs3collab hub on that revad, and one
JupyterLab server per chosen user of that site (default einstein at A, lise at B), each with
``CS3Config.ocm_site`` set so the Shares panel can invite and share across sites.

CLI: ``python -m tests.revad.ocm.devstack [--users-a einstein] [--users-b lise] [--workdir DIR]``
prints the URLs as JSON and runs until Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from devkit.hubproc import HubProcess
from devkit.revad.ocm.sites import Site, describe, start_sites
from tests.jupyter_cs3.jupyterproc import JupyterProcess, start_all


def site_servers(
    workdir: Path, site: Site, hubs: dict[str, HubProcess], users: tuple[str, ...]
) -> dict[str, JupyterProcess]:
    """The site's users' Jupyter servers: their own site's hub, and the other site's hub for
    notebooks shared from there (``ocm_hubs``)."""
    hub = hubs[site.domain]
    others = {domain: h.http_url for domain, h in hubs.items() if domain != site.domain}
    return {
        user: JupyterProcess(
            workdir / f"jupyter-{site.name}-{user}",
            {
                "storage": "cs3",
                "gateway": site.gateway,
                "username": user,
                "password": site.users[user][0],
                "hub_url": hub.http_url,
                "ocm_site": site.domain,
                "ocm_hubs": others,
            },
            token=secrets.token_urlsafe(16),
        )
        for user in users
    }


@contextlib.contextmanager
def running_two_sites(
    workdir: Path, users_a: tuple[str, ...], users_b: tuple[str, ...]
) -> Iterator[dict[str, Any]]:
    with contextlib.ExitStack() as stack:
        a, b = start_sites(workdir / "revad")
        stack.callback(a.stop)
        stack.callback(b.stop)
        servers: dict[str, JupyterProcess] = {}
        info: dict[str, Any] = {}
        hubs: dict[str, HubProcess] = {}
        for site in (a, b):
            root = workdir / f"hub-{site.name}"
            (root / "root").mkdir(parents=True, exist_ok=True)
            hub = HubProcess(
                root=root / "root",
                data_dir=root / "data",
                args=["--storage", "cs3", "--gateway", site.gateway],
            )
            stack.callback(hub.stop)
            hub.start()
            hubs[site.domain] = hub
        for site, users in ((a, users_a), (b, users_b)):
            mine = site_servers(workdir, site, hubs, users)
            for server in mine.values():
                stack.callback(server.stop)
            servers.update({f"{site.name}:{u}": s for u, s in mine.items()})
            info[site.name] = {
                **describe(site),
                "hub": hubs[site.domain].http_url,
                "jupyter": {u: f"{s.url}/lab?token={s.token}" for u, s in mine.items()},
            }
        start_all(list(servers.values()))
        info["_processes"] = servers
        yield info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users-a", default="einstein", help="site A users (comma-separated)")
    parser.add_argument("--users-b", default="lise", help="site B users (comma-separated)")
    parser.add_argument("--workdir", type=Path, help="keep state and logs here (default: temp)")
    args = parser.parse_args(argv)
    stop = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    users_a = tuple(u for u in args.users_a.split(",") if u)
    users_b = tuple(u for u in args.users_b.split(",") if u)
    with contextlib.ExitStack() as keep:
        workdir = args.workdir or Path(keep.enter_context(tempfile.TemporaryDirectory("-dev2")))
        workdir.mkdir(parents=True, exist_ok=True)
        with running_two_sites(workdir, users_a, users_b) as info:
            procs: dict[str, JupyterProcess] = info.pop("_processes")
            print(json.dumps(info, indent=2), flush=True)
            while not stop:
                dead = [n for n, s in procs.items() if s.proc and s.proc.poll() is not None]
                if dead:
                    print(f"dev-stack: process exited ({dead})", file=sys.stderr)
                    return 1
                time.sleep(0.5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
