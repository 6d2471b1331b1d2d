"""Start a real revad (reva v2.27.7) on free loopback ports for tests.

``start_revad(workdir)`` renders the ``*.toml`` templates beside this file into ``workdir/etc``
(``${NAME}`` placeholders: ports, the data dir, secrets), starts ONE revad process with
``-dev-dir workdir/etc`` (revad runs every config in that dir, each with its own servers), waits
until einstein can log in through the gateway and stat his home, and returns a handle.

Layout under ``workdir``::

    etc/        rendered configs + users.demo.json
    data/       decomposedfs root (data/data), upload temp dir (data/tmp), link grants
    tmp/        TMPDIR of the revad process (its pid files)
    revad.log   revad's stdout/stderr

CLI: ``python -m devkit.revad.launcher [--workdir DIR] [--binary PATH]`` starts revad, prints the
addresses as JSON and runs until interrupted.
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
from cs3.rpc.v1beta1 import code_pb2
from cs3.storage.provider.v1beta1 import provider_api_pb2 as sp_pb
from cs3.storage.provider.v1beta1 import resources_pb2 as sp_res

from devkit.polling import poll_until
from devkit.ports import free_ports
from devkit.signals import StopRequest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
BUILD_SCRIPT = REPO / "scripts" / "revad-build"

CONFIGS = (
    "gateway.toml",
    "users.toml",
    "storage-users.toml",
    "permissions.toml",
    "shares.toml",
    "storage-shares.toml",
    "storage-system.toml",
)
PORT_NAMES = (
    "GATEWAY_GRPC",
    "GATEWAY_HTTP",
    "USERS_GRPC",
    "STORAGE_USERS_GRPC",
    "STORAGE_USERS_HTTP",
    "PERMISSIONS_GRPC",
    "SHARES_GRPC",
    "STORAGE_SHARES_GRPC",
    "STORAGE_SYSTEM_GRPC",
    "STORAGE_SYSTEM_HTTP",
)

# Demo users (devkit/revad/users.demo.json).
USERS: dict[str, tuple[str, str]] = {  # username -> (password, opaque id)
    "einstein": ("relativity", "4c510ada-c86b-4815-8820-42cdf82c3d51"),
    "marie": ("radioactivity", "f7fbf8c8-139b-4376-b307-cf0a8c2d0d9c"),
    "richard": ("superfluidity", "932b4540-8d16-481e-8ef4-588e4b6b151c"),
    "admin": ("admin", "ddc2004c-0977-11eb-9d3f-a793888cd0f8"),
}
STORAGE_USERS_ID = "1284d238-aa92-42ce-bdc4-0b0000009157"
STORAGE_SHARES_ID = "a0ca6a90-a365-4782-871e-d44447bbc668"  # = reva's utils.ShareStorageProviderID
SERVICE_USER_ID = "5c3c0a5e-63f1-4d6b-9a7e-2a4c6f0c1b11"  # owner of the share manager's metadata


class RevadError(RuntimeError):
    """revad could not be built or did not come up."""


def home_path(username: str) -> str:
    """The path the gateway serves a user's personal space under."""
    return f"/users/{USERS[username][1]}"


