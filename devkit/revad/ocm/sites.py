"""Two real Reva sites (reva v2.27.7) on loopback that federate through OCM, for tests.

Each site is ONE revad process (``-dev-dir``) running the one-site configs of ``devkit/revad/``
(gateway, users, storage, shares, ...) plus the OCM files beside this module:

    ocm-services.toml  invite manager, OCM share provider, OCM core, provider authorizer (gRPC)
                       + the ocmd endpoints the other site calls (HTTP, /ocm/...)
    ocm-auth.toml      "ocmshares" auth provider (share id + secret -> share-scoped token)
    machine-auth.toml  "machine" auth provider (the public storage provider acts as the owner)
    ocm-webdav.toml    ocdav (/dav/ocm/<share id>) for the other sites (the shares are served
                       by the one-site public storage provider at /public/<share id>)
    ocm-storage.toml   "ocmreceived" storage provider: received shares at /ocm/<share id>

The gateway config of ``devkit/revad/`` is reused and patched here (OCM service addresses, two auth
rules, the /ocm mount) so it stays one file for one-site and two-site tests. Both sites read
the same ``ocm-providers.json`` (the mesh: both domains and their ocmd URLs), so the ports of both
sites are picked before either is rendered.

Site A (domain ``cs3collab-a.test``) has the one-site users (einstein, marie, richard); site B
(``cs3collab-b.test``) has lise, niels and ida (``users-b.demo.json``). The two sites have
different JWT secrets: a token of one site is worthless at the other.

CLI: ``python -m devkit.revad.ocm.sites [--workdir DIR]`` starts both, prints their addresses as
JSON and runs until interrupted (``scripts/dev-stack --sites 2`` starts them, with a hub and
JupyterLab per site, through tests/revad/ocm/devstack.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from cs3.gateway.v1beta1 import gateway_api_pb2 as gw_pb
from cs3.gateway.v1beta1 import gateway_api_pb2_grpc as gw_grpc
from cs3.ocm.provider.v1beta1 import provider_api_pb2 as ocmprov_pb
from cs3.rpc.v1beta1 import code_pb2
from cs3.storage.provider.v1beta1 import provider_api_pb2 as sp_pb
from cs3.storage.provider.v1beta1 import resources_pb2 as sp_res

from devkit.ports import free_ports
from devkit.revad import launcher

HERE = Path(__file__).resolve().parent
OCM_CONFIGS = (
    "ocm-services.toml",
    "ocm-auth.toml",
    "machine-auth.toml",
    "ocm-webdav.toml",
    "ocm-storage.toml",
)
OCM_PORT_NAMES = (
    "OCM_GRPC",
    "OCM_HTTP",
    "OCM_AUTH_GRPC",
    "MACHINE_AUTH_GRPC",
    "OCM_WEBDAV_HTTP",
    "OCM_STORAGE_GRPC",
    "OCM_STORAGE_HTTP",
)
OCM_STORAGE_ID = "89f37a33-858b-45fa-8890-a1f2b27d90e1"  # = reva's utils.OCMStorageProviderID

SITE_B_USERS: dict[str, tuple[str, str]] = {  # username -> (password, opaque id)
    "lise": ("fission", "b7c1e3a2-5d4f-4e8a-9c21-3f6a8d0e1b42"),
    "niels": ("complementarity", "e2a9d4c6-1b3f-4c7e-8d5a-6f0b2c9e4a17"),
    "ida": ("rhenium", "0f3b8e21-7c4d-4a9e-b5f6-2d1c8a7e9b30"),  # for the invite flow tests only
}
SITES = {  # name -> (OCM domain, users, the user whose login tells the site is up)
    "a": ("cs3collab-a.test", launcher.USERS, "einstein"),
    "b": ("cs3collab-b.test", SITE_B_USERS, "lise"),
}

# Lines the one-site gateway gets for OCM (inserted right under these table headers).
_GATEWAY_KEYS = """\
ocminvitemanagersvc = "127.0.0.1:${OCM_GRPC}"
ocmshareprovidersvc = "127.0.0.1:${OCM_GRPC}"
ocmcoresvc = "127.0.0.1:${OCM_GRPC}"
ocmproviderauthorizersvc = "127.0.0.1:${OCM_GRPC}"
"""
_AUTH_RULES = """\
ocmshares = "127.0.0.1:${OCM_AUTH_GRPC}"
machine = "127.0.0.1:${MACHINE_AUTH_GRPC}"
"""
_MOUNTS = """
# OCM (devkit/revad/ocm/sites.py): what we share is served to other sites by the public storage
# provider the one-site configs mount at /public (shares.toml; it resolves OCM share scopes as
# well as public links) ... and what we received from other sites is here:
[grpc.services.storageregistry.drivers.spaces.providers."127.0.0.1:${OCM_STORAGE_GRPC}"]
providerid = "${OCM_STORAGE_ID}"
[grpc.services.storageregistry.drivers.spaces.providers."127.0.0.1:${OCM_STORAGE_GRPC}".spaces]
"mountpoint" = { "mount_point" = "/ocm", "path_template" = "/ocm/{{.Space.Root.OpaqueId}}" }
"grant" = { "mount_point" = "." }
"""


def _insert_after(text: str, header: str, lines: str) -> str:
    marker = header + "\n"
    if text.count(marker) != 1:
        raise launcher.RevadError(f"gateway.toml: expected one {header!r} table to patch")
    return text.replace(marker, marker + lines)


def patch_gateway(text: str, values: dict[str, str]) -> str:
    """The rendered one-site gateway.toml with the OCM services, auth rules and mounts added."""
    fill = string.Template
    text = _insert_after(text, "[grpc.services.gateway]", fill(_GATEWAY_KEYS).substitute(values))
    text = _insert_after(
        text,
        "[grpc.services.authregistry.drivers.static.rules]",
        fill(_AUTH_RULES).substitute(values),
    )
    return text + fill(_MOUNTS).safe_substitute(values)  # safe: {{.Space...}} are reva templates


def providers_json(sites: list[Site]) -> str:
    """The mesh both provider authorizers read: every site's domain and ocmd endpoint."""
    return json.dumps(
        [
            {
                "name": f"cs3collab-{s.name}",
                "full_name": f"cs3collab test site {s.name.upper()}",
                "organization": "cs3collab",
                "domain": s.domain,
                "homepage": f"http://127.0.0.1:{s.ports['OCM_HTTP']}",
                "services": [
                    {
                        "endpoint": {
                            "type": {"name": "OCM", "description": "Open Cloud Mesh API"},
                            "name": f"site {s.name.upper()} - OCM API",
                            "path": f"http://127.0.0.1:{s.ports['OCM_HTTP']}/ocm/",
                            "is_monitored": True,
                        },
                        "api_version": "0.0.1",
                        "host": f"127.0.0.1:{s.ports['OCM_HTTP']}",
                    }
                ],
            }
            for s in sites
        ],
        indent=2,
    )


