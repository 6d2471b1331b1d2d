"""The shared storage contract against a real revad (reva v2.27.7, ocis/decomposedfs)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from devkit.revad.launcher import USERS, RevadHandle, home_path
from storage_bridge.cs3 import CS3Storage
from tests.storage_bridge.contract import StorageContract

pytestmark = pytest.mark.revad


class TestCS3Contract(StorageContract):
    @pytest.fixture
    async def storage(self, revad: RevadHandle) -> AsyncIterator[CS3Storage]:
        storage = CS3Storage(revad.gateway)
        yield storage
        await storage.aclose()

    @pytest.fixture
    async def token(self, storage: CS3Storage) -> str:
        return await storage.authenticate("einstein", USERS["einstein"][0])

    @pytest.fixture
    async def workdir(self, storage: CS3Storage, token: str) -> str:
        path = f"{home_path('einstein')}/t-{uuid.uuid4()}"
        await storage.mkdir(token, path)
        return path
