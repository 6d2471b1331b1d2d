"""A randomized model of the hub's promises, fast enough for hundreds of scenarios (issue 11).

Each hub "process" runs the real hub core (rooms, SQLite update log, local storage) on an
event loop of its own thread. ``kill -9`` is modelled by stopping that loop where it stands:
none of its tasks runs again, no cleanup, no final snapshot; the log's and the storage's
worker threads finish the one call they are in (a write that had reached the OS) and stop.
Clients live on the test's loop and talk to the hub through ``BridgeSocket``s.

A scenario mixes, from a seed: clients joining, editing, adding and deleting cells, leaving,
reconnecting with stale documents; external writers (through the hub's document endpoint
and straight to the file); hub kill -9 and restart; loss of the data dir. After quiescence
it checks: every client converged; no cell id twice; every acknowledged edit (seen by
another client) is in the document, or, for an external writer's, in a conflict copy; no
acknowledged deletion is undone without a conflict copy. Edits that were acknowledged but
not yet in the file when the data dir is lost are out of scope (README: they are lost).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import random
import re
import shutil
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from jupyter_ydoc import YNotebook
from pycrdt import (
    Array,
    Decoder,
    Doc,
    TransactionEvent,
    create_sync_message,
    create_update_message,
    handle_sync_message,
)

from collab_server.app import build_authenticator
from collab_server.hub import Hub, HubError
from collab_server.metrics import HubMetrics
from collab_server.settings import Settings
from collab_server.update_log import SQLiteUpdateLog
from devkit.hubproc import notebook, write_notebook
from storage_bridge.local import LocalStorage

T = TypeVar("T")
TOKEN = "model-token"
# A token is a whole word: "t5x1" is not in "t5x12" (a substring test once took the second
# for the first: seed 18405 reported a never-acknowledged edit as lost)
_TOKEN = re.compile(r"\b[ntx]\d+x\d+\b")


def tokens_in(text: str) -> set[str]:
    """The scenario's tokens in ``text`` (sources, a file, conflict copies)."""
    return set(_TOKEN.findall(text))


SETTINGS: dict[str, Any] = {
    "snapshot_debounce": 0.02,
    "snapshot_max_debounce": 0.1,
    "watch_interval": 0.03,
    "unload_grace": 0.15,
    "lock_expiry": 0.6,  # a crashed hub's lock that the log had not recorded yet expires
    "lock_refresh": 0.2,
    "snapshot_retry_max": 0.2,
}


class BridgeSocket:
    """One websocket between the test's loop (client) and a hub's loop (``ReceivingSocket``)."""

    def __init__(self, hub_loop: asyncio.AbstractEventLoop) -> None:
        self._hub_loop = hub_loop
        self._client_loop = asyncio.get_running_loop()
        self.to_hub: asyncio.Queue[bytes | None] = asyncio.Queue()  # used on the hub's loop
        self.to_client: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.close_code: int | None = None
        self.close_reason = ""

    # hub side (hub loop)
    @property
    def direct(self) -> None:
        return None

    async def send(self, data: bytes) -> None:
        self._client_loop.call_soon_threadsafe(self.to_client.put_nowait, data)

    async def receive(self) -> bytes | None:
        return await self.to_hub.get()

    async def close(self, code: int, reason: str) -> None:
        def closed() -> None:
            if self.close_code is None:
                self.close_code, self.close_reason = code, reason
            self.to_client.put_nowait(None)

        self._client_loop.call_soon_threadsafe(closed)

    # client side (test loop)
    def client_send(self, data: bytes | None) -> None:
        self._hub_loop.call_soon_threadsafe(self.to_hub.put_nowait, data)

    def client_lost(self) -> None:
        """The hub process died: the client sees the TCP connection drop (1006)."""
        if self.close_code is None:
            self.close_code = 1006
        self.to_client.put_nowait(None)


