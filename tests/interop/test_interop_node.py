"""Interop: the hub driven by the client libraries JupyterLab 4 ships.

A Node client (``yclient.mjs``: y-websocket 1.5.4 + y-protocols 1.0.6 + yjs + @jupyter/ydoc
4.2.0, connected exactly like @jupyter/docprovider) and a Python client (pycrdt +
jupyter_ydoc + websockets) talk to the same room of a running hub (fixture ``hub`` from
``tests/conftest.py``).

The Node packages are installed with ``npm ci`` from the committed ``package-lock.json`` when
any locked package is missing from ``node_modules`` or has another version.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import nbformat
import pytest
import websockets
from jupyter_ydoc import YNotebook
from pycrdt import (
    Awareness,
    Doc,
    YMessageType,
    YSyncMessageType,
    create_awareness_message,
    create_sync_message,
    create_update_message,
    handle_sync_message,
    read_message,
)

HERE = Path(__file__).resolve().parent
YCLIENT = HERE / "yclient.mjs"
LOCKFILE = HERE / "package-lock.json"
NODE_MODULES = HERE / "node_modules"

RAW = 2  # y-websocket "auth" message type, used by Jupyter for RAW JSON messages
STEP_TIMEOUT_MS = 10_000
STEP_TIMEOUT_S = STEP_TIMEOUT_MS / 1000
NODE_EXIT_SERVER_CLOSED = 3

pytestmark = pytest.mark.timeout(120)


# --------------------------------------------------------------------------- Node side


def _installed_matches_lock() -> bool:
    """True if every non-optional package of package-lock.json is installed at its locked
    version, whoever installed it (this fixture, scripts/test or a developer)."""
    lock = json.loads(LOCKFILE.read_text())
    for where, meta in lock["packages"].items():
        if not where or meta.get("optional") or meta.get("dev"):
            continue  # the root entry; optional deps are omitted (.npmrc)
        manifest = HERE / where / "package.json"
        if not manifest.is_file():
            return False
        if json.loads(manifest.read_text()).get("version") != meta.get("version"):
            return False
    return True


@pytest.fixture(scope="session")
def node_client() -> Path:
    """Make sure ``node`` and the pinned packages are there; return the client script."""
    node = shutil.which("node")
    npm = shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node/npm not on PATH: the Node interop client cannot run")
    if not _installed_matches_lock():
        proc = subprocess.run(
            [npm, "ci", "--prefix", str(HERE), "--no-audit", "--no-fund"],
            cwd=HERE,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if proc.returncode != 0:
            pytest.fail(f"npm ci failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        assert _installed_matches_lock(), "npm ci did not install what package-lock.json pins"
    return YCLIENT


class NodeClient:
    """One run of yclient.mjs; collects its JSON events as they arrive."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.events: list[dict[str, Any]] = []
        self._changed = asyncio.Event()
        self._stderr = b""
        self._reader = asyncio.create_task(self._read())
        self._err_reader = asyncio.create_task(self._read_stderr())

    @classmethod
    async def start(cls, script: Path, cfg: dict[str, Any]) -> NodeClient:
        proc = await asyncio.create_subprocess_exec(
            "node",
            str(script),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=str(script.parent),
        )
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(cfg).encode())
        await proc.stdin.drain()
        proc.stdin.close()
        return cls(proc)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for line in self.proc.stdout:
            text = line.decode().strip()
            if not text:
                continue
            try:
                event = json.loads(text)
            except json.JSONDecodeError:
                event = {"event": "unparsable", "line": text}
            self.events.append(event)
            self._changed.set()
        self._changed.set()

    async def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        self._stderr = await self.proc.stderr.read()

    def describe(self) -> str:
        lines = "\n".join(json.dumps(e)[:2000] for e in self.events)
        return f"node events:\n{lines}\nnode stderr:\n{self._stderr.decode(errors='replace')}"

    def named(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("event") == name]

    async def wait_event(self, name: str, within: float = STEP_TIMEOUT_S) -> dict[str, Any]:
        try:
            async with asyncio.timeout(within):
                while True:
                    found = self.named(name)
                    if found:
                        return found[0]
                    if self._reader.done():
                        raise AssertionError(f"node client ended without event {name!r}")
                    self._changed.clear()
                    await self._changed.wait()
        except (TimeoutError, AssertionError) as exc:
            what = exc or "timeout"
            raise AssertionError(f"{what} waiting for {name!r}\n{self.describe()}") from exc

    async def wait_exit(self, within: float = 60) -> int:
        try:
            async with asyncio.timeout(within):
                rc = await self.proc.wait()
                await self._reader
                await self._err_reader
        except TimeoutError as exc:
            raise AssertionError(
                f"node client did not exit in {within} s\n{self.describe()}"
            ) from exc
        return rc

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        for task in (self._reader, self._err_reader):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


