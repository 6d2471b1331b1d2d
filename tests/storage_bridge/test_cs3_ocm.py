"""OCM between two real Reva sites (tests/revad/ocm): the invite flow and federated shares,
through ``storage_bridge.cs3_ocm`` against each site's own gateway."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from storage_bridge import cs3_ocm
from storage_bridge.cs3 import CS3Storage
from storage_bridge.errors import NotFound
from tests.revad.ocm.sites import Site

pytestmark = pytest.mark.revad

NB = b'{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}\n'


@dataclass
class Mesh:
    a: Site
    b: Site
    at_a: CS3Storage  # a client of site A's gateway
    at_b: CS3Storage
    einstein: str  # token at A
    lise: str  # token at B
    niels: str  # token at B


@pytest.fixture
async def mesh(ocm_sites: tuple[Site, Site]) -> AsyncIterator[Mesh]:
    a, b = ocm_sites
    at_a, at_b = CS3Storage(a.gateway), CS3Storage(b.gateway)
    tokens = [
        await at_a.authenticate("einstein", a.users["einstein"][0]),
        await at_b.authenticate("lise", b.users["lise"][0]),
        await at_b.authenticate("niels", b.users["niels"][0]),
    ]
    yield Mesh(a, b, at_a, at_b, *tokens)
    await at_a.aclose()
    await at_b.aclose()


async def befriend(m: Mesh, token_b: str) -> tuple[cs3_ocm.Contact, cs3_ocm.Contact]:
    """einstein invites, the site-B user accepts; (B user as seen at A, einstein as seen at B)."""
    invite = await cs3_ocm.generate_invite(m.at_a, m.einstein, "co-edit our notebook")
    einstein_at_b = await cs3_ocm.accept_invite(m.at_b, token_b, invite.token, m.a.domain)
    me_b = await m.at_b.whoami(token_b)
    at_a = {c.display_name: c for c in await cs3_ocm.contacts(m.at_a, m.einstein)}
    return at_a[me_b.display_name], einstein_at_b


async def test_invite_flow_makes_both_contacts(mesh: Mesh) -> None:
    invite = await cs3_ocm.generate_invite(mesh.at_a, mesh.einstein, "for lise")
    assert invite.token
    einstein = await cs3_ocm.accept_invite(mesh.at_b, mesh.lise, invite.token, mesh.a.domain)
    # B sees einstein as a federated user of site A ...
    assert einstein.site == mesh.a.domain
    assert einstein.display_name == "Albert Einstein"
    at_b = await cs3_ocm.contacts(mesh.at_b, mesh.lise)
    assert [(c.id, c.site) for c in at_b] == [(einstein.id, mesh.a.domain)]
    # ... and A sees lise as a federated user of site B.
    at_a = await cs3_ocm.contacts(mesh.at_a, mesh.einstein)
    lise = [c for c in at_a if c.display_name == "Lise Meitner"]
    assert len(lise) == 1 and lise[0].site == mesh.b.domain
    assert await cs3_ocm.find_contact(mesh.at_a, mesh.einstein, lise[0].address) == lise[0]
    # niels accepted nothing: he has no contacts, and einstein's token is single-use per user.
    assert await cs3_ocm.contacts(mesh.at_b, mesh.niels) == []


async def test_unknown_site_and_bad_token_are_refused(mesh: Mesh) -> None:
    with pytest.raises(NotFound):
        await cs3_ocm.accept_invite(mesh.at_b, mesh.niels, "whatever", "nowhere.example")
    with pytest.raises(Exception) as err:  # reva: NOT_FOUND / INVALID for an unknown token
        await cs3_ocm.accept_invite(mesh.at_b, mesh.niels, uuid.uuid4().hex, mesh.a.domain)
    assert type(err.value).__name__ in ("NotFound", "InvalidArgument", "PermissionDenied")
    assert await cs3_ocm.contacts(mesh.at_b, mesh.niels) == []
