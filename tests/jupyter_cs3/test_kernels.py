"""Kernels started by jupyter_cs3 read and write CS3 through ``cs3://``: real revad, real hub, real
Jupyter servers, real ipykernel kernels started as JupyterLab starts them (``POST
/api/sessions`` + the kernel websocket)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from devkit.revad.launcher import USERS, RevadHandle, home_path, start_revad
from devkit.yclient import YClient
from storage_bridge.cs3 import CS3Storage
from tests.jupyter_cs3.devstack import DevStack, running_stack
from tests.jupyter_cs3.jupyterproc import JupyterProcess
from tests.jupyter_cs3.kernelclient import Kernel
from tests.jupyter_cs3.stack import EMPTY_NB, new_name, open_from_shares, put_notebook, share

pytest_plugins = ["tests.revad.fixture"]
pytestmark = pytest.mark.revad

CSV = "name,total\nfermi,3\ncurie,4\n"


def put_file(server: JupyterProcess, path: str, text: str) -> None:
    r = server.request(
        "PUT", f"/api/contents/{path}", json={"type": "file", "format": "text", "content": text}
    )
    assert r.status_code in (200, 201), r.text


def mkdir(server: JupyterProcess, path: str) -> None:
    r = server.request("PUT", f"/api/contents/{path}", json={"type": "directory"})
    assert r.status_code == 201, r.text


@pytest.fixture
async def kernels() -> AsyncIterator[list[Kernel]]:
    """Kernels to shut down at the end of the test, even when it fails."""
    started: list[Kernel] = []
    yield started
    for kernel in started:
        await kernel.stop()


async def start(kernels: list[Kernel], server: JupyterProcess, path: str) -> Kernel:
    kernel = await Kernel.start(server, path)
    kernels.append(kernel)
    return kernel


@pytest.fixture(scope="module")
def project(stack: DevStack) -> tuple[str, str]:
    """einstein's folder with data.csv and analysis.ipynb, shared with marie as editor;
    returns (einstein's path, marie's path)."""
    einstein, marie = stack["einstein"], stack["marie"]
    folder = new_name("proj", "")
    mkdir(einstein, folder)
    put_file(einstein, f"{folder}/data.csv", CSV)
    put_notebook(einstein, f"{folder}/analysis.ipynb")
    share(einstein, folder, "marie", "editor")
    return folder, open_from_shares(marie, folder)


async def test_marie_reads_einsteins_shared_csv_with_pandas(
    stack: DevStack, project: tuple[str, str], kernels: list[Kernel]
) -> None:
    _, marie_folder = project
    assert marie_folder.startswith("Shares/")
    kernel = await start(kernels, stack["marie"], f"{marie_folder}/analysis.ipynb")
    out = await kernel.run_ok(
        f"""
import os, stat, pandas as pd
from storage_bridge.cs3fs import here
a = pd.read_csv("cs3://./data.csv")                   # beside the notebook
b = pd.read_csv("cs3://{marie_folder}/data.csv")      # as in the file browser
c = pd.read_csv(here("data.csv"))                     # the helper
print(a.total.sum(), b.equals(a), c.equals(a))
mode = stat.S_IMODE(os.stat(os.environ["CS3_TOKEN_FILE"]).st_mode)
print(oct(mode), os.environ["CS3_CWD"], os.environ["CS3_HOME"])
secrets = [k for k in os.environ if k.startswith("JUPYTER_CS3_") or k == "CS3_TOKEN"]
token = open(os.environ["CS3_TOKEN_FILE"]).read().strip()
print(secrets, any(token in v for v in os.environ.values()))
"""
    )
    lines = out.splitlines()
    assert lines[0] == "7 True True"
    mode, cwd, home = lines[1].split()
    assert mode == "0o600"
    assert cwd == f"{home_path('marie')}/{marie_folder}" and home == home_path("marie")
    assert lines[2] == "[] False"  # no password or token in the kernel's environment


async def test_einstein_writes_a_result_marie_sees(
    stack: DevStack, project: tuple[str, str], kernels: list[Kernel]
) -> None:
    folder, marie_folder = project
    einstein = await start(kernels, stack["einstein"], f"{folder}/analysis.ipynb")
    await einstein.run_ok(
        """
import pandas as pd
df = pd.read_csv("cs3://./data.csv")
df.assign(double=df.total * 2).to_csv("cs3://./result.csv", index=False)
"""
    )
    r = stack["marie"].contents(f"{marie_folder}/result.csv")
    assert r.status_code == 200, r.text
    assert r.json()["content"].splitlines() == ["name,total,double", "fermi,3,6", "curie,4,8"]
    marie = await start(kernels, stack["marie"], f"{marie_folder}/analysis.ipynb")
    out = await marie.run_ok(
        "import fsspec\nprint(sorted(fsspec.filesystem('cs3').ls('.', detail=False)))"
    )
    assert "./result.csv" in out


async def test_viewer_write_raises_permission_error(stack: DevStack, kernels: list[Kernel]) -> None:
    einstein, richard = stack["einstein"], stack["richard"]
    folder = new_name("view", "")
    mkdir(einstein, folder)
    put_file(einstein, f"{folder}/data.csv", CSV)
    put_notebook(einstein, f"{folder}/nb.ipynb")
    share(einstein, folder, "richard", "viewer")
    richard_folder = open_from_shares(richard, folder)
    kernel = await start(kernels, richard, f"{richard_folder}/nb.ipynb")
    out = await kernel.run_ok(
        """