@pytest.fixture
async def run_node(node_client: Path):
    started: list[NodeClient] = []

    async def start(cfg: dict[str, Any]) -> NodeClient:
        client = await NodeClient.start(node_client, cfg)
        started.append(client)
        return client

    yield start
    for client in started:
        await client.kill()


def node_cfg(hub: Any, session: dict[str, Any], steps: list[dict[str, Any]], **extra: Any) -> dict:
    return {
        "wsBase": f"{hub.ws_url}/api/collaboration/room",
        "room": room_name(session),
        "sessionId": session["sessionId"],
        "token": hub.token,
        "connectTimeoutMs": STEP_TIMEOUT_MS,
        "totalTimeoutMs": 60_000,
        "steps": steps,
        **extra,
    }


# --------------------------------------------------------------------------- hub helpers


def room_name(session: dict[str, Any]) -> str:
    return f"{session['format']}:{session['type']}:{session['fileId']}"


def write_notebook(root: Path, name: str, cells: list[tuple[str, str]]) -> Path:
    """Write a valid nbformat 4.5 notebook with the given (id, source) code cells."""
    nb = nbformat.v4.new_notebook()
    nb.nbformat, nb.nbformat_minor = 4, 5
    nb.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
    }
    nb.cells = [nbformat.v4.new_code_cell(source=src, id=cid) for cid, src in cells]
    nbformat.validate(nb)
    path = root / name
    nbformat.write(nb, path)
    return path


async def open_session(hub: Any, rel_path: str) -> dict[str, Any]:
    url = f"{hub.http_url}/api/collaboration/session/{urllib.parse.quote(rel_path)}"
    async with httpx.AsyncClient(timeout=STEP_TIMEOUT_S) as http:
        resp = await http.put(
            url,
            json={"format": "json", "type": "notebook"},
            headers={"Authorization": f"Bearer {hub.token}"},
        )
    assert resp.status_code in (200, 201), (resp.status_code, resp.text)
    session = resp.json()
    assert session["format"] == "json" and session["type"] == "notebook", session
    for forbidden in "/?#":
        assert forbidden not in session["fileId"], session
    assert session["sessionId"], session
    return session


# --------------------------------------------------------------------------- Python side