@dataclass
class Site(launcher.RevadHandle):
    """One revad of the mesh. ``users``: username -> (password, opaque id) of this site."""

    name: str = "a"
    domain: str = ""
    users: dict[str, tuple[str, str]] = field(default_factory=dict)
    probe_user: str = ""

    @property
    def ocm_http(self) -> str:
        return f"http://127.0.0.1:{self.ports['OCM_HTTP']}"

    def home(self, username: str) -> str:
        return f"/users/{self.users[username][1]}"

    def start(self, timeout: float = 60) -> None:
        """Launch revad (if not running) and wait until its users and its OCM services answer."""
        if self.alive():
            return
        # MICRO_LOG_LEVEL: see launcher.RevadHandle.start.
        env = dict(os.environ, TMPDIR=str(self.workdir / "tmp"), MICRO_LOG_LEVEL="trace")
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(self.binary), "-dev-dir", str(self.workdir / "etc")],
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def _why_not_ready(self, stub: gw_grpc.GatewayAPIStub) -> str | None:
        password, _ = self.users[self.probe_user]
        try:
            auth = stub.Authenticate(
                gw_pb.AuthenticateRequest(
                    type="basic", client_id=self.probe_user, client_secret=password
                ),
                timeout=5,
            )
            if auth.status.code != code_pb2.CODE_OK:
                return f"Authenticate: {auth.status.code} {auth.status.message}"
            md = (("x-access-token", auth.token),)
            ref = sp_res.Reference(path=self.home(self.probe_user))
            st = stub.Stat(sp_pb.StatRequest(ref=ref), metadata=md, timeout=5)
            if st.status.code != code_pb2.CODE_OK:
                return f"Stat home: {st.status.code} {st.status.message}"
            info = stub.GetInfoByDomain(
                ocmprov_pb.GetInfoByDomainRequest(domain=self.domain), metadata=md, timeout=5
            )
            if info.status.code != code_pb2.CODE_OK:
                return f"GetInfoByDomain: {info.status.code} {info.status.message}"
        except grpc.RpcError as exc:
            return f"gRPC {exc.code()}: {exc.details()}"
        return None

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        why: str | None = "not tried"
        with grpc.insecure_channel(self.gateway) as channel:
            stub = gw_grpc.GatewayAPIStub(channel)
            while time.monotonic() < deadline:
                if not self.alive():
                    code = self.process.returncode if self.process else None
                    raise launcher.RevadError(
                        f"site {self.name} revad exited with {code}:\n{self.log_tail()}"
                    )
                why = self._why_not_ready(stub)
                if why is None:
                    return
                time.sleep(0.2)
        raise launcher.RevadError(
            f"site {self.name} not ready after {timeout}s ({why}):\n{self.log_tail()}"
        )


