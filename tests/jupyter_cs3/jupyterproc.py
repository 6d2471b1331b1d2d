"""Run a real Jupyter server (``python -m jupyter_server``) with the jupyter_cs3 extension as a
subprocess on a free loopback port, isolated from the user's Jupyter config and data."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from devkit.polling import http_ok, poll_until, process_exited
from devkit.ports import free_port


@dataclass
class JupyterProcess:
    """One user's Jupyter server. ``cs3`` is the ``CS3Config`` section (gateway, user...)."""

    workdir: Path
    cs3: dict[str, Any]
    token: str = "jupyter-test-token"
    port: int = field(default_factory=free_port)
    extra_config: dict[str, Any] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"jupyter-{self.port}.log"

    def config(self) -> dict[str, Any]:
        root = self.workdir / "root"
        root.mkdir(parents=True, exist_ok=True)
        server: dict[str, Any] = {
            "ip": "127.0.0.1",
            "port": self.port,
            "port_retries": 0,
            "open_browser": False,
            "allow_root": True,  # CI runs as root
            "root_dir": str(root),
            # The package installs this as etc/jupyter/jupyter_server_config.d/jupyter_cs3.json;
            # say it here too, so the tests do not depend on the environment's etc/jupyter.
            "jpserver_extensions": {
                "jupyter_cs3": True,
                "jupyter_server_ydoc": False,
                "jupyter_lsp": False,
            },
        }
        config: dict[str, Any] = {
            "ServerApp": server,
            "IdentityProvider": {"token": self.token},
            "CS3Config": dict(self.cs3),
        }
        for section, values in self.extra_config.items():
            config.setdefault(section, {}).update(values)
        return config

    def start(self, timeout: float = 60.0) -> JupyterProcess:
        self.launch()
        return self.wait_ready(timeout)

    def launch(self) -> None:
        """Start the process without waiting (``wait_ready`` waits); lets servers boot together."""
        confdir = self.workdir / "config"
        confdir.mkdir(parents=True, exist_ok=True)
        (confdir / "jupyter_server_config.json").write_text(json.dumps(self.config(), indent=1))
        env = {
            **os.environ,
            "JUPYTER_CONFIG_DIR": str(confdir),
            "JUPYTER_DATA_DIR": str(self.workdir / "data"),
            "JUPYTER_RUNTIME_DIR": str(self.workdir / "runtime"),
            "JUPYTER_PLATFORM_DIRS": "1",
            "JUPYTER_NO_CONFIG": "",
        }
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyter_server", "--no-browser"],
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 60.0) -> JupyterProcess:
        assert self.proc is not None
        exited = process_exited(
            self.proc, lambda: f"jupyter server exited early:\n{self.logs()[-6000:]}"
        )

        def ready() -> bool:
            return http_ok(f"{self.url}/api/status", headers=self.headers, timeout=2)

        if poll_until(ready, timeout=timeout, interval=0.1, failed=exited):
            return self
        self.stop()
        raise TimeoutError(f"jupyter server did not start:\n{self.logs()[-6000:]}")

    def stop(self, timeout: float = 20.0) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)

    def restart(self) -> None:
        self.stop()
        self.start()

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # ---- REST helpers ----

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return httpx.request(method, f"{self.url}{path}", headers=headers, timeout=60, **kwargs)

    def contents(self, path: str = "", **params: Any) -> httpx.Response:
        return self.request("GET", "/api/contents/" + quote(path), params=params)

    def session(self, path: str, fmt: str = "json", typ: str = "notebook") -> httpx.Response:
        return self.request(
            "PUT",
            "/api/collaboration/session/" + quote(path, safe=""),
            json={"format": fmt, "type": typ},
        )

    def room_url(self, info: dict[str, Any], *, session_id: str | None = None) -> str:
        sid = info["sessionId"] if session_id is None else session_id
        return (
            f"{self.ws_url}/api/collaboration/room/{info['format']}:{info['type']}:"
            f"{info['fileId']}?sessionId={sid}&token={self.token}"
        )


def start_all(servers: list[JupyterProcess], timeout: float = 90.0) -> list[JupyterProcess]:
    """Boot several servers at once (each takes a few CPU-bound seconds to import)."""
    for server in servers:
        server.launch()
    try:
        for server in servers:
            server.wait_ready(timeout)
    except BaseException:
        for server in servers:
            server.stop()
        raise
    return servers
