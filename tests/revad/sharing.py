"""Fixtures for tests that need users and a shared notebook on the real revad.

einstein owns a notebook and shares it with marie (editor) and richard (viewer); both accept.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from devkit.revad.launcher import USERS, RevadHandle, home_path
from storage_bridge.cs3 import CS3Storage
from storage_bridge.cs3.shares import (
    accept_received_share,
    create_share,
    list_received_shares,
    received_share_path,
)
from storage_bridge.types import Resource

EMPTY_NB = b'{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}\n'


@pytest.fixture
async def cs3_storage(revad: RevadHandle) -> AsyncIterator[CS3Storage]:
    storage = CS3Storage(revad.gateway)
    yield storage
    await storage.aclose()


@dataclass
class Tokens:
    einstein: str
    marie: str
    richard: str
    admin: str


@pytest.fixture
async def cs3_tokens(cs3_storage: CS3Storage) -> Tokens:
    logins = {name: await cs3_storage.authenticate(name, USERS[name][0]) for name in USERS}
    return Tokens(**logins)


@dataclass
class Shared:
    """einstein's notebook shared with marie (editor) and richard (viewer), both accepted."""

    owner: Resource
    marie_path: str
    richard_path: str
    marie_share: str
    richard_share: str


@pytest.fixture
async def cs3_shared(cs3_storage: CS3Storage, cs3_tokens: Tokens) -> Shared:
    storage, tokens = cs3_storage, cs3_tokens
    name = f"nb-{uuid.uuid4().hex[:8]}.ipynb"
    owner = await storage.create(tokens.einstein, f"{home_path('einstein')}/{name}", EMPTY_NB)
    to_marie = await create_share(storage, tokens.einstein, owner.path, "marie", "editor")
    to_richard = await create_share(
        storage, tokens.einstein, owner.id, USERS["richard"][1], "viewer"
    )
    assert (to_marie.role, to_richard.role) == ("editor", "viewer")
    assert to_marie.resource_id == owner.id
    assert to_marie.grantee == USERS["marie"][1]

    paths = {}
    for user, share in (("marie", to_marie), ("richard", to_richard)):
        token = getattr(tokens, user)
        received = {r.share.id: r for r in await list_received_shares(storage, token)}
        assert received[share.id].state == "pending"
        assert received[share.id].share.resource_id == owner.id
        accepted = await accept_received_share(storage, token, share.id)
        assert accepted.state == "accepted"
        assert accepted.mount_point
        paths[user] = received_share_path(storage, USERS[user][1], accepted.mount_point)
    return Shared(owner, paths["marie"], paths["richard"], to_marie.id, to_richard.id)