class HubThread:
    """A hub process: the real core on its own loop and thread."""

    def __init__(self, root: Path, data_dir: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.hub: Hub = self.call(self._build(root, data_dir))
        self.sockets: set[BridgeSocket] = set()

    @staticmethod
    async def _build(root: Path, data_dir: Path) -> Hub:
        settings = Settings(root=root, data_dir=data_dir, token=TOKEN, **SETTINGS)
        storage = LocalStorage(root, settings.state_dir)
        return Hub(
            settings=settings,
            storage=storage,
            update_log=SQLiteUpdateLog(settings.state_dir / "update-log.sqlite"),
            authenticator=build_authenticator(settings, storage),
            metrics=HubMetrics(),
        )

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def acall(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return await asyncio.wait_for(asyncio.wrap_future(future), timeout)

    async def open_socket(self, room: str, session_id: str) -> BridgeSocket:
        sock = BridgeSocket(self.loop)
        self.sockets.add(sock)

        async def serve() -> None:
            principal = await self.hub.admit(TOKEN, "model")
            try:
                await self.hub.serve(sock, room, session_id, principal)
            finally:
                self.hub.leave(principal, "model")

        asyncio.run_coroutine_threadsafe(serve(), self.loop)
        return sock

    @property
    def storage_thread(self) -> Any:
        storage = self.hub.storage
        assert isinstance(storage, LocalStorage)
        return storage._executor

    def kill9(self) -> None:
        """Stop the hub where it stands (see the module docstring)."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        log = self.hub.update_log
        assert isinstance(log, SQLiteUpdateLog)
        log._executor.shutdown(wait=True)  # the call in flight completes, as in the OS
        log._checkpointer.shutdown(wait=True)
        storage = self.hub.storage
        assert isinstance(storage, LocalStorage)
        storage._executor.shutdown(wait=True)
        for sock in self.sockets:
            sock.client_lost()

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.call(self.hub.aclose(), timeout=60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@dataclass
class ModelClient:
    name: str
    doc: Doc[Any] = field(default_factory=Doc)
    sock: BridgeSocket | None = None
    session_id: str = ""
    synced: bool = False
    reader: asyncio.Task[None] | None = None
    reloads: int = 0

    def __post_init__(self) -> None:
        self.view = YNotebook(self.doc)
        self._remote = False
        self.doc.observe(self._local)

    def _local(self, event: TransactionEvent) -> None:
        if not self._remote and self.sock is not None and self.sock.close_code is None:
            self.sock.client_send(create_update_message(event.update))

    @property
    def connected(self) -> bool:
        return self.sock is not None and self.sock.close_code is None

    async def connect(self, hub: HubThread, info: dict[str, str]) -> None:
        room = f"{info['format']}:{info['type']}:{info['fileId']}"
        self.sock = await hub.open_socket(room, self.session_id or info["sessionId"])
        if not self.session_id:
            self.session_id = info["sessionId"]
        self.synced = False
        self.sock.client_send(create_sync_message(self.doc))
        self.reader = asyncio.get_running_loop().create_task(self._read(self.sock))

    async def _read(self, sock: BridgeSocket) -> None:
        while (message := await sock.to_client.get()) is not None:
            if message[0] == 0:
                self._remote = True
                try:
                    reply = handle_sync_message(message[1:], self.doc)
                finally:
                    self._remote = False
                if reply is not None and sock.close_code is None:
                    sock.client_send(reply)
                if message[1] == 1:
                    self.synced = True
            elif message[0] == 2:
                Decoder(message[1:]).read_var_string()  # raw: not needed by the model

    def disconnect(self) -> None:
        if self.sock is not None and self.sock.close_code is None:
            self.sock.client_send(None)
            self.sock.close_code = 1000
            self.sock.to_client.put_nowait(None)

    def reload(self) -> None:
        """What JupyterLab does after a 1003: a fresh document (local history dropped)."""
        self.doc = Doc()
        self.view = YNotebook(self.doc)
        self.doc.observe(self._local)
        self.session_id = ""
        self.reloads += 1

    def cells(self) -> list[dict[str, Any]]:
        return list(self.view.get()["cells"]) if self.synced else []

    def text(self) -> str:
        return "\n".join(c["source"] for c in self.cells())


@dataclass
class Scenario:
    seed: int
    root: Path
    data_dir: Path
    rng: random.Random = field(init=False)
    hub: HubThread | None = None
    clients: list[ModelClient] = field(default_factory=list)
    info: dict[str, str] = field(default_factory=dict)
    token_count: int = 0
    live_tokens: set[str] = field(default_factory=set)  # typed by clients
    external_tokens: set[str] = field(default_factory=set)
    acknowledged: set[str] = field(default_factory=set)
    deleted_cells: set[str] = field(default_factory=set)  # deletions another client saw
    deleting: dict[str, str] = field(default_factory=dict)  # cell id -> who deleted it
    forgiven: set[str] = field(default_factory=set)  # lost with the data dir, by design
    removed: set[str] = field(default_factory=set)  # tokens of cells someone deleted
    cell_of: dict[str, str] = field(default_factory=dict)  # token -> the cell it was typed in
    ever_deleted: set[str] = field(default_factory=set)  # cell ids some client deleted
    log: list[str] = field(default_factory=list)
    dead_hubs: list[HubThread] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def token(self, kind: str) -> str:
        self.token_count += 1
        return f"{kind}{self.seed}x{self.token_count}"

    async def session(self) -> dict[str, str]:
        assert self.hub is not None
        s = await self.hub.acall(self.hub.hub.open_session(TOKEN, "nb.ipynb", "json", "notebook"))
        return {"format": s.format, "type": s.type, "fileId": s.file_id, "sessionId": s.session_id}

    async def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        write_notebook(self.root / "nb.ipynb", notebook("start"))
        self.hub = HubThread(self.root, self.data_dir)
        self.info = await self.session()

    async def join(self) -> None:
        client = ModelClient(f"c{len(self.clients)}")
        self.clients.append(client)
        await self.connect(client)

    async def connect(self, client: ModelClient) -> None:
        assert self.hub is not None
        if not client.session_id:
            self.info = await self.session()
        await client.connect(self.hub, self.info)

    def observe(self) -> None:
        """Mark what other clients have seen as acknowledged (the hub broadcast it)."""
        texts = {c.name: tokens_in(c.text()) for c in self.clients if c.synced}
        ids = {c.name: {cell.get("id") for cell in c.cells()} for c in self.clients if c.synced}
        for token in self.live_tokens - self.acknowledged:
            if sum(token in t for t in texts.values()) >= 2:
                self.acknowledged.add(token)
        for cell_id, who in list(self.deleting.items()):
            others = [n for n in ids if n != who]
            if others and all(cell_id not in ids[n] for n in others):
                self.deleted_cells.add(cell_id)
                del self.deleting[cell_id]

    async def step(self) -> None:
        action = self.rng.choices(
            ["join", "leave", "edit", "add", "delete", "reconnect", "external", "disk",
             "crash", "lose_data", "pause"],
            weights=[4, 2, 30, 6, 3, 5, 4, 3, 3, 1, 6],
        )[0]  # fmt: skip
        self.log.append(action)
        live = [c for c in self.clients if c.connected and c.synced]
        if action == "join" or not self.clients:
            await self.join()
        elif action == "leave" and live:
            self.rng.choice(live).disconnect()
        elif action == "edit" and live:
            client = self.rng.choice(live)
            cells = client.view.ycells
            if len(cells):
                token = self.token("t")
                self.live_tokens.add(token)
                cell = cells[self.rng.randrange(len(cells))]
                text = cell["source"]
                text.insert(len(text), f" {token}")
                self.log[-1] = f"edit:{client.name}:{token}:{cell['id']}"
                self.cell_of[token] = str(cell["id"])
        elif action == "add" and live:
            client = self.rng.choice(live)
            token = self.token("n")
            self.live_tokens.add(token)
            cells: Array[Any] = client.view._ycells
            cell = client.view.create_ycell(
                {"id": f"cell-{token}", "cell_type": "markdown", "source": token, "metadata": {}}
            )
            cells.insert(self.rng.randrange(len(cells) + 1), cell)
        elif action == "delete" and live:
            client = self.rng.choice(live)
            cells = client.view._ycells
            if len(cells) > 1:
                index = self.rng.randrange(len(cells))
                self.deleting[str(cells[index]["id"])] = client.name
                self.log[-1] = f"delete:{client.name}:{cells[index]['id']}"
                # what it held; what anyone types into it later is excluded at the check: an
                # offline client's deletion, resent when it reconnects, wins in Y
                self.removed |= set(str(cells[index]["source"]).split())
                self.ever_deleted.add(str(cells[index]["id"]))
                del cells[index]
        elif action == "reconnect":
            for client in self.clients:
                if not client.connected:
                    await self.connect(client)
        elif action in ("external", "disk"):
            await self.external_write(through_hub=action == "external")
        elif action == "crash":
            await self.crash()
        elif action == "lose_data":
            await self.crash(lose_data=True)
        await asyncio.sleep(self.rng.choice([0, 0, 0.005, 0.02]))
        await self.handle_reloads()
        self.observe()

    async def external_write(self, *, through_hub: bool) -> None:
        assert self.hub is not None
        path = self.root / "nb.ipynb"
        current = path.read_bytes()
        try:
            nb = json.loads(current)
        except ValueError:
            return
        token = self.token("x")
        self.external_tokens.add(token)
        self.log.append(token)
        if self.rng.random() < 0.5 and nb["cells"]:
            cell = self.rng.choice(nb["cells"])
            cell["source"] = "".join(cell["source"]) + f" {token}"
            self.cell_of[token] = str(cell.get("id"))
        else:
            nb["cells"].insert(
                self.rng.randrange(len(nb["cells"]) + 1),
                {"cell_type": "markdown", "id": f"ext-{token}", "metadata": {}, "source": token},
            )
        data = json.dumps(nb, indent=1).encode()
        if not through_hub:
            # Read-modify-write on the storage's thread: a writer that does not wait between
            # reading and writing. One that writes from a stale copy is read as deleting what
            # it lacks, which no merge can tell apart (README, external writers).
            await asyncio.wrap_future(self.hub.storage_thread.submit(self._disk_write, token))
            return
        etag = hashlib.sha256(current).hexdigest()
        try:
            await self.hub.acall(self.hub.hub.write_document(TOKEN, "nb.ipynb", data, etag))
        except HubError as exc:
            assert exc.status == 412, exc.message  # the file changed since we read it
            self.external_tokens.discard(token)

    def _disk_write(self, token: str) -> None:
        path = self.root / "nb.ipynb"
        nb = json.loads(path.read_bytes())
        nb["cells"].append(
            {"cell_type": "markdown", "id": f"ext-{token}", "metadata": {}, "source": token}
        )
        path.write_text(json.dumps(nb, indent=1))

    async def crash(self, *, lose_data: bool = False) -> None:
        assert self.hub is not None
        self.hub.kill9()
        self.dead_hubs.append(self.hub)
        if lose_data:
            # By design the edits not yet in the file are gone with the log (README).
            file_text = (self.root / "nb.ipynb").read_text()
            on_file = tokens_in(file_text)
            ids_on_file = {str(c.get("id")) for c in json.loads(file_text)["cells"]}
            every = self.live_tokens | self.external_tokens  # seen by others now or later
            self.forgiven |= {t for t in every if t not in on_file}
            self.deleted_cells = {c for c in self.deleted_cells if c not in ids_on_file}
            self.deleting = {c: w for c, w in self.deleting.items() if c not in ids_on_file}
            shutil.rmtree(self.data_dir)
        await asyncio.sleep(0)
        self.hub = HubThread(self.root, self.data_dir)

    async def handle_reloads(self) -> None:
        for client in self.clients:
            if client.sock is not None and client.sock.close_code == 1003:
                client.sock = None
                client.reload()
                await self.connect(client)

    async def quiesce(self, timeout: float = 20) -> None:
        """Everyone reconnects and converges."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            await self.handle_reloads()
            for client in self.clients:
                if not client.connected:
                    await self.connect(client)
            self.observe()
            views = [json.dumps(c.view.get(), sort_keys=True) for c in self.clients if c.synced]
            if len(views) == len(self.clients) and len(set(views)) == 1 and await self.settled():
                return
            if loop.time() > deadline:
                raise AssertionError(
                    f"seed {self.seed}: clients did not converge ({self.log}); "
                    f"{await self.diagnose()}"
                )
            await asyncio.sleep(0.02)

    async def settled(self) -> bool:
        """The room has caught up with storage: it holds what the file holds, nothing to save."""
        assert self.hub is not None
        on_file = hashlib.sha256((self.root / "nb.ipynb").read_bytes()).hexdigest()

        async def look() -> bool:
            rooms = self.hub.hub.rooms.rooms() if self.hub else []
            return bool(rooms) and all(
                r.sync.base.hash == on_file and not r.sync.dirty for r in rooms
            )

        return await self.hub.acall(look())

    async def diagnose(self) -> str:
        assert self.hub is not None
        on_file = hashlib.sha256((self.root / "nb.ipynb").read_bytes()).hexdigest()

        async def look() -> str:
            return "; ".join(
                f"room base={r.sync.base.hash[:8]} file={on_file[:8]} dirty={r.sync.dirty}"
                f" failures={r.sync.snapshotter._failures} lock={r.sync.lock.state}"
                f" ro={r.read_only_reason}"
                f" clients={r.client_count}"
                for r in (self.hub.hub.rooms.rooms() if self.hub else [])
            )

        rooms = await self.hub.acall(look())
        clients = [
            (c.name, c.connected, c.synced, c.sock and c.sock.close_code) for c in self.clients
        ]
        return f"rooms: {rooms or 'none'}; clients: {clients}"

    def conflict_text(self) -> str:
        return "\n".join(
            p.read_text(errors="replace") for p in self.root.glob("*.conflict*") if p.is_file()
        )

    def check(self) -> None:
        assert self.clients, "no client"
        cells = self.clients[0].cells()
        ids = [c.get("id") for c in cells]
        where = f"seed {self.seed}: {self.log}"
        assert len(ids) == len(set(ids)), f"{where}: duplicated cell ids {ids}"
        text = tokens_in(self.clients[0].text())
        copies = tokens_in(self.conflict_text())
        in_deleted = {t for t, cell in self.cell_of.items() if cell in self.ever_deleted}
        required = (self.acknowledged | self.external_tokens) - self.forgiven - self.removed
        required -= in_deleted
        missing = sorted(t for t in required if t not in text and t not in copies)
        assert not missing, f"{where}: acknowledged edits lost {missing}"
        tokens = {t for c in cells for t in c["source"].split()}
        doubled = sorted(t for t in tokens if self.clients[0].text().split().count(t) > 1)
        assert not doubled, f"{where}: edits duplicated {doubled}"
        if not copies:
            back = sorted(self.deleted_cells & set(ids))
            assert not back, f"{where}: deleted cells came back {back}"

    def stop(self) -> None:
        for client in self.clients:
            client.disconnect()
        if self.hub is not None:
            self.hub.stop()


async def run_scenario(seed: int, workdir: Path, steps: int = 40) -> Scenario:
    scenario = Scenario(seed, workdir / f"s{seed}" / "root", workdir / f"s{seed}" / "data")
    await scenario.start()
    try:
        for _ in range(steps):
            await scenario.step()
        await scenario.quiesce()
        scenario.check()
    finally:
        scenario.stop()
    return scenario
