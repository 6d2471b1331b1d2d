"""pytest plugin: one real revad per test session.

Use it from a conftest (or a test module) with::

    pytest_plugins = ["tests.revad.fixture"]

and request the session-scoped ``revad`` fixture (a ``devkit.revad.launcher.RevadHandle``).

The binary is built (``scripts/revad-build``, cached under ``$CS3COLLAB_CACHE``) once, right after
collection and only if a collected test needs ``revad``, so a cold build does not count against a
test's timeout. If the build fails, tests needing revad are skipped, unless ``CI=true``: then
they fail. A revad that builds but does not start is always an error.

``CS3COLLAB_REVAD_BINARY`` points at a prebuilt binary (no build). ``CS3COLLAB_REVAD_LOG_LEVEL``
sets revad's log level (default ``info``); the log is ``<tmp>/revad*/revad.log``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from devkit.revad.launcher import (
    USERS,
    RevadError,
    RevadHandle,
    build_revad,
    home_path,
    start_revad,
)

__all__ = ["USERS", "home_path", "revad"]

_build: dict[str, Path | str] = {}  # "binary" -> Path | "error" -> message


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _ensure_built() -> Path | None:
    if "binary" in _build:
        binary = _build["binary"]
        assert isinstance(binary, Path)
        return binary
    if "error" in _build:
        return None
    prebuilt = os.environ.get("CS3COLLAB_REVAD_BINARY")
    try:
        if prebuilt:
            binary = Path(prebuilt)
            if not os.access(binary, os.X_OK):
                raise RevadError(f"CS3COLLAB_REVAD_BINARY={prebuilt} is not executable")
        else:
            binary = build_revad()
    except (RevadError, OSError) as exc:
        _build["error"] = str(exc)
        return None
    _build["binary"] = binary
    return binary


def pytest_collection_finish(session: pytest.Session) -> None:
    if any("revad" in getattr(item, "fixturenames", ()) for item in session.items):
        _ensure_built()


@pytest.fixture(scope="session")
def revad(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RevadHandle]:
    binary = _ensure_built()
    if binary is None:
        message = f"revad could not be built: {_build.get('error')}"
        if _in_ci():
            pytest.fail(message)
        pytest.skip(message)
    workdir = tmp_path_factory.mktemp("revad")
    handle = start_revad(
        workdir,
        binary=binary,
        log_level=os.environ.get("CS3COLLAB_REVAD_LOG_LEVEL", "info"),
    )
    try:
        yield handle
    finally:
        handle.stop()
