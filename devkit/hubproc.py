"""Run the real hub (``cs3collab serve``, uvicorn) as a subprocess on a free loopback port."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from devkit.polling import http_ok, poll_until, process_exited
from devkit.ports import free_port


@dataclass
class HubProcess:
    root: Path
    data_dir: Path
    token: str = "test-token"
    port: int = field(default_factory=free_port)
    env: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> HubProcess:
        env = {
            **os.environ,
            "CS3COLLAB_SNAPSHOT_DEBOUNCE": "0.2",
            "CS3COLLAB_SNAPSHOT_MAX_DEBOUNCE": "1",
            "CS3COLLAB_UNLOAD_GRACE": "60",
            **self.env,
        }
        self.log_path = self.data_dir.parent / f"hub-{self.port}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        cmd = [
            sys.executable, "-m", "collab_server.cli", "serve",
            "--root", str(self.root), "--data-dir", str(self.data_dir),
            "--host", "127.0.0.1", "--port", str(self.port), "--token", self.token,
            *self.args,
        ]  # fmt: skip
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        log_path = self.log_path
        exited = process_exited(
            self.proc, lambda: f"hub exited early:\n{log_path.read_text()[-4000:]}"
        )
        ready = lambda: http_ok(f"{self.http_url}/readyz")  # noqa: E731
        if poll_until(ready, timeout=timeout, interval=0.05, failed=exited):
            return self
        raise TimeoutError(f"hub did not start:\n{self.log_path.read_text()[-4000:]}")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def logs(self) -> str:
        return self.log_path.read_text() if self.log_path and self.log_path.exists() else ""

    def session(
        self, path: str, fmt: str = "json", typ: str = "notebook", token: str | None = None
    ) -> httpx.Response:
        return httpx.put(
            f"{self.http_url}/api/collaboration/session/{path}",
            json={"format": fmt, "type": typ},
            headers={"Authorization": f"Bearer {token or self.token}"},
            timeout=30,
        )

    def open(self, path: str, fmt: str = "json", typ: str = "notebook") -> dict[str, Any]:
        r = self.session(path, fmt, typ)
        assert r.status_code in (200, 201), r.text
        return dict(r.json())

    def room_url(
        self, info: dict[str, Any], *, session_id: str | None = None, token: str | None = None
    ) -> str:
        sid = info["sessionId"] if session_id is None else session_id
        tok = self.token if token is None else token
        return (
            f"{self.ws_url}/api/collaboration/room/{info['format']}:{info['type']}:"
            f"{info['fileId']}?sessionId={sid}&token={tok}"
        )


def notebook(*sources: str, nbformat_minor: int = 5) -> dict[str, Any]:
    return {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": None,
                "id": f"cell-{i}",
                "metadata": {},
                "outputs": [],
                "source": src,
            }
            for i, src in enumerate(sources)
        ],
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}
        },
        "nbformat": 4,
        "nbformat_minor": nbformat_minor,
    }


def write_notebook(path: Path, nb: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb, indent=1))
