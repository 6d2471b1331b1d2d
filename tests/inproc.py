"""The hub core in the test's own event loop: real rooms, real SQLite log, real local storage.

No uvicorn and no TCP: sockets are ``MemorySocket`` pairs, so a test can build many hubs and
scenarios per second (the model test runs hundreds). What the socket layer adds (framing,
limits, the upgrade) is tested against the real server elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_ydoc import YNotebook
from pycrdt import (
    Awareness,
    Decoder,
    Doc,
    TransactionEvent,
    create_sync_message,
    create_update_message,
    handle_sync_message,
)

from collab_server.app import build_authenticator
from collab_server.hub import Hub
from collab_server.metrics import HubMetrics
from collab_server.settings import Settings
from collab_server.update_log import SQLiteUpdateLog
from devkit.polling import wait_for_change
from storage_bridge.local import LocalStorage

TOKEN = "inproc-token"


class MemorySocket:
    """The hub's side of an in-memory websocket (``ReceivingSocket``)."""

    def __init__(self) -> None:
        self.to_hub: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.to_client: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.close_code: int | None = None
        self.close_reason = ""

    @property
    def direct(self) -> None:
        return None

    async def send(self, data: bytes) -> None:
        if self.close_code is None:
            self.to_client.put_nowait(data)

    async def receive(self) -> bytes | None:
        return await self.to_hub.get()

    async def close(self, code: int, reason: str) -> None:
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
            self.to_client.put_nowait(None)


@dataclass
class InprocHub:
    root: Path
    data_dir: Path
    settings: Settings
    hub: Hub
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @classmethod
    def build(cls, root: Path, data_dir: Path, **settings: Any) -> InprocHub:
        values = {"snapshot_debounce": 0.05, "snapshot_max_debounce": 0.2, **settings}
        conf = Settings(root=root, data_dir=data_dir, token=TOKEN, **values)
        storage = LocalStorage(root, conf.state_dir)
        hub = Hub(
            settings=conf,
            storage=storage,
            update_log=SQLiteUpdateLog(conf.state_dir / "update-log.sqlite"),
            authenticator=build_authenticator(conf, storage),
            metrics=HubMetrics(),
        )
        return cls(root, data_dir, conf, hub)

    async def session(self, path: str) -> dict[str, Any]:
        s = await self.hub.open_session(TOKEN, path, "json", "notebook")
        return {"format": s.format, "type": s.type, "fileId": s.file_id, "sessionId": s.session_id}

    async def connect(
        self, info: dict[str, Any], session_id: str | None = None, *, again: Client | None = None
    ) -> Client:
        """A new client, or ``again``: the same client (its doc, its edits) reconnecting."""
        sock = MemorySocket()
        principal = await self.hub.admit(TOKEN, "memory")
        room = f"{info['format']}:{info['type']}:{info['fileId']}"
        sid = info["sessionId"] if session_id is None else session_id

        async def run() -> None:
            try:
                await self.hub.serve(sock, room, sid, principal)
            finally:
                self.hub.leave(principal, "memory")

        task = asyncio.get_running_loop().create_task(run())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        client = again or Client(sock)
        client.sock = sock
        client.closed.clear()
        client.synced.clear()
        client.start()
        return client

    def counter(self, name: str, **labels: str) -> float:
        value = self.hub.metrics.registry.get_sample_value(name, labels or None)
        return float(value or 0.0)

    async def aclose(self) -> None:
        await self.hub.aclose()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


class Client:
    """A y-websocket client over a ``MemorySocket`` (what JupyterLab sends, in order)."""

    def __init__(self, sock: MemorySocket) -> None:
        self.sock = sock
        self.doc: Doc[Any] = Doc()
        self.view = YNotebook(self.doc)
        self.awareness = Awareness(self.doc)
        self.synced = asyncio.Event()
        self.closed = asyncio.Event()
        self.raw: list[dict[str, Any]] = []
        self._changed = asyncio.Event()
        self._remote = False
        self._sub = self.doc.observe(self._local)
        self._reader: asyncio.Task[None] | None = None

    def _local(self, event: TransactionEvent) -> None:
        self._changed.set()
        if not self._remote and not self.closed.is_set():
            self.sock.to_hub.put_nowait(create_update_message(event.update))

    def start(self) -> None:
        self._reader = asyncio.get_running_loop().create_task(self._read())
        self.sock.to_hub.put_nowait(create_sync_message(self.doc))

    async def _read(self) -> None:
        while True:
            message = await self.sock.to_client.get()
            if message is None:
                break
            self._handle(message)
        self.closed.set()
        self._changed.set()

    def _handle(self, message: bytes) -> None:
        if message[0] == 0:
            self._remote = True
            try:
                reply = handle_sync_message(message[1:], self.doc)
            finally:
                self._remote = False
            if reply is not None:
                self.sock.to_hub.put_nowait(reply)
            if message[1] == 1:
                self.synced.set()
        elif message[0] == 1:
            payload = Decoder(message[1:]).read_message()
            assert payload is not None
            self.awareness.apply_awareness_update(payload, "remote")
        elif message[0] == 2:
            self.raw.append(json.loads(Decoder(message[1:]).read_var_string()))
        self._changed.set()

    def send(self, frame: bytes) -> None:
        self.sock.to_hub.put_nowait(frame)

    async def wait_for(self, cond: Callable[[], bool], timeout: float = 10) -> None:
        # Files and metrics change without a message: poll too.
        await wait_for_change(cond, self._changed, timeout, poll=0.02)

    async def wait_synced(self, timeout: float = 10) -> None:
        await self.wait_for(lambda: self.synced.is_set() or self.closed.is_set(), timeout)
        assert self.synced.is_set(), f"closed {self.sock.close_code} {self.sock.close_reason}"

    def sources(self) -> list[str]:
        return [c["source"] for c in self.view.get()["cells"]]

    def append(self, index: int, text: str) -> None:
        ytext = self.view.ycells[index]["source"]
        ytext.insert(len(ytext), text)

    def leave(self) -> None:
        """Close from the client side (the hub sees the peer go)."""
        self.closed.set()
        self.sock.to_hub.put_nowait(None)
        self.sock.to_client.put_nowait(None)


@contextlib.asynccontextmanager
async def running(root: Path, data_dir: Path, **settings: Any) -> AsyncIterator[InprocHub]:
    hub = InprocHub.build(root, data_dir, **settings)
    try:
        yield hub
    finally:
        await hub.aclose()
