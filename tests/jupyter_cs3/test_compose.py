"""docker-compose.yml, checked the way ``docker compose config`` would plus cross-references (no
Docker engine runs on our machines): services, build contexts and stages, files the images copy,
ports, volumes, and that the services point at each other with matching ports. The revad image's
entrypoint is also run natively against the real revad binary to prove its configs work."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from devkit.ports import free_ports
from devkit.revad.launcher import USERS, RevadHandle, wait_ready
from tests.jupyter_cs3.devstack import DevStack

pytest_plugins = ["tests.revad.fixture"]

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
JUPYTER_USERS = {"jupyter-einstein": "einstein", "jupyter-marie": "marie"}
HUBS = ("hub-a", "hub-b")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def _interpolate(value: str) -> str:
    """Compose's ${VAR:-default} with the defaults (nothing is set in the test's env)."""
    return re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", value)


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: _interpolate(str(v)) for k, v in env.items()}


def _dockerfile(service: dict[str, Any]) -> tuple[Path, Path, str]:
    build = service["build"]
    context = (REPO / build.get("context", ".")).resolve()
    dockerfile = context / build.get("dockerfile", "Dockerfile")
    return context, dockerfile, build.get("target", "")


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _stage_env(dockerfile: Path, target: str) -> dict[str, str]:
    """ENV of the target stage (FROM ... AS target up to the next FROM)."""
    env: dict[str, str] = {}
    in_stage = False
    for word, rest in _instructions(dockerfile):
        if word == "FROM":
            in_stage = rest.lower().endswith(f" as {target}".lower())
        elif word == "ENV" and in_stage:
            for item in shlex.split(rest):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def _ports(service: dict[str, Any]) -> list[tuple[int, int]]:
    out = []
    for spec in service.get("ports", []):
        host, _, container = str(spec).rpartition(":")
        out.append((int(host), int(container)))
    return out


def test_services_and_topology(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"revad", "redis", *HUBS, *JUPYTER_USERS}
    for name, service in services.items():
        for dep in service.get("depends_on", []):
            assert dep in services, f"{name} depends on unknown {dep}"
    # every host port is used once
    host_ports = [h for s in services.values() for h, _ in _ports(s)]
    assert len(host_ports) == len(set(host_ports))
    # named volumes are declared, bind mounts exist
    declared = set(compose.get("volumes", {}))
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            if source.startswith((".", "/")):
                assert (REPO / source).exists(), f"{name}: bind mount {source} missing"
            else:
                assert source in declared, f"{name}: volume {source} not declared"
    # the header documents every published port
    header = COMPOSE.read_text().split("services:")[0]
    for port in host_ports:
        assert re.search(rf"^#\s+{port}\s", header, re.M), f"port {port} not documented"


def test_builds_reference_existing_files(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        if "build" not in service:
            assert "image" in service, name
            continue
        context, dockerfile, target = _dockerfile(service)
        assert context.is_dir() and dockerfile.is_file(), f"{name}: {dockerfile}"
        steps = _instructions(dockerfile)
        stages = [
            rest.split()[-1] for word, rest in steps if word == "FROM" and " AS " in rest.upper()
        ]
        assert target in stages, f"{name}: no stage {target!r} in {dockerfile.name}"
        for word, rest in steps:
            if word == "COPY" and "--from=" not in rest:
                *sources, _dest = shlex.split(rest)
                for source in sources:
                    assert (context / source).exists(), f"{name}: COPY {source} missing"
            if word == "ENTRYPOINT" and name == "revad":
                assert json.loads(rest) == ["revad-entrypoint"]
    assert os.access(REPO / "docker/revad/entrypoint.sh", os.X_OK)


def test_services_point_at_each_other(compose: dict[str, Any]) -> None:
    services = compose["services"]
    _, revad_file, revad_target = _dockerfile(services["revad"])
    revad_env = {**_stage_env(revad_file, revad_target), **_env(services["revad"])}
    gateway = f"revad:{revad_env['GATEWAY_GRPC']}"
    # revad publishes its gateway and data server on the ports its configs use
    published = {c for _, c in _ports(services["revad"])}
    assert {int(revad_env["GATEWAY_GRPC"]), int(revad_env["STORAGE_USERS_HTTP"])} <= published
    assert revad_env["REVAD_PUBLIC_HOST"] == "revad"
    # every ${VAR} of the revad config templates is set in the image or by compose
    for template in (REPO / "devkit/revad").glob("*.toml"):
        for var in set(re.findall(r"\$\{([A-Z0-9_]+)\}", template.read_text())):
            assert var in revad_env, f"{template.name}: ${{{var}}} not set for the revad service"

    hub_urls = {}
    names = set()
    for name in HUBS:
        hub = services[name]
        args = hub["command"]
        assert args[args.index("--storage") + 1] == "cs3"
        assert args[args.index("--gateway") + 1] == gateway
        # replicas share rooms over the compose file's redis, each under its own name
        assert args[args.index("--fanout") + 1] == "redis"
        assert args[args.index("--redis-url") + 1].startswith("redis://redis:")
        names.add(args[args.index("--instance-name") + 1])
        assert "redis" in hub["depends_on"]
        hub_port = int(args[args.index("--port") + 1])
        assert (hub_port, hub_port) in _ports(hub)
        hub_urls[f"http://{name}:{hub_port}"] = name
    assert len(names) == len(HUBS)
    used_hubs = set()

    seen_users = set()
    for name, user in JUPYTER_USERS.items():
        service = services[name]
        env = _env(service)
        assert env["JUPYTER_CS3_GATEWAY"] == gateway
        hub_name = hub_urls[env["JUPYTER_CS3_HUB_URL"]]
        used_hubs.add(hub_name)
        assert env["JUPYTER_CS3_USERNAME"] == user
        assert env["JUPYTER_CS3_PASSWORD"] == USERS[user][0]
        assert env["JUPYTER_TOKEN"]
        seen_users.add(env["JUPYTER_CS3_USERNAME"])
        port = next(a for a in service["command"] if a.startswith("--port="))
        assert int(port.split("=")[1]) in {c for _, c in _ports(service)}
        assert {"revad", hub_name} <= set(service["depends_on"])
    assert len(seen_users) == len(JUPYTER_USERS)  # two different CS3 users
    assert used_hubs == set(HUBS)  # einstein and marie on different instances


def test_jupyter_env_names_are_the_extensions() -> None:
    from jupyter_cs3.config import ENV

    compose_vars = {
        k for s in yaml.safe_load(COMPOSE.read_text())["services"].values()
        for k in _env(s) if k.startswith("JUPYTER_CS3_")
    }  # fmt: skip
    assert compose_vars <= set(ENV.values())


def test_native_topology_matches(compose: dict[str, Any]) -> None:
    """scripts/dev-stack starts the same kinds of processes (revad, hub, one Jupyter per user)."""
    assert os.access(REPO / "scripts/dev-stack", os.X_OK)
    fields = set(DevStack.__dataclass_fields__)
    assert {"revad", "hub", "hubs", "redis", "servers"} <= fields
    text = (REPO / "scripts/dev-stack").read_text()
    assert "tests.jupyter_cs3.devstack" in text


@pytest.mark.revad
def test_revad_entrypoint_renders_working_configs(
    revad: RevadHandle, tmp_path: Path, compose: dict[str, Any]
) -> None:
    """Run docker/revad/entrypoint.sh natively (free ports, host 127.0.0.1) with the real revad
    binary: the image's config rendering yields a revad that serves logins and its home."""
    if shutil.which("envsubst") is None:
        pytest.skip("envsubst (gettext-base) is not installed")
    service = compose["services"]["revad"]
    _, dockerfile, target = _dockerfile(service)
    env = {**_stage_env(dockerfile, target), **_env(service)}
    names = ["GATEWAY_GRPC", "GATEWAY_HTTP", "USERS_GRPC", "STORAGE_USERS_GRPC",
             "STORAGE_USERS_HTTP", "PERMISSIONS_GRPC", "SHARES_GRPC", "STORAGE_SHARES_GRPC",
             "STORAGE_SYSTEM_GRPC", "STORAGE_SYSTEM_HTTP"]  # fmt: skip
    ports = dict(zip(names, map(str, free_ports(len(names))), strict=True))
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "revad").symlink_to(revad.binary)
    env.update(ports)
    env.update(
        DATA_DIR=str(tmp_path / "data"),
        CONFIG_DIR=str(tmp_path / "etc"),
        REVAD_TEMPLATES=str(REPO / "devkit/revad"),
        REVAD_PUBLIC_HOST="127.0.0.1",
        PATH=f"{bindir}:{os.environ['PATH']}",
    )
    log = (tmp_path / "revad.log").open("wb")
    proc = subprocess.Popen(
        [str(REPO / "docker/revad/entrypoint.sh")],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    handle = RevadHandle(
        gateway=f"127.0.0.1:{ports['GATEWAY_GRPC']}",
        data_http=f"http://127.0.0.1:{ports['STORAGE_USERS_HTTP']}",
        workdir=tmp_path,
        log_path=tmp_path / "revad.log",
        ports={k: int(v) for k, v in ports.items()},
        binary=revad.binary,
        process=proc,  # type: ignore[arg-type]
    )
    try:
        wait_ready(handle, timeout=60)
        rendered = (tmp_path / "etc/storage-users.toml").read_text()
        assert f'address = "0.0.0.0:{ports["STORAGE_USERS_GRPC"]}"' in rendered
        assert "${" not in rendered
    finally:
        handle.stop()