def _values(site: Site, log_level: str) -> dict[str, str]:
    data, etc = site.workdir / "data", site.workdir / "etc"
    values = {name: str(port) for name, port in site.ports.items()}
    values.update(
        DATA_DIR=str(data),
        CONFIG_DIR=str(etc),
        JWT_SECRET=f"cs3collab-test-jwt-secret-{site.name}",
        TRANSFER_SECRET=f"cs3collab-test-transfer-secret-{site.name}",
        STORAGE_USERS_ID=launcher.STORAGE_USERS_ID,
        STORAGE_SHARES_ID=launcher.STORAGE_SHARES_ID,
        LOG_LEVEL=log_level,
        SERVICE_USER_ID=launcher.SERVICE_USER_ID,
        MACHINE_AUTH_API_KEY=f"cs3collab-test-machine-auth-api-key-{site.name}",
        OCM_DOMAIN=site.domain,
        OCM_STORAGE_ID=OCM_STORAGE_ID,
    )
    return values


def _render(site: Site, mesh: str, log_level: str) -> None:
    etc = site.workdir / "etc"
    for d in (site.workdir / "data", site.workdir / "tmp"):
        d.mkdir(parents=True, exist_ok=True)
    values = _values(site, log_level)
    launcher.render_configs(etc, values)
    gateway = etc / "gateway.toml"
    gateway.write_text(patch_gateway(gateway.read_text(), values))
    for name in OCM_CONFIGS:
        (etc / name).write_text(string.Template((HERE / name).read_text()).substitute(values))
    (etc / "ocm-providers.json").write_text(mesh)
    if site.name == "b":
        shutil.copy(HERE / "users-b.demo.json", etc / "users.demo.json")


def _prepare(binary: Path, workdir: Path, log_level: str) -> list[Site]:
    names = launcher.PORT_NAMES + OCM_PORT_NAMES
    ports = free_ports(len(names) * len(SITES))
    sites = []
    for i, (name, (domain, users, probe)) in enumerate(SITES.items()):
        own = ports[i * len(names) : (i + 1) * len(names)]
        site_dir = workdir / f"site-{name}"
        site_ports = dict(zip(names, own, strict=True))
        sites.append(
            Site(
                gateway=f"127.0.0.1:{site_ports['GATEWAY_GRPC']}",
                data_http=f"http://127.0.0.1:{site_ports['STORAGE_USERS_HTTP']}",
                workdir=site_dir,
                log_path=site_dir / "revad.log",
                ports=site_ports,
                binary=binary,
                name=name,
                domain=domain,
                users=users,
                probe_user=probe,
            )
        )
    mesh = providers_json(sites)
    for site in sites:
        _render(site, mesh, log_level)
    return sites


def start_sites(
    workdir: Path,
    *,
    binary: Path | None = None,
    timeout: float = 90,
    log_level: str = "info",
    attempts: int = 3,
) -> tuple[Site, Site]:
    """Start site A and site B (fresh ports per attempt, as launcher.start_revad)."""
    binary = binary or launcher.build_revad()
    last: launcher.RevadError | None = None
    for attempt in range(attempts):
        sites = _prepare(binary, workdir / f"try-{attempt}", log_level)
        try:
            for site in sites:
                site.start(timeout)
        except launcher.RevadError as exc:
            for site in sites:
                site.stop()
            last = exc
            continue
        return sites[0], sites[1]
    assert last is not None
    raise last


@contextlib.contextmanager
def running_sites(workdir: Path | None = None, **kwargs: object) -> Iterator[tuple[Site, Site]]:
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="revad-ocm-")))
        a, b = start_sites(workdir, **kwargs)  # type: ignore[arg-type]
        stack.callback(a.stop)
        stack.callback(b.stop)
        yield a, b


def describe(site: Site) -> dict[str, object]:
    return {
        "domain": site.domain,
        "gateway": site.gateway,
        "ocm_http": site.ocm_http,
        "users": {u: p for u, (p, _) in site.users.items()},
        "workdir": str(site.workdir),
        "log": str(site.log_path),
        "pid": site.process.pid if site.process else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, help="keep configs/data/logs here (default: temp)")
    parser.add_argument("--binary", type=Path, help="revad binary (default: scripts/revad-build)")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    stop = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with running_sites(args.workdir, binary=args.binary, log_level=args.log_level) as (a, b):
        print(json.dumps({"a": describe(a), "b": describe(b)}, indent=2), flush=True)
        while not stop and a.alive() and b.alive():
            time.sleep(0.5)
        for site in (a, b):
            if not site.alive():
                print(f"site {site.name} revad exited:\n{site.log_tail()}", file=sys.stderr)
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