class PyClient:
    """A minimal pycrdt + jupyter_ydoc client speaking the y-websocket protocol."""

    def __init__(self, ws: Any, name: str) -> None:
        self.ws = ws
        self.doc = Doc()
        self.nb = YNotebook(self.doc)
        self.awareness = Awareness(self.doc)
        self.name = name
        self._changed = asyncio.Event()
        self._step2: asyncio.Queue[bytes] = asyncio.Queue()
        self.raw: list[dict[str, Any]] = []
        self.closed: tuple[int | None, str] | None = None
        self._reader: asyncio.Task[None] | None = None

    @classmethod
    async def connect(cls, hub: Any, session: dict[str, Any], name: str = "py") -> PyClient:
        query = urllib.parse.urlencode({"sessionId": session["sessionId"], "token": hub.token})
        url = f"{hub.ws_url}/api/collaboration/room/{room_name(session)}?{query}"
        ws = await asyncio.wait_for(websockets.connect(url, max_size=None), STEP_TIMEOUT_S)
        client = cls(ws, name)
        client._reader = asyncio.create_task(client._read())
        await ws.send(create_sync_message(client.doc))
        try:
            await asyncio.wait_for(client._step2.get(), STEP_TIMEOUT_S)
        except TimeoutError as exc:
            raise AssertionError(f"python client: no SyncStep2 within {STEP_TIMEOUT_S} s") from exc
        client.awareness.set_local_state_field("user", {"name": name})
        await client.send_awareness()
        return client

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                if isinstance(message, str):
                    continue
                kind = message[0]
                if kind == YMessageType.SYNC:
                    reply = handle_sync_message(message[1:], self.doc)
                    if reply is not None:
                        await self.ws.send(reply)
                    if message[1] == YSyncMessageType.SYNC_STEP2:
                        self._step2.put_nowait(read_message(message[2:]))
                elif kind == YMessageType.AWARENESS:
                    self.awareness.apply_awareness_update(read_message(message[1:]), "remote")
                elif kind == RAW:
                    self.raw.append(json.loads(read_message(message[1:]).decode()))
                self._changed.set()
        except websockets.ConnectionClosed:
            pass
        finally:
            if self.ws.close_code is not None:
                self.closed = (self.ws.close_code, self.ws.close_reason or "")
            self._changed.set()

    async def send_awareness(self) -> None:
        update = self.awareness.encode_awareness_update([self.doc.client_id])
        await self.ws.send(create_awareness_message(update))

    async def edit(self, mutate: Callable[[YNotebook], None]) -> None:
        """Apply a local change and send exactly that change as one update."""
        before = self.doc.get_state()
        mutate(self.nb)
        await self.ws.send(create_update_message(self.doc.get_update(before)))

    async def wait_for(self, what: str, predicate: Callable[[], bool]) -> None:
        try:
            async with asyncio.timeout(STEP_TIMEOUT_S):
                while not predicate():
                    if self._reader is not None and self._reader.done():
                        raise AssertionError(f"python client disconnected {self.closed}")
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError as exc:
            raise AssertionError(f"python client: timeout waiting for {what}") from exc

    def sees_user(self, name: str) -> bool:
        return any(
            (state or {}).get("user", {}).get("name") == name
            for client_id, state in self.awareness.states.items()
            if client_id != self.doc.client_id
        )

    async def server_state(self) -> dict[str, Any]:
        """Ask the hub for its whole document (SyncStep1 with an empty state vector)
        and return it as notebook JSON, without touching our own copy's view."""
        await self.ws.send(create_sync_message(Doc()))
        try:
            update = await asyncio.wait_for(self._step2.get(), STEP_TIMEOUT_S)
        except TimeoutError as exc:
            raise AssertionError("python client: no SyncStep2 for the state probe") from exc
        scratch = Doc()
        scratch.apply_update(update)
        return YNotebook(scratch).get()

    async def close(self) -> None:
        await self.ws.close()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, STEP_TIMEOUT_S)


@pytest.fixture
async def py_clients():
    clients: list[PyClient] = []

    async def connect(hub: Any, session: dict[str, Any], name: str = "py") -> PyClient:
        client = await PyClient.connect(hub, session, name)
        clients.append(client)
        return client

    yield connect
    for client in clients:
        with contextlib.suppress(Exception):
            await client.close()


def append_source(cell_index: int, text: str) -> Callable[[YNotebook], None]:
    def mutate(nb: YNotebook) -> None:
        source = nb.ycells[cell_index]["source"]
        source.insert(len(source), text)

    return mutate


