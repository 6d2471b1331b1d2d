"""Shares through a real revad: sharees see the owner's resource under their own path, with the
same resource id (so the hub puts them in one room) and their role's permissions."""

from __future__ import annotations

import pytest

from devkit.revad.launcher import USERS, RevadHandle, home_path
from storage_bridge.cs3 import CS3Settings, CS3Storage
from storage_bridge.cs3.shares import (
    find_users,
    get_user,
    list_shares,
    remove_share,
)
from storage_bridge.errors import Locked, NotFound, PermissionDenied
from tests.revad.sharing import Shared, Tokens
from tests.storage_bridge.contract import APP, NB, new_lock_id

pytestmark = pytest.mark.revad


# Short local names for the plugin fixtures of tests/revad/sharing.py.
@pytest.fixture
def storage(cs3_storage: CS3Storage) -> CS3Storage:
    return cs3_storage


@pytest.fixture
def tokens(cs3_tokens: Tokens) -> Tokens:
    return cs3_tokens


@pytest.fixture
def shared(cs3_shared: Shared) -> Shared:
    return cs3_shared


async def test_editor_sees_same_id_and_may_write(
    storage: CS3Storage, tokens: Tokens, shared: Shared
) -> None:
    assert shared.marie_path.startswith(f"{home_path('marie')}/Shares/")
    st = await storage.stat(tokens.marie, shared.marie_path)
    assert st.id == shared.owner.id
    assert st.path == shared.marie_path
    assert st.permissions.write
    assert st.permissions.read
    assert st.etag == shared.owner.etag
    assert (await storage.stat(tokens.marie, shared.owner.id)).id == shared.owner.id

    data, etag = await storage.read(tokens.marie, shared.marie_path)
    assert (data, etag) == (NB, shared.owner.etag)
    new = await storage.write(tokens.marie, shared.marie_path, b"by marie", if_match=etag)
    # The owner sees marie's write under his own path.
    assert await storage.read(tokens.einstein, shared.owner.path) == (b"by marie", new)


async def test_viewer_sees_same_id_and_may_not_write(
    storage: CS3Storage, tokens: Tokens, shared: Shared
) -> None:
    st = await storage.stat(tokens.richard, shared.richard_path)
    assert st.id == shared.owner.id
    assert st.permissions.read
    assert not st.permissions.write
    assert (await storage.read(tokens.richard, shared.richard_path))[0] == NB
    with pytest.raises(PermissionDenied):
        await storage.write(tokens.richard, shared.richard_path, b"by richard")
    with pytest.raises((PermissionDenied, NotFound)):
        await storage.set_lock(
            tokens.richard, shared.richard_path, lock_id="r", app_name=APP, expires_in=60
        )
    assert (await storage.read(tokens.einstein, shared.owner.path))[0] == NB


async def test_stranger_gets_nothing(storage: CS3Storage, tokens: Tokens, shared: Shared) -> None:
    with pytest.raises((NotFound, PermissionDenied)):
        await storage.stat(tokens.admin, shared.owner.id)
    with pytest.raises((NotFound, PermissionDenied)):
        await storage.stat(tokens.admin, shared.owner.path)
    with pytest.raises((NotFound, PermissionDenied)):
        await storage.read(tokens.admin, shared.owner.id)
    # Not even through the sharee's path.
    with pytest.raises((NotFound, PermissionDenied)):
        await storage.stat(tokens.admin, shared.marie_path)


async def test_shares_folder_lists_canonical_ids(
    storage: CS3Storage, tokens: Tokens, shared: Shared
) -> None:
    # Reva lists received shares with share-jail ids; the backend maps them to the real id.
    listing = await storage.list(tokens.marie, f"{home_path('marie')}/Shares")
    mine = [r for r in listing if r.path == shared.marie_path]
    assert len(mine) == 1
    assert mine[0].id == shared.owner.id
    assert mine[0].permissions.write


async def test_list_shares_of_a_resource(
    storage: CS3Storage, tokens: Tokens, shared: Shared
) -> None:
    shares = await list_shares(storage, tokens.einstein, shared.owner.path)
    assert {(s.grantee, s.role) for s in shares} == {
        (USERS["marie"][1], "editor"),
        (USERS["richard"][1], "viewer"),
    }
    await remove_share(storage, tokens.einstein, shared.richard_share)
    shares = await list_shares(storage, tokens.einstein, shared.owner.id)
    assert [s.grantee for s in shares] == [USERS["marie"][1]]
    with pytest.raises((NotFound, PermissionDenied)):
        await storage.stat(tokens.richard, shared.owner.id)


async def test_locks_across_users(storage: CS3Storage, tokens: Tokens, shared: Shared) -> None:
    lid = new_lock_id()
    lock = await storage.set_lock(
        tokens.einstein, shared.owner.path, lock_id=lid, app_name=APP, expires_in=60
    )
    assert lock.user == USERS["einstein"][1]
    st = await storage.stat(tokens.marie, shared.marie_path)
    assert st.lock is not None and st.lock.lock_id == lid
    with pytest.raises(Locked):
        await storage.write(tokens.marie, shared.marie_path, b"no lock id")
    # Reva compares only the lock id on writes: an editor holding the id may write ...
    etag = await storage.write(tokens.marie, shared.marie_path, b"with lock id", lock_id=lid)
    assert await storage.read(tokens.einstein, shared.owner.id) == (b"with lock id", etag)
    # ... but refresh/unlock of a lock that names a user are reserved to that user.
    with pytest.raises(Locked):
        await storage.refresh_lock(
            tokens.marie, shared.marie_path, lock_id=lid, app_name=APP, expires_in=60
        )
    with pytest.raises(Locked):
        await storage.unlock(tokens.marie, shared.marie_path, lock_id=lid, app_name=APP)
    await storage.unlock(tokens.einstein, shared.owner.path, lock_id=lid, app_name=APP)


async def test_userless_locks_can_be_kept_by_any_editor(
    revad: RevadHandle, tokens: Tokens, shared: Shared
) -> None:
    storage = CS3Storage(CS3Settings(gateway=revad.gateway, lock_with_user=False))
    try:
        lid = new_lock_id()
        lock = await storage.set_lock(
            tokens.einstein, shared.owner.id, lock_id=lid, app_name=APP, expires_in=60
        )
        assert lock.user == ""
        await storage.refresh_lock(
            tokens.marie, shared.marie_path, lock_id=lid, app_name=APP, expires_in=120
        )
        with pytest.raises(Locked):
            await storage.refresh_lock(
                tokens.marie, shared.marie_path, lock_id=lid, app_name="other", expires_in=60
            )
        await storage.unlock(tokens.marie, shared.marie_path, lock_id=lid, app_name=APP)
        assert await storage.get_lock(tokens.einstein, shared.owner.id) is None
    finally:
        await storage.aclose()


async def test_find_and_get_users(storage: CS3Storage, tokens: Tokens) -> None:
    found = await find_users(storage, tokens.einstein, "mar")
    assert [u.username for u in found] == ["marie"]
    assert found[0].id == USERS["marie"][1]
    assert (await get_user(storage, tokens.einstein, "richard")).id == USERS["richard"][1]
    by_id = await get_user(storage, tokens.einstein, USERS["richard"][1])
    assert by_id.username == "richard"
    with pytest.raises(NotFound):
        await get_user(storage, tokens.einstein, "nobody")
