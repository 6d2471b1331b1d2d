"""Helpers for tests against the topology of ``tests.jupyter_cs3.devstack``."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from tests.jupyter_cs3.devstack import DevStack
from tests.jupyter_cs3.jupyterproc import JupyterProcess

EMPTY_NB: dict[str, Any] = {
    "cells": [
        {
            "cell_type": "code",
            "execution_count": None,
            "id": "first",
            "metadata": {},
            "outputs": [],
            "source": "",
        }
    ],
    "metadata": {},
    "nbformat": 4,
    "nbformat_minor": 5,
}


Stack = DevStack


def new_name(prefix: str = "nb", ext: str = ".ipynb") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}{ext}"


def put_notebook(server: JupyterProcess, path: str, nb: dict[str, Any] | None = None) -> None:
    r = server.request(
        "PUT", f"/api/contents/{path}", json={"type": "notebook", "content": nb or EMPTY_NB}
    )
    assert r.status_code in (200, 201), r.text


def share(owner: JupyterProcess, path: str, grantee: str, role: str = "editor") -> dict[str, Any]:
    r = owner.request(
        "POST", "/api/cs3/shares", json={"path": path, "grantee": grantee, "role": role}
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


def accept_pending(server: JupyterProcess) -> list[dict[str, Any]]:
    """Accept every pending received share through the REST API (what the Shares panel does)."""
    r = server.request("GET", "/api/cs3/shares")
    assert r.status_code == 200, r.text
    accepted = []
    for received in r.json()["with_me"]:
        if received["state"] == "pending":
            a = server.request(
                "PATCH", f"/api/cs3/shares/received/{received['id']}", json={"state": "accepted"}
            )
            assert a.status_code == 200, a.text
            accepted.append(dict(a.json()))
    return accepted


def open_from_shares(server: JupyterProcess, name: str) -> str:
    """The contents path of a received share (accepting what is pending first)."""
    accept_pending(server)
    r = server.contents("Shares")
    assert r.status_code == 200, r.text
    names = {c["name"]: c["path"] for c in r.json()["content"]}
    assert name in names, f"{name} not in {sorted(names)}"
    return str(names[name])


def dumps(nb: dict[str, Any]) -> bytes:
    return json.dumps(nb).encode()


def workdir_of(server: JupyterProcess) -> Path:
    return server.workdir
