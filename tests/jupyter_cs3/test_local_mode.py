"""jupyter_cs3 with the local backend: the Jupyter server and the hub share one folder (no CS3)."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pycrdt import Map

from devkit.hubproc import HubProcess
from devkit.yclient import YClient
from tests.jupyter_cs3.jupyterproc import JupyterProcess
from tests.jupyter_cs3.kernelclient import Kernel
from tests.jupyter_cs3.stack import put_notebook


@dataclass
class LocalStack:
    root: Path
    hub: HubProcess
    jupyter: JupyterProcess


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    work = tmp_path_factory.mktemp("local")
    root = work / "notebooks"
    root.mkdir()
    data = work / "hubdata"  # the hub's state, including the file-id index both sides use
    hub = HubProcess(root=root, data_dir=data, token="hub-secret").start()
    cs3 = {"storage": "local", "root": str(root), "data_dir": str(data)}
    jupyter = JupyterProcess(
        work / "jupyter", {**cs3, "hub_url": hub.http_url, "hub_token": "hub-secret"}
    )
    try:
        jupyter.start()
        yield LocalStack(root, hub, jupyter)
    finally:
        jupyter.stop()
        hub.stop()


async def test_local_contents_and_coedit(local: LocalStack) -> None:
    j = local.jupyter
    put_notebook(j, "a.ipynb")
    assert (local.root / "a.ipynb").exists()
    listing = {c["name"] for c in j.contents("").json()["content"]}
    assert listing == {"a.ipynb"}  # no Shares folder in local mode
    info = j.session("a.ipynb").json()
    one = await YClient(j.room_url(info)).connect()
    two = await YClient(j.room_url(info)).connect()
    await one.set_awareness({"user": {"name": "me"}, "autosave": True})
    one.append_source(0, "local edit")
    await two.wait_for(lambda: two.sources()[0] == "local edit")
    state = one.doc.get("state", type=Map)

    def saved() -> bool:
        return "local edit" in (local.root / "a.ipynb").read_text() and state.get("dirty") is False

    await one.wait_for(saved)
    digest = hashlib.sha256((local.root / "a.ipynb").read_bytes()).hexdigest()
    await one.wait_for(lambda: state.get("hash") == digest)
    assert j.contents("a.ipynb", content=0, hash=1).json()["hash"] == digest
    # Jupyter's own auth guards the files: a wrong Jupyter token is refused
    wrong = j.request("GET", "/api/contents/", headers={"Authorization": "token x"})
    assert wrong.status_code == 403
    await one.close()
    await two.close()


async def test_local_kernel_starts_in_the_notebooks_folder(local: LocalStack) -> None:
    j = local.jupyter
    r = j.request("PUT", "/api/contents/sub", json={"type": "directory"})
    assert r.status_code == 201, r.text
    put_notebook(j, "sub/k.ipynb")
    (local.root / "sub" / "data.csv").write_text("a,b\n1,2\n")
    kernel = await Kernel.start(j, "sub/k.ipynb")
    try:
        out = await kernel.run_ok(
            "import os, pandas as pd\n"
            "print(os.getcwd())\n"
            "print(pd.read_csv('data.csv').b.sum())\n"
            "print(sorted(k for k in os.environ if k.startswith(('CS3_', 'JUPYTER_CS3_'))))\n"
        )
    finally:
        await kernel.stop()
    cwd, total, cs3_vars = out.splitlines()
    # the served folder, not the Jupyter server's root_dir (which is elsewhere here)
    assert Path(cwd).resolve() == (local.root / "sub").resolve()
    assert Path(j.workdir / "root").resolve() != local.root.resolve()
    assert total == "2" and cs3_vars == "[]"


async def test_local_mode_says_sharing_is_not_available(local: LocalStack) -> None:
    j = local.jupyter
    put_notebook(j, "b.ipynb")
    me = j.request("GET", "/api/cs3/me").json()
    assert me["storage"] == "local" and me["sharing"] is False
    for method, path, body in [
        ("GET", "/api/cs3/shares", None),
        ("POST", "/api/cs3/shares", {"path": "b.ipynb", "grantee": "marie", "role": "viewer"}),
        ("PATCH", "/api/cs3/shares/x", {"role": "editor"}),
        ("PATCH", "/api/cs3/shares/received/x", {"state": "accepted"}),
        ("GET", "/api/cs3/links", None),
        ("POST", "/api/cs3/links", {"path": "b.ipynb"}),
    ]:
        r = j.request(method, path, json=body)
        assert r.status_code == 501, (method, path, r.text)
        assert "Sharing is not available here" in r.json()["message"]
    users = j.request("GET", "/api/cs3/users", params={"query": "mar"})
    assert users.status_code == 501
    # file info works on a folder too, with the hub's lock while the room is open
    info = j.request("GET", "/api/cs3/info", params={"path": "b.ipynb"}).json()
    assert info["role"] == "owner" and info["sharing"] is False and info["lock"] is None
    client = await YClient(j.room_url(j.session("b.ipynb").json())).connect()
    try:

        def locked() -> bool:
            lock = j.request("GET", "/api/cs3/info", params={"path": "b.ipynb"}).json()["lock"]
            return lock is not None and lock["app_name"] == "cs3collab"

        deadline = time.monotonic() + 20
        while not locked():  # the hub's Stat is not a document change: poll it
            assert time.monotonic() < deadline, "no lock while the room is open"
            await asyncio.sleep(0.2)
    finally:
        await client.close()
