"""CS3 file versions against a real revad (reva v2.27.7 decomposedfs keeps one per write)."""

from __future__ import annotations

import uuid

import pytest

from devkit.revad.launcher import home_path
from storage_bridge.cs3 import CS3Storage
from storage_bridge.cs3_versions import list_versions, restore_version
from tests.revad.sharing import Tokens

pytestmark = pytest.mark.revad


async def test_versions_are_listed_with_dates_and_restored(
    cs3_storage: CS3Storage, cs3_tokens: Tokens
) -> None:
    token = cs3_tokens.einstein
    path = f"{home_path('einstein')}/versions-{uuid.uuid4().hex[:6]}.txt"
    await cs3_storage.create(token, path, b"first")
    _, etag = await cs3_storage.read(token, path)
    await cs3_storage.write(token, path, b"second", if_match=etag)
    _, etag = await cs3_storage.read(token, path)
    await cs3_storage.write(token, path, b"third", if_match=etag)
    versions = await list_versions(cs3_storage, token, path)
    assert len(versions) >= 2, versions
    assert all(v.mtime > 1_600_000_000 for v in versions)
    assert [v.mtime for v in versions] == sorted(v.mtime for v in versions)
    await restore_version(cs3_storage, token, path, versions[0].key)
    data, _ = await cs3_storage.read(token, path)
    assert data == b"first"