import fsspec, pandas as pd
print(len(pd.read_csv("cs3://./data.csv")))
for attempt in ("overwrite", "new file"):
    try:
        target = "cs3://./data.csv" if attempt == "overwrite" else "cs3://./new.csv"
        with fsspec.open(target, "w") as f:
            f.write("x")
    except PermissionError as exc:
        print("PermissionError", attempt)
"""
    )
    assert out.splitlines() == ["2", "PermissionError overwrite", "PermissionError new file"]
    assert einstein.contents(f"{folder}/data.csv").json()["content"] == CSV


async def test_kernel_write_of_open_notebook_is_merged_into_the_room(
    stack: DevStack, kernels: list[Kernel]
) -> None:
    einstein = stack["einstein"]
    name = new_name()
    put_notebook(einstein, name)
    room = await YClient(einstein.room_url(einstein.session(name).json())).connect()
    try:
        await room.set_awareness({"user": {"name": "einstein"}, "autosave": True})
        room.append_source(0, "live edit\n")
        storage = CS3Storage(stack.revad.gateway)
        try:
            token = await storage.authenticate("einstein", USERS["einstein"][0])
            path = f"{home_path('einstein')}/{name}"
            deadline = asyncio.get_running_loop().time() + 30
            while (lock := (await storage.stat(token, path)).lock) is None:
                assert asyncio.get_running_loop().time() < deadline, "the room took no lock"
                await asyncio.sleep(0.1)
            assert lock.app_name == "cs3collab"
        finally:
            await storage.aclose()

        kernel = await start(kernels, einstein, name)
        cell = {**EMPTY_NB["cells"][0], "id": "from-kernel", "source": "# written by a kernel"}
        out = await kernel.run_ok(
            f"""
import json, fsspec
with fsspec.open("cs3://./{name}") as f:
    nb = json.load(f)
nb["cells"].append(json.loads({json.dumps(json.dumps(cell))}))
with fsspec.open("cs3://./{name}", "w") as f:
    json.dump(nb, f)
print("written through the hub:", fsspec.filesystem("cs3").hub_writes)
"""
        )
        assert out.strip() == "written through the hub: 1"
        await room.wait_for(lambda: "# written by a kernel" in room.sources(), timeout=30)
        assert room.sources()[0].startswith("live edit")  # the live edit is kept
    finally:
        await room.close()


# ------------------------------------------------------------------ token refresh


@pytest.fixture(scope="module")
def short_tokens(
    tmp_path_factory: pytest.TempPathFactory, revad: RevadHandle
) -> Iterator[DevStack]:
    """A revad whose tokens live 4 s (reva accepts them 5 s longer), hub and einstein's server."""
    work = tmp_path_factory.mktemp("short")
    handle = start_revad(work / "revad", binary=revad.binary, token_expires=4)
    try:
        with running_stack(work / "stack", revad=handle, users=("einstein",)) as stack:
            yield stack
    finally:
        handle.stop()


async def test_token_refresh_during_a_long_read(
    short_tokens: DevStack, kernels: list[Kernel], tmp_path: Path
) -> None:
    einstein = short_tokens["einstein"]
    name = new_name("big", ".bin")
    blob = hashlib.sha256(b"seed").digest() * (3 * 2**20 // 32)  # 3 MiB
    storage = CS3Storage(short_tokens.revad.gateway)
    try:
        token = await storage.authenticate("einstein", USERS["einstein"][0])
        await storage.create(token, f"{home_path('einstein')}/{name}", blob)
    finally:
        await storage.aclose()
    put_notebook(einstein, "reader.ipynb")
    kernel = await start(kernels, einstein, "reader.ipynb")
    out = await kernel.run_ok(
        f"""
import asyncio, hashlib, os, time, fsspec
from storage_bridge.cs3 import CS3Storage
from storage_bridge.errors import Unauthenticated
token_file = os.environ["CS3_TOKEN_FILE"]
first = open(token_file).read().strip()
f = fsspec.open("cs3://./{name}", "rb", block_size=256 * 1024).open()
h = hashlib.sha256(f.read(100_000))
# wait until the server refreshed the token file AND the first token is refused by reva
check = CS3Storage(os.environ["CS3_GATEWAY"], token_cache_seconds=0)
deadline = time.monotonic() + 60
while True:
    assert time.monotonic() < deadline, "the first token never expired"
    if open(token_file).read().strip() != first:
        try:
            await check.whoami(first)
        except Unauthenticated:
            break
    await asyncio.sleep(0.3)
await check.aclose()
while chunk := f.read(300_000):
    h.update(chunk)
f.close()
print(h.hexdigest())
""",
        timeout=120,
    )
    assert out.strip() == hashlib.sha256(blob).hexdigest()
