"""The quick start (``scripts/serve`` = ``python -m jupyter_cs3.quickstart``): the hub and a
JupyterLab with jupyter_cs3 and @cs3collab/lab on a local folder; the printed URL opens
JupyterLab, the hub's own ``/`` says what it is and where JupyterLab is."""

from __future__ import annotations

import json
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from devkit.ports import free_port

REPO = Path(__file__).resolve().parents[2]


@dataclass
class QuickStart:
    proc: subprocess.Popen[str]
    lab_url: str  # printed: http://host:port/lab?token=...
    hub_port: int
    lines: list[str]


def _page_config(html: str) -> dict[str, object]:
    m = re.search(
        r'<script id="jupyter-config-data" type="application/json">(.*?)</script>', html, re.S
    )
    assert m, "no page config in the JupyterLab page"
    data = json.loads(m.group(1))
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory: pytest.TempPathFactory) -> Iterator[QuickStart]:
    root = tmp_path_factory.mktemp("quickstart") / "notebooks"
    shutil.copytree(REPO / "examples" / "notebooks", root)
    lab_port, hub_port = free_port(), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter_cs3.quickstart", "--root", str(root),
         "--port", str(lab_port), "--hub-port", str(hub_port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    lines: list[str] = []
    out: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            out.put(line)

    threading.Thread(target=pump, daemon=True).start()
    url = ""
    deadline = time.monotonic() + 120
    try:
        while not url and time.monotonic() < deadline:
            try:
                line = out.get(timeout=1)
            except queue.Empty:
                assert proc.poll() is None, "quick start exited:\n" + "".join(lines)
                continue
            lines.append(line)
            m = re.search(r"JupyterLab: (http://\S+)", line)
            url = m.group(1) if m else ""
        assert url, "no JupyterLab URL printed:\n" + "".join(lines)
        yield QuickStart(proc, url, hub_port, lines)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(30)


def test_printed_url_opens_jupyterlab_with_the_extension(quickstart: QuickStart) -> None:
    with httpx.Client(follow_redirects=True, timeout=30) as client:
        page = client.get(quickstart.lab_url)
        assert page.status_code == 200
        config = _page_config(page.text)
        names = [e["name"] for e in config["federated_extensions"]]  # type: ignore[attr-defined]
        assert "@cs3collab/lab" in names
        # the stock "Copy Shareable Link" (server URL + token) is switched off
        disabled = config["disabledExtensions"]
        assert "@jupyterlab/filebrowser-extension:share-file" in disabled  # type: ignore[operator]
        assert "@jupyter/collaboration-extension:shared-link" in disabled  # type: ignore[operator]
        token = quickstart.lab_url.split("token=", 1)[1]
        assert token not in page.text, "the Jupyter token is written into the page"
        assert config["token"] == ""
        # the login cookie alone lets the page's API calls through
        me = client.get(quickstart.lab_url.split("/lab", 1)[0] + "/api/cs3/me")
        assert me.status_code == 200 and me.json()["storage"] == "local"
        listing = client.get(quickstart.lab_url.split("/lab", 1)[0] + "/api/contents/")
        assert "visualization.ipynb" in {c["name"] for c in listing.json()["content"]}


def test_hub_root_says_where_jupyterlab_is(quickstart: QuickStart) -> None:
    r = httpx.get(f"http://127.0.0.1:{quickstart.hub_port}/", timeout=10)
    assert r.status_code == 200 and "cs3collab hub" in r.text
    assert quickstart.lab_url.split("?", 1)[0] in r.text
    assert "token" not in r.text.lower()
