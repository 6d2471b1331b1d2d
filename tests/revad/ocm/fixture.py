"""pytest plugin: two real Reva sites federated through OCM, one pair per test session.

Request the session-scoped ``ocm_sites`` fixture (a ``(site_a, site_b)`` pair of
``devkit.revad.ocm.sites.Site``). The binary comes from ``tests.revad.fixture`` (same build, same
``CS3COLLAB_REVAD_BINARY``, same skip-unless-CI rule when it cannot be built).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from devkit.revad.ocm.sites import Site, start_sites
from tests.revad import fixture as one_site

__all__ = ["ocm_sites"]


@pytest.fixture(scope="session")
def ocm_sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Site, Site]]:
    binary = one_site._ensure_built()
    if binary is None:
        message = f"revad could not be built: {one_site._build.get('error')}"
        if one_site._in_ci():
            pytest.fail(message)
        pytest.skip(message)
    a, b = start_sites(
        tmp_path_factory.mktemp("revad-ocm"),
        binary=binary,
        log_level=os.environ.get("CS3COLLAB_REVAD_LOG_LEVEL", "info"),
    )
    try:
        yield a, b
    finally:
        a.stop()
        b.stop()
