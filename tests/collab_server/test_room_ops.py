"""HTTP room operations for @cs3collab/lab (collab_server/room_ops.py): work copy, merge
preview, merge with a choice per conflict, on a real hub process (local storage) with a live
Y client on the original."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from collab_server.merge_preview import PreviewError, preview, resolve
from devkit.hubproc import HubProcess, notebook, write_notebook
from devkit.yclient import YClient

FAST = {"CS3COLLAB_WATCH_INTERVAL": "0.2", "CS3COLLAB_UNLOAD_GRACE": "0.5"}


@pytest.fixture
def hub(hubs: Callable[..., HubProcess], tmp_path: Path) -> HubProcess:
    root = tmp_path / "root"
    root.mkdir()
    return hubs(root=root, data_dir=tmp_path / "data", env=FAST)


def _post(hub: HubProcess, op: str, path: str, body: Any = None) -> httpx.Response:
    return httpx.post(f"{hub.http_url}/api/collaboration/{op}/{path}", json=body or {},
                      headers={"Authorization": f"Bearer {hub.token}"}, timeout=30)  # fmt: skip


def _sources(data: bytes | str) -> list[str]:
    return ["".join(c["source"]) for c in json.loads(data)["cells"]]


async def test_work_copy_preview_and_merge_with_choices(hub: HubProcess) -> None:
    path = hub.root / "nb.ipynb"
    write_notebook(path, notebook("a = 1", "b = 2", "c = 3"))
    original = await YClient(hub.room_url(hub.open("nb.ipynb"))).connect()
    made = _post(hub, "work-copy", "nb.ipynb")
    assert made.status_code == 200, made.text
    copy_path = made.json()["path"].lstrip("/")
    assert ".conflict" in copy_path
    copy = json.loads((hub.root / copy_path).read_text())
    copy["cells"][0]["source"] = "a = 10"  # conflicts with the original's edit below
    copy["cells"][1]["source"] = "b = 20"  # merges by itself
    (hub.root / copy_path).write_text(json.dumps(copy))
    original.append_source(0, "00")  # "a = 100"
    await asyncio.sleep(0.5)  # the hub has the original's edit
    seen = _post(hub, "merge-preview", copy_path)
    assert seen.status_code == 200, seen.text
    p = seen.json()
    assert [(c["kind"], c["source"]) for c in p["auto"]] == [("changed", "b = 20")]
    assert [(c["mine"], c["theirs"]) for c in p["conflicts"]] == [("a = 100", "a = 10")]
    cell = p["conflicts"][0]["cellId"]
    bad = _post(hub, "merge-resolved", copy_path, {"choices": {cell: "neither"}})
    assert bad.status_code == 409 and "mine, theirs, both" in bad.json()["message"]
    done = _post(hub, "merge-resolved", copy_path, {"choices": {cell: "both"}})
    assert done.status_code == 200 and done.json()["status"] == "merged", done.text
    want = ["a = 100", "a = 10", "b = 20", "c = 3"]
    await original.wait_for(lambda: original.sources() == want)
    for _ in range(50):
        if _sources(path.read_bytes()) == want:
            break
        await asyncio.sleep(0.1)
    assert _sources(path.read_bytes()) == want
    await original.close()


async def test_not_a_work_copy_and_bad_bodies_are_refused(hub: HubProcess) -> None:
    write_notebook(hub.root / "nb.ipynb", notebook("a = 1"))
    r = _post(hub, "merge-preview", "nb.ipynb")
    assert r.status_code == 400 and "not a work copy" in r.json()["message"]
    r = httpx.post(f"{hub.http_url}/api/collaboration/merge-resolved/nb.ipynb", content=b"[",
                   headers={"Authorization": f"Bearer {hub.token}"})  # fmt: skip
    assert r.status_code == 400
    assert _post(hub, "work-copy", "missing.ipynb").status_code == 404
    r = httpx.post(f"{hub.http_url}/api/collaboration/work-copy/nb.ipynb", json={})
    assert r.status_code == 401


def test_resolve_refuses_choices_for_cells_without_a_conflict() -> None:
    base = json.dumps(notebook("a = 1")).encode()
    with pytest.raises(PreviewError, match="no conflict"):
        resolve(base, base, base, {"nope": "mine"})
    assert preview(base, base, base) == {"auto": [], "conflicts": [], "notes": []}


async def test_merge_after_a_foreign_lock_and_its_write(hub: HubProcess) -> None:
    """The browser flow of issue 14 at the hub: the lock goes to another app, a copy is made,
    the app writes under its lock and leaves, the copy is merged with a choice."""
    from storage_bridge.local import LocalStorage

    path = hub.root / "nb.ipynb"
    write_notebook(path, notebook("a = 1", "b = 2"))
    original = await YClient(hub.room_url(hub.open("nb.ipynb"))).connect()
    local = LocalStorage(hub.root, hub.data_dir)
    try:
        current = await local.get_lock("", "nb.ipynb")
        assert current is not None
        await local.unlock("", "nb.ipynb", lock_id=current.lock_id, app_name=current.app_name)
        await local.set_lock("", "nb.ipynb", lock_id="wopi", app_name="wopi", expires_in=60)
        await original.wait_for(lambda: bool(original.view.ystate.get("locked_by")))
        made = _post(hub, "work-copy", "nb.ipynb")
        assert made.status_code == 200, made.text
        copy_path = made.json()["path"].lstrip("/")
        copy = json.loads((hub.root / copy_path).read_text())
        copy["cells"][0]["source"] = "a = 10"
        copy["cells"][1]["source"] = "b = 20"
        (hub.root / copy_path).write_text(json.dumps(copy))
        data, etag = await local.read("", "nb.ipynb")
        theirs = json.loads(data)
        theirs["cells"][0]["source"] = "a = 100"
        await local.write("", "nb.ipynb", json.dumps(theirs).encode(), if_match=etag,
                          lock_id="wopi")  # fmt: skip
        await original.wait_for(lambda: original.sources() == ["a = 100", "b = 2"])
        refused = _post(hub, "merge-resolved", copy_path, {"choices": {}})
        assert refused.status_code == 409 and "locked" in refused.json()["message"]
        await local.unlock("", "nb.ipynb", lock_id="wopi", app_name="wopi")
        await original.wait_for(lambda: not original.view.ystate.get("locked_by"))
        p = _post(hub, "merge-preview", copy_path).json()
        cell = p["conflicts"][0]["cellId"]
        done = _post(hub, "merge-resolved", copy_path, {"choices": {cell: "theirs"}})
        assert done.status_code == 200, done.text
        await original.wait_for(lambda: original.sources() == ["a = 10", "b = 20"])
    finally:
        await local.aclose()
        await original.close()


def test_external_change_names_the_writer_and_the_cells() -> None:
    from collab_server.room_events import external_change

    base = json.dumps(notebook("a = 1", "b = 2")).encode()
    nb = notebook("a = 1", "b = 3")
    nb["cells"].append({**nb["cells"][0], "id": "new", "source": "c = 4"})
    del nb["cells"][0]
    event = external_change("", base, json.dumps(nb).encode(), 0)
    assert event["who"] == "another application"
    assert sorted((c["kind"], c["cellId"]) for c in event["changes"]) == [
        ("added", "new"), ("changed", "cell-1"), ("deleted", "cell-0")
    ]  # fmt: skip
    assert external_change("wopi", None, b"not json", 1)["changes"] == []