def cell_view(cells: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    def src(cell: dict[str, Any]) -> str:
        s = cell["source"]
        return s if isinstance(s, str) else "".join(s)

    return [(c["id"], c["cell_type"], src(c)) for c in cells]


def only(events: list[dict[str, Any]], client: NodeClient) -> dict[str, Any]:
    assert len(events) == 1, client.describe()
    return events[0]


# --------------------------------------------------------------------------- tests


async def test_node_and_python_coedit_converge(hub, run_node, py_clients) -> None:
    # Non-ASCII and non-BMP text: Yjs counts UTF-16 code units, yrs must agree on the wire.
    initial = [("cell-a", "a = 'ä😀'\n"), ("cell-b", "b = '🐍ß'\n")]
    write_notebook(hub.root, "coedit.ipynb", initial)
    session = await open_session(hub, "coedit.ipynb")
    py = await py_clients(hub, session, "py")
    assert cell_view(py.nb.get()["cells"]) == [(cid, "code", src) for cid, src in initial]

    node = await run_node(
        node_cfg(
            hub,
            session,
            [
                {"op": "setAwareness", "user": {"name": "node"}},
                {"op": "waitForAwarenessFrom", "name": "py", "timeoutMs": STEP_TIMEOUT_MS},
                {"op": "appendText", "cellIndex": 0, "text": "# from node: héllo 😀\n"},
                {
                    "op": "waitForText",
                    "cellIndex": 1,
                    "contains": "# from py",
                    "timeoutMs": STEP_TIMEOUT_MS,
                },
                {"op": "dump"},
                {"op": "close"},
            ],
            autosave=False,
        )
    )
    synced = await node.wait_event("synced")
    assert synced["cells"] == 2, node.describe()

    # The Python client edits once it sees the Node client's presence.
    await py.wait_for("awareness from node", lambda: py.sees_user("node"))
    # Like an active user, announce ourselves again once the newcomer is seen: a room need
    # not replay existing awareness states to a new client (pycrdt's YRoom does not).
    await py.send_awareness()
    await py.edit(append_source(1, "# from py: ünïcode 🐍\n"))
    await py.wait_for(
        "node's text in cell 0", lambda: "# from node" in str(py.nb.ycells[0]["source"])
    )

    rc = await node.wait_exit()
    assert rc == 0, node.describe()
    node_nb = only(node.named("dump"), node)["notebook"]
    expected = [
        ("cell-a", "code", "a = 'ä😀'\n# from node: héllo 😀\n"),
        ("cell-b", "code", "b = '🐍ß'\n# from py: ünïcode 🐍\n"),
    ]
    assert cell_view(node_nb["cells"]) == expected, node.describe()
    assert cell_view(py.nb.get()["cells"]) == expected
    # The hub's own copy agrees too.
    assert cell_view((await py.server_state())["cells"]) == expected
    # Both clients saw each other's presence: awareness was relayed both ways.
    assert only(node.named("awareness"), node)["state"]["user"]["name"] == "py"


async def test_late_joining_node_gets_full_state(hub, run_node, py_clients) -> None:
    write_notebook(hub.root, "late.ipynb", [("cell-a", "x = 1\n")])
    session = await open_session(hub, "late.ipynb")
    py = await py_clients(hub, session, "py")

    def mutate(nb: YNotebook) -> None:
        source = nb.ycells[0]["source"]
        source.insert(len(source), "y = 2  # py\n")
        nb.ycells.append(
            nb.create_ycell(
                {
                    "id": "py-md",
                    "cell_type": "markdown",
                    "source": "## written by python",
                    "metadata": {"tags": ["py"]},
                }
            )
        )

    await py.edit(mutate)
    expected = [
        ("cell-a", "code", "x = 1\ny = 2  # py\n"),
        ("py-md", "markdown", "## written by python"),
    ]
    # Proof that the hub applied the edit before the Node client joins (no sleeping):
    # the hub's full state, fetched over the same socket, already contains it.
    assert cell_view((await py.server_state())["cells"]) == expected
    await py.close()

    node = await run_node(node_cfg(hub, session, [{"op": "dump"}, {"op": "close"}]))
    rc = await node.wait_exit()
    assert rc == 0, node.describe()
    assert only(node.named("synced"), node)["cells"] == 2, node.describe()
    dump = only(node.named("dump"), node)["notebook"]
    assert cell_view(dump["cells"]) == expected, node.describe()
    assert dump["cells"][1]["metadata"] == {"tags": ["py"]}, node.describe()
    assert dump["nbformat"] == 4 and dump["nbformat_minor"] == 5, node.describe()
    assert dump["metadata"]["kernelspec"]["name"] == "python3", node.describe()
    # One room is seen under different paths by different users: the hub leaves
    # state.path alone (JupyterLab would treat a change of it as a rename).
    state = only(node.named("dump"), node)["state"]
    assert "path" not in state, node.describe()


async def test_node_save_writes_valid_notebook(hub, run_node) -> None:
    path = write_notebook(hub.root, "save.ipynb", [("cell-a", "print('hi ✓')\n"), ("cell-b", "")])
    session = await open_session(hub, "save.ipynb")
    node = await run_node(
        node_cfg(
            hub,
            session,
            [
                {"op": "appendText", "cellIndex": 0, "text": "# saved by node 😀\n"},
                {
                    "op": "insertCell",
                    "index": 2,
                    "cellType": "markdown",
                    "id": "node-md",
                    "source": "node *markdown*",
                },
                {"op": "save", "id": 7, "timeoutMs": STEP_TIMEOUT_MS},
                # JupyterLab's dirty indicator follows the shared state map.
                {
                    "op": "waitForState",
                    "key": "dirty",
                    "value": False,
                    "timeoutMs": STEP_TIMEOUT_MS,
                },
                {"op": "dump"},
                {"op": "close"},
            ],
            # Only the explicit save may write the file in this test.
            autosave=False,
        )
    )
    rc = await node.wait_exit()
    assert rc == 0, node.describe()
    reply = only(node.named("saveReply"), node)
    assert reply["type"] == "save" and reply["responseTo"] == 7, node.describe()
    assert reply["status"] == "success", node.describe()

    on_disk = nbformat.read(path, as_version=nbformat.NO_CONVERT)
    nbformat.validate(on_disk)
    assert (on_disk.nbformat, on_disk.nbformat_minor) == (4, 5)
    expected = [
        ("cell-a", "code", "print('hi ✓')\n# saved by node 😀\n"),
        ("cell-b", "code", ""),
        ("node-md", "markdown", "node *markdown*"),
    ]
    assert cell_view(on_disk.cells) == expected
    dump = only(node.named("dump"), node)
    assert cell_view(dump["notebook"]["cells"]) == expected
    assert dump["state"]["dirty"] is False, node.describe()
    assert isinstance(dump["state"].get("hash"), str) and dump["state"]["hash"], node.describe()
    assert on_disk.metadata["kernelspec"]["name"] == "python3"
    # Runtime-only fields never reach the file.
    for cell in on_disk.cells:
        assert "execution_state" not in cell.get("metadata", {})
        assert "execution_state" not in cell


async def test_node_wrong_session_gets_1003_unknown_session(hub, run_node) -> None:
    path = write_notebook(hub.root, "stale.ipynb", [("cell-a", "z = 3\n")])
    before = path.read_bytes()
    session = await open_session(hub, "stale.ipynb")
    stale = dict(session, sessionId="00000000-stale-session")
    assert stale["sessionId"] != session["sessionId"]
    node = await run_node(node_cfg(hub, stale, [{"op": "dump"}, {"op": "close"}]))
    rc = await node.wait_exit()
    assert rc == NODE_EXIT_SERVER_CLOSED, node.describe()
    closed = only(node.named("closed"), node)
    assert closed["code"] == 1003, node.describe()
    reason = json.loads(closed["reason"])
    assert reason["reason"] == "unknown_session", reason
    assert reason.get("reloadable") is True, reason
    assert len(closed["reason"].encode()) <= 123, closed
    # The stale client never synced and changed nothing.
    assert not node.named("synced"), node.describe()
    assert not node.named("dump"), node.describe()
    assert path.read_bytes() == before


async def test_node_autosave_follows_awareness(hub, run_node) -> None:
    # JupyterLab's default: the client announces {"autosave": true} in its awareness state
    # and never sends "save"; the hub snapshots on its own and clears state.dirty.
    path = write_notebook(hub.root, "auto.ipynb", [("cell-a", "auto = 1\n")])
    session = await open_session(hub, "auto.ipynb")
    node = await run_node(
        node_cfg(
            hub,
            session,
            [
                {"op": "appendText", "cellIndex": 0, "text": "# autosaved\n"},
                {"op": "waitForState", "key": "dirty", "value": False, "timeoutMs": 15_000},
                {"op": "close"},
            ],
            autosave=True,
        )
    )
    rc = await node.wait_exit()
    assert rc == 0, node.describe()
    assert not node.named("saveReply"), node.describe()
    assert only(node.named("state"), node)["state"].get("hash"), node.describe()
    on_disk = nbformat.read(path, as_version=nbformat.NO_CONVERT)
    nbformat.validate(on_disk)
    assert cell_view(on_disk.cells) == [("cell-a", "code", "auto = 1\n# autosaved\n")]


def restartable(hub: Any) -> None:
    """The crash tests need HubProcess's kill9()/start()/data_dir beyond the basic API."""
    if not all(hasattr(hub, attr) for attr in ("kill9", "start", "data_dir")):
        pytest.skip("hub fixture cannot be killed and restarted")


async def test_node_reconnects_after_hub_kill9_without_duplication(
    hub, run_node, py_clients
) -> None:
    # JupyterLab keeps its Y.Doc across a hub crash and y-websocket reconnects to the same
    # URL (old sessionId). The hub must come back with the same lineage and the merge of the
    # client's history must not duplicate anything.
    restartable(hub)
    write_notebook(hub.root, "crash.ipynb", [("cell-a", "r = 1\n")])
    session = await open_session(hub, "crash.ipynb")
    py = await py_clients(hub, session, "py")
    node = await run_node(
        node_cfg(
            hub,
            session,
            [
                {"op": "appendText", "cellIndex": 0, "text": "# before crash\n"},
                {"op": "waitForReconnect", "timeoutMs": 40_000},
                {"op": "appendText", "cellIndex": 0, "text": "# after crash\n"},
                {
                    "op": "waitForText",
                    "cellIndex": 0,
                    "contains": "# py after crash",
                    "timeoutMs": STEP_TIMEOUT_MS,
                },
                {"op": "dump"},
                {"op": "close"},
            ],
            autosave=False,
            reconnect=True,
            totalTimeoutMs=90_000,
        )
    )
    # Broadcast implies durable (ARCHITECTURE §3): once a peer has the edit, a crash keeps it.
    await py.wait_for(
        "node's edit before the crash", lambda: "# before crash" in str(py.nb.ycells[0]["source"])
    )
    hub.kill9()
    await asyncio.to_thread(hub.start)

    assert await open_session(hub, "crash.ipynb") == session  # same fileId, same lineage
    py2 = await py_clients(hub, session, "py2")
    await py2.wait_for(
        "node's edit after the crash", lambda: "# after crash" in str(py2.nb.ycells[0]["source"])
    )
    await py2.edit(append_source(0, "# py after crash\n"))

    rc = await node.wait_exit(within=90)
    assert rc == 0, node.describe()
    closes = node.named("closed")
    assert closes and all(c["reconnecting"] for c in closes), node.describe()
    assert all(c["code"] != 1003 for c in closes), node.describe()
    expected = [("cell-a", "code", "r = 1\n# before crash\n# after crash\n# py after crash\n")]
    assert cell_view(only(node.named("dump"), node)["notebook"]["cells"]) == expected
    assert cell_view(py2.nb.get()["cells"]) == expected
    assert cell_view((await py2.server_state())["cells"]) == expected


async def test_node_reconnect_after_hub_state_loss_gets_1003(hub, run_node) -> None:
    # If the hub loses its durable state it rebuilds rooms from storage under a new lineage;
    # a reconnecting client with old history must be refused (1003 unknown_session), never
    # merged (the cause of duplicated cells in jupyter-collaboration).
    restartable(hub)
    path = write_notebook(hub.root, "lost.ipynb", [("cell-a", "s = 1\n")])
    before = path.read_bytes()
    session = await open_session(hub, "lost.ipynb")
    node = await run_node(
        node_cfg(
            hub,
            session,
            [
                {"op": "appendText", "cellIndex": 0, "text": "# unsaved edit\n"},
                {"op": "waitForReconnect", "timeoutMs": 40_000},
                {"op": "dump"},
            ],
            autosave=False,
            reconnect=True,
            totalTimeoutMs=90_000,
        )
    )
    await node.wait_event("textAppended")
    hub.kill9()
    shutil.rmtree(hub.data_dir)
    await asyncio.to_thread(hub.start)

    rc = await node.wait_exit(within=90)
    assert rc == NODE_EXIT_SERVER_CLOSED, node.describe()
    final = node.named("closed")[-1]
    assert final["code"] == 1003 and not final.get("reconnecting"), node.describe()
    assert json.loads(final["reason"])["reason"] == "unknown_session", node.describe()
    assert not node.named("resynced") and not node.named("dump"), node.describe()
    assert path.read_bytes() == before
    fresh = await open_session(hub, "lost.ipynb")
    assert fresh["sessionId"] != session["sessionId"]


@pytest.mark.parametrize("version", ["1", "2", "3"])
async def test_stock_clients_of_each_y_websocket_coedit(hub, run_node, version) -> None:
    """The interop matrix (issue 11): y-websocket 1.5.4 (JupyterLab's), 2.1.0 and 3.0.0 with
    y-protocols' Awareness as a stock Yjs app uses it: its first awareness update has clock 0
    and state {} (once a frame that stopped the room). They co-edit, see each other, and a
    late joiner gets everything."""
    write_notebook(hub.root, "matrix.ipynb", [("cell-a", "x\n")])
    session = await open_session(hub, "matrix.ipynb")

    def steps(me: str, other: str) -> list[dict[str, Any]]:
        return [
            {"op": "appendText", "cellIndex": 0, "text": f"from {me}\n"},
            {"op": "waitForText", "cellIndex": 0, "contains": f"from {other}",
             "timeoutMs": STEP_TIMEOUT_MS},
            {"op": "setAwareness", "user": {"name": me}},
            {"op": "waitForAwarenessFrom", "name": other, "timeoutMs": STEP_TIMEOUT_MS},
            # neither leaves before the other saw it (a leave removes its awareness state)
            {"op": "appendText", "cellIndex": 0, "text": f"{me} saw {other}\n"},
            {"op": "waitForText", "cellIndex": 0, "contains": f"{other} saw {me}",
             "timeoutMs": STEP_TIMEOUT_MS},
            {"op": "close"},
        ]  # fmt: skip

    a, b = [
        await run_node(
            node_cfg(hub, session, steps(me, other), yWebsocket=version, bareAwareness=True)
        )
        for me, other in (("a", "b"), ("b", "a"))
    ]
    assert await a.wait_exit() == 0, a.describe()
    assert await b.wait_exit() == 0, b.describe()
    wait = {"op": "waitForText", "cellIndex": 0, "contains": "from a", "timeoutMs": STEP_TIMEOUT_MS}
    late_steps = [wait, {"op": "dump"}, {"op": "close"}]
    late = await run_node(
        node_cfg(hub, session, late_steps, yWebsocket=version, bareAwareness=True)
    )
    assert await late.wait_exit() == 0, late.describe()
    source = only(late.named("dump"), late)["notebook"]["cells"][0]["source"]
    assert "from a" in source and "from b" in source
    assert source.count("from a") == source.count("from b") == 1
