"""A notebook's kernel, the way JupyterLab gets one: ``POST /api/sessions`` on the Jupyter server,
then the kernel's websocket ``/api/kernels/{id}/channels`` (Jupyter messaging protocol, JSON)."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import websockets

from tests.jupyter_cs3.jupyterproc import JupyterProcess


@dataclass
class Execution:
    stdout: str = ""
    stderr: str = ""
    error: dict[str, Any] | None = None
    status: str = ""

    def ok(self) -> str:
        assert self.error is None, "kernel error:\n" + "\n".join(self.error.get("traceback", []))
        assert self.status == "ok", self.status
        return self.stdout


@dataclass
class Kernel:
    server: JupyterProcess
    session: dict[str, Any]
    ws: Any = None
    client_session: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def kernel_id(self) -> str:
        return str(self.session["kernel"]["id"])

    @classmethod
    async def start(cls, server: JupyterProcess, notebook_path: str) -> Kernel:
        r = await asyncio.to_thread(
            server.request,
            "POST",
            "/api/sessions",
            json={
                "path": notebook_path,
                "name": notebook_path.rsplit("/", 1)[-1],
                "type": "notebook",
                "kernel": {"name": "python3"},
            },
        )
        assert r.status_code == 201, r.text
        kernel = cls(server, r.json())
        url = (
            f"{server.ws_url}/api/kernels/{kernel.kernel_id}/channels"
            f"?session_id={kernel.client_session}&token={server.token}"
        )
        kernel.ws = await websockets.connect(url, max_size=2**26)
        await kernel._request("kernel_info_request", {}, timeout=60)
        return kernel

    def _message(self, msg_type: str, content: dict[str, Any]) -> dict[str, Any]:
        return {
            "header": {
                "msg_id": uuid.uuid4().hex,
                "username": "test",
                "session": self.client_session,
                "msg_type": msg_type,
                "version": "5.3",
                "date": datetime.now(tz=UTC).isoformat(),
            },
            "parent_header": {},
            "metadata": {},
            "content": content,
            "channel": "shell",
            "buffers": [],
        }

    async def _request(
        self, msg_type: str, content: dict[str, Any], timeout: float
    ) -> tuple[Execution, dict[str, Any]]:
        """Send on shell; collect iopub output until the reply and the idle status arrived."""
        msg = self._message(msg_type, content)
        msg_id = msg["header"]["msg_id"]
        await self.ws.send(json.dumps(msg))
        result = Execution()
        reply: dict[str, Any] | None = None
        idle = False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while reply is None or not idle:
            left = deadline - loop.time()
            assert left > 0, f"no answer to {msg_type} within {timeout}s: {result}"
            frame = json.loads(await asyncio.wait_for(self.ws.recv(), left))
            if frame.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, body = frame["header"]["msg_type"], frame["content"]
            if frame["channel"] == "shell":
                reply = body
                result.status = str(body.get("status", ""))
            elif kind == "stream":
                if body["name"] == "stdout":
                    result.stdout += body["text"]
                else:
                    result.stderr += body["text"]
            elif kind == "error":
                result.error = body
            elif kind == "status" and body["execution_state"] == "idle":
                idle = True
        return result, reply

    async def run(self, code: str, timeout: float = 120) -> Execution:
        content = {
            "code": code,
            "silent": False,
            "store_history": True,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        }
        result, _ = await self._request("execute_request", content, timeout)
        return result

    async def run_ok(self, code: str, timeout: float = 120) -> str:
        return (await self.run(code, timeout)).ok()

    async def stop(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        r = await asyncio.to_thread(
            self.server.request, "DELETE", f"/api/sessions/{self.session['id']}"
        )
        assert r.status_code == 204, r.text
