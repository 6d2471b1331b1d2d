"""A y-websocket client in Python (pycrdt + websockets), speaking what JupyterLab speaks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import websockets
from jupyter_ydoc import YNotebook, YUnicode
from pycrdt import (
    Awareness,
    Decoder,
    Doc,
    TransactionEvent,
    create_awareness_message,
    create_sync_message,
    create_update_message,
    handle_sync_message,
    write_var_uint,
)
from websockets.asyncio.client import ClientConnection

from collab_server.protocol import save_request
from devkit.polling import wait_for_change


class YClient:
    def __init__(self, url: str, kind: str = "notebook", max_size: int = 2**26) -> None:
        self.url = url
        self.doc: Doc[Any] = Doc()
        self.view: YNotebook | YUnicode = (
            YNotebook(self.doc) if kind == "notebook" else YUnicode(self.doc)
        )
        self.awareness = Awareness(self.doc)
        self.max_size = max_size
        self.ws: ClientConnection | None = None
        self.synced = asyncio.Event()
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self.close_reason: str = ""
        self.raw: list[dict[str, Any]] = []
        self.received_updates = 0
        self.awareness_frames = 0
        self._changed = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._outbox: asyncio.Queue[bytes] = asyncio.Queue()
        self._sub = self.doc.observe(self._on_local_update)
        self._applying_remote = False

    def _on_local_update(self, event: TransactionEvent) -> None:
        self._changed.set()
        if self._applying_remote or self.ws is None:
            return
        self._outbox.put_nowait(create_update_message(event.update))

    async def _send(self, data: bytes) -> None:
        """Queue a frame; one writer sends frames in order (edits never overtake a save)."""
        self._outbox.put_nowait(data)
        await self._outbox.join()

    async def _write(self) -> None:
        assert self.ws is not None
        while True:
            data = await self._outbox.get()
            try:
                await self.ws.send(data)
            except websockets.ConnectionClosed:
                pass
            finally:
                self._outbox.task_done()

    async def connect(self, *, wait_synced: bool = True, timeout: float = 15) -> YClient:
        self.ws = await websockets.connect(self.url, max_size=self.max_size, open_timeout=timeout)
        self._reader = asyncio.get_running_loop().create_task(self._read())
        self._writer = asyncio.get_running_loop().create_task(self._write())
        await self._send(create_sync_message(self.doc))  # the hub may already have closed
        if wait_synced:
            await self.wait_synced(timeout)
        return self

    async def wait_synced(self, timeout: float = 15) -> None:
        await asyncio.wait(
            [asyncio.ensure_future(self.synced.wait()), asyncio.ensure_future(self.closed.wait())],
            timeout=timeout,
            return_when=asyncio.FIRST_COMPLETED,
        )
        if not self.synced.is_set():
            raise AssertionError(f"not synced (closed={self.close_code} {self.close_reason})")

    async def _read(self) -> None:
        assert self.ws is not None
        try:
            async for message in self.ws:
                assert isinstance(message, bytes)
                self._handle(message)
        except websockets.ConnectionClosed:
            pass
        finally:
            if self.ws.close_code is not None:
                self.close_code = self.ws.close_code
                self.close_reason = self.ws.close_reason or ""
            self.closed.set()
            self._changed.set()

    def _handle(self, message: bytes) -> None:
        kind = message[0]
        if kind == 0:
            sub = message[1]
            self._applying_remote = True
            try:
                reply = handle_sync_message(message[1:], self.doc)
            finally:
                self._applying_remote = False
            if reply is not None:
                self._outbox.put_nowait(reply)
            if sub == 1:
                self.synced.set()
            elif sub == 2:
                self.received_updates += 1
        elif kind == 1:
            payload = Decoder(message[1:]).read_message()
            assert payload is not None
            self.awareness.apply_awareness_update(payload, "remote")
            self.awareness_frames += 1
        elif kind == 2:
            text = Decoder(message[1:]).read_var_string()
            self.raw.append(json.loads(text))
        self._changed.set()

    async def set_awareness(self, state: dict[str, Any]) -> None:
        self.awareness.set_local_state(state)
        update = self.awareness.encode_awareness_update([self.doc.client_id])
        await self._send(create_awareness_message(update))

    async def save(self, save_id: int = 1, timeout: float = 15) -> dict[str, Any]:
        await self._send(save_request(save_id))
        return await self.wait_raw(lambda m: m.get("responseTo") == save_id, timeout)

    async def command(self, payload: dict[str, Any], timeout: float = 15) -> dict[str, Any]:
        """Send a JSON raw command and wait for the reply of the same type."""
        body = json.dumps(payload).encode()
        seen = len(self.raw)
        await self._send(bytes([2]) + write_var_uint(len(body)) + body)
        await self.wait_for(
            lambda: any(m.get("type") == payload["type"] for m in self.raw[seen:]), timeout
        )
        return next(m for m in self.raw[seen:] if m.get("type") == payload["type"])

    async def send_raw_bytes(self, data: bytes) -> None:
        assert self.ws is not None
        await self.ws.send(data)

    async def wait_raw(
        self, pred: Callable[[dict[str, Any]], bool], timeout: float = 15
    ) -> dict[str, Any]:
        found: list[dict[str, Any]] = []

        def check() -> bool:
            found[:] = [m for m in self.raw if pred(m)]
            return bool(found)

        await self.wait_for(check, timeout)
        return found[0]

    async def wait_for(self, cond: Callable[[], bool], timeout: float = 15) -> None:
        await wait_for_change(cond, self._changed, timeout)

    async def wait_closed(self, timeout: float = 15) -> int | None:
        await asyncio.wait_for(self.closed.wait(), timeout)
        return self.close_code

    def append_source(self, index: int, text: str) -> None:
        """Type ``text`` at the end of cell ``index`` (a Text insert, as an editor does)."""
        assert isinstance(self.view, YNotebook)
        ytext = self.view.ycells[index]["source"]
        ytext.insert(len(ytext), text)

    def source_length(self, index: int) -> int:
        assert isinstance(self.view, YNotebook)
        return len(self.view.ycells[index]["source"])

    def notebook(self) -> dict[str, Any]:
        assert isinstance(self.view, YNotebook)
        return self.view.get()

    def sources(self) -> list[str]:
        return [c["source"] for c in self.notebook()["cells"]]

    async def close(self) -> None:
        if self._writer is not None and not self.closed.is_set():
            await asyncio.wait_for(self._outbox.join(), 10)  # what was typed is sent
            self._writer.cancel()
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