def build_revad(*, timeout: float = 3600) -> Path:
    """Run scripts/revad-build (cached) and return the binary's path."""
    proc = subprocess.run(
        [str(BUILD_SCRIPT)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RevadError(
            f"scripts/revad-build failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}"
        )
    lines = proc.stdout.strip().splitlines()
    if not lines:
        raise RevadError("scripts/revad-build printed no binary path")
    binary = Path(lines[-1])
    if not os.access(binary, os.X_OK):
        raise RevadError(f"scripts/revad-build reported {binary}, which is not executable")
    return binary


def render_configs(etc: Path, values: dict[str, str]) -> None:
    etc.mkdir(parents=True, exist_ok=True)
    for name in CONFIGS:
        template = string.Template((HERE / name).read_text())
        (etc / name).write_text(template.substitute(values))
    shutil.copy(HERE / "users.demo.json", etc / "users.demo.json")


@dataclass
class RevadHandle:
    """A revad started by ``start_revad``. ``gateway`` is host:port (gRPC, plaintext).

    ``stop()`` ends it; ``restart()`` (or ``start()`` after ``stop()``) brings it back on the same
    ports with the same data, so clients can reconnect (for "storage went away" tests).
    """

    gateway: str
    data_http: str  # base URL of the storage-users data server (http://127.0.0.1:port)
    workdir: Path
    log_path: Path
    ports: dict[str, int]
    binary: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def start(self, timeout: float = 60) -> None:
        """Launch revad (if not running) and wait until einstein can log in and stat his home."""
        if self.alive():
            return
        # An init() in a dependency (ocis-pkg/log) sets zerolog's *global* level from
        # MICRO_LOG_LEVEL (default "error"), which silences revad's own logs; "trace" lets each
        # config's [log] level decide.
        env = dict(os.environ, TMPDIR=str(self.workdir / "tmp"), MICRO_LOG_LEVEL="trace")
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(self.binary), "-dev-dir", str(self.workdir / "etc")],
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # own process group: stop() kills exactly this group
            )
        try:
            wait_ready(self, timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM the process group, SIGKILL it if it does not exit in ``timeout`` s."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=timeout)
        # Children that outlived the leader (none expected) go with the group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)

    def restart(self, timeout: float = 60) -> None:
        self.stop()
        self.start(timeout)

    def __enter__(self) -> RevadHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _prepare(
    binary: Path, workdir: Path, log_level: str, token_expires: int = 86400
) -> RevadHandle:
    """Pick free ports and render the configs; nothing is started yet."""
    ports = dict(zip(PORT_NAMES, free_ports(len(PORT_NAMES)), strict=True))
    etc, data, tmp = workdir / "etc", workdir / "data", workdir / "tmp"
    for d in (data, tmp):
        d.mkdir(parents=True, exist_ok=True)
    values = {name: str(port) for name, port in ports.items()}
    values.update(
        DATA_DIR=str(data),
        CONFIG_DIR=str(etc),
        JWT_SECRET="cs3collab-test-jwt-secret",
        TRANSFER_SECRET="cs3collab-test-transfer-secret",
        STORAGE_USERS_ID=STORAGE_USERS_ID,
        STORAGE_SHARES_ID=STORAGE_SHARES_ID,
        LOG_LEVEL=log_level,
        SERVICE_USER_ID=SERVICE_USER_ID,
        MACHINE_AUTH_API_KEY="cs3collab-test-machine-auth-api-key",
    )
    render_configs(etc, values)
    if token_expires != 86400:  # reva's default; the templates (shared with docker/) omit it
        with (etc / "gateway.toml").open("a") as f:
            f.write(
                "\n# lifetime of the tokens Authenticate mints (launcher token_expires)\n"
                "[grpc.services.gateway.token_managers.jwt]\n"
                f"expires = {int(token_expires)}\n"
            )
    return RevadHandle(
        gateway=f"127.0.0.1:{ports['GATEWAY_GRPC']}",
        data_http=f"http://127.0.0.1:{ports['STORAGE_USERS_HTTP']}",
        workdir=workdir,
        log_path=workdir / "revad.log",
        ports=ports,
        binary=binary,
    )


def _ready(stub: gw_grpc.GatewayAPIStub) -> str | None:
    """None when einstein can log in and stat his home; else why not."""
    try:
        password, _ = USERS["einstein"]
        auth = stub.Authenticate(
            gw_pb.AuthenticateRequest(type="basic", client_id="einstein", client_secret=password),
            timeout=5,
        )
        if auth.status.code != code_pb2.CODE_OK:
            return f"Authenticate: {auth.status.code} {auth.status.message}"
        md = (("x-access-token", auth.token),)
        ref = sp_res.Reference(path=home_path("einstein"))
        st = stub.Stat(sp_pb.StatRequest(ref=ref), metadata=md, timeout=5)
        if st.status.code != code_pb2.CODE_OK:
            return f"Stat home: {st.status.code} {st.status.message}"
    except grpc.RpcError as exc:
        return f"gRPC {exc.code()}: {exc.details()}"
    return None


def wait_ready(handle: RevadHandle, timeout: float) -> None:
    why = "not tried"

    def exited() -> BaseException | None:
        if handle.alive():
            return None
        code = handle.process.returncode if handle.process else None
        return RevadError(f"revad exited with {code}:\n{handle.log_tail()}")

    with grpc.insecure_channel(handle.gateway) as channel:
        stub = gw_grpc.GatewayAPIStub(channel)

        def ready() -> bool:
            nonlocal why
            why = _ready(stub) or ""
            return not why

        if poll_until(ready, timeout=timeout, interval=0.2, failed=exited):
            return
    raise RevadError(f"revad not ready after {timeout}s ({why}):\n{handle.log_tail()}")


def start_revad(
    workdir: Path,
    *,
    binary: Path | None = None,
    timeout: float = 60,
    log_level: str = "info",
    attempts: int = 3,
    token_expires: int = 86400,
) -> RevadHandle:
    """Build (cached) if needed, start revad in ``workdir`` and wait until it serves logins.

    ``token_expires``: lifetime of the tokens the gateway mints, seconds (reva then accepts a
    token up to 5 s past it).

    Ports are picked free just before the start; if another process grabs one in between revad
    exits, and we retry with fresh ports (``attempts`` times).
    """
    binary = binary or build_revad()
    workdir.mkdir(parents=True, exist_ok=True)
    last: RevadError | None = None
    for _ in range(attempts):
        handle = _prepare(binary, workdir, log_level, token_expires)
        try:
            handle.start(timeout)
        except RevadError as exc:
            last = exc
            continue
        return handle
    assert last is not None
    raise last


@contextlib.contextmanager
def running_revad(workdir: Path | None = None, **kwargs: object) -> Iterator[RevadHandle]:
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="revad-")))
        handle = start_revad(workdir, **kwargs)  # type: ignore[arg-type]
        stack.callback(handle.stop)
        yield handle


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, help="keep configs/data/logs here (default: temp)")
    parser.add_argument("--binary", type=Path, help="revad binary (default: scripts/revad-build)")
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--timeout", type=float, default=60)
    args = parser.parse_args(argv)
    stop = StopRequest()
    with running_revad(
        args.workdir, binary=args.binary, log_level=args.log_level, timeout=args.timeout
    ) as handle:
        info = {
            "gateway": handle.gateway,
            "data_http": handle.data_http,
            "workdir": str(handle.workdir),
            "log": str(handle.log_path),
            "ports": handle.ports,
            "pid": handle.process.pid if handle.process else None,
        }
        print(json.dumps(info, indent=2), flush=True)
        while not stop.requested and handle.alive():
            time.sleep(0.5)
        if not handle.alive():
            print(f"revad exited:\n{handle.log_tail()}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
