"""The storage contract (ARCHITECTURE §8) as a reusable test class.

Subclass ``StorageContract`` and supply three fixtures:

- ``storage``: a ``Storage``;
- ``token``: a token valid for it (the user must be able to write in ``workdir``);
- ``workdir``: a fresh, empty, writable container path in that storage (e.g. "/t-<uuid>").

Only the ``Storage`` protocol is used here, so the same tests run against the local folder and a
real revad. Assertions stay within what ARCHITECTURE §8/§5 and the protocol docstrings promise.
Things that differ between backends are deliberately NOT asserted here and belong in the
backend's own tests, e.g.:

- etag format (local: sha256 hex; reva: opaque, quoted) and whether rewriting the same bytes
  changes it;
- ``set_lock`` again by the current holder (local: refresh; reva v2: refused);
- a ``lock_id`` sent for a file that is not locked (local: accepted; reva v2: CODE_ABORTED);
- a wrong ``app_name`` on refresh/unlock (local: ``Locked``; reva v2: permission denied);
- what the id of a deleted resource resolves to (reva may still find it in the trash).

Lock refusals are asserted as ``Locked``: reva reports them as CODE_LOCKED, CODE_ABORTED or
CODE_FAILED_PRECONDITION and ``PreconditionFailed`` is itself a ``Locked``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

import pytest

from storage_bridge.base import Storage
from storage_bridge.errors import (
    AlreadyExists,
    Locked,
    NotFound,
    PreconditionFailed,
)
from storage_bridge.types import ResourceId

APP = "cs3collab"
NB = b'{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}\n'


async def wait_until(
    predicate: Callable[[], Awaitable[bool]], *, timeout: float, interval: float = 0.1
) -> None:
    """Poll ``predicate`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)


def new_lock_id() -> str:
    return f"test-{uuid.uuid4()}"


class StorageContract:
    """Contract tests every ``Storage`` backend must pass (not collected by itself)."""

    # Expiry used by the expired-lock test, and how long to wait for the lock to disappear.
    # Backends whose clocks or lock store are coarser may raise these in a subclass.
    short_lock_seconds: float = 1.0
    lock_expiry_timeout: float = 15.0

    # ---- identity ----

    async def test_whoami_returns_a_user(self, storage: Storage, token: str) -> None:
        user = await storage.whoami(token)
        assert user.id
        assert user.username

    # ---- create / read / stat / write ----

    async def test_create_then_read_and_stat(
        self, storage: Storage, token: str, workdir: str
    ) -> None:
        path = f"{workdir}/a.ipynb"
        created = await storage.create(token, path, NB)
        assert created.name == "a.ipynb"
        assert not created.is_dir
        assert created.size == len(NB)
        assert created.etag

        data, etag = await storage.read(token, path)
        assert data == NB
        assert etag == created.etag

        st = await storage.stat(token, path)
        assert st.id == created.id
        assert st.etag == etag
        assert st.size == len(NB)
        assert st.lock is None

    async def test_stat_container(self, storage: Storage, token: str, workdir: str) -> None:
        st = await storage.stat(token, workdir)
        assert st.is_dir

    async def test_stat_and_read_by_id(self, storage: Storage, token: str, workdir: str) -> None:
        created = await storage.create(token, f"{workdir}/by-id.ipynb", NB)
        st = await storage.stat(token, created.id)
        assert st.id == created.id
        assert st.name == "by-id.ipynb"
        data, etag = await storage.read(token, created.id)
        assert (data, etag) == (NB, created.etag)

    async def test_write_changes_etag_keeps_id(
        self, storage: Storage, token: str, workdir: str
    ) -> None:
        path = f"{workdir}/w.ipynb"
        created = await storage.create(token, path, b"one")
        etag = await storage.write(token, path, b"two")
        assert etag != created.etag
        st = await storage.stat(token, path)
        assert st.etag == etag
        assert st.id == created.id
        assert st.size == 3
        assert await storage.read(token, path) == (b"two", etag)

    async def test_write_by_id(self, storage: Storage, token: str, workdir: str) -> None:
        created = await storage.create(token, f"{workdir}/wid.ipynb", b"one")
        etag = await storage.write(token, created.id, b"two", if_match=created.etag)
        assert await storage.read(token, created.id) == (b"two", etag)

    async def test_write_if_match_current_succeeds(
        self, storage: Storage, token: str, workdir: str
    ) -> None:
        path = f"{workdir}/cas.ipynb"
        created = await storage.create(token, path, b"v1")
        e2 = await storage.write(token, path, b"v2", if_match=created.etag)
        e3 = await storage.write(token, path, b"v3", if_match=e2)
        assert await storage.read(token, path) == (b"v3", e3)

    async def test_write_if_match_stale_is_refused(
        self, storage: Storage, token: str, workdir: str
    ) -> None:
        path = f"{workdir}/stale.ipynb"
        created = await storage.create(token, path, b"v1")
        e2 = await storage.write(token, path, b"v2 by someone else")
        with pytest.raises(PreconditionFailed):
            await storage.write(token, path, b"v2 by us", if_match=created.etag)
        assert await storage.read(token, path) == (b"v2 by someone else", e2)

    async def test_create_existing_is_refused(
        self, storage: Storage, token: str, workdir: str
    ) -> None:
        path = f"{workdir}/twice.ipynb"
        await storage.create(token, path, b"first")
        with pytest.raises(AlreadyExists):
            await storage.create(token, path, b"second")
        data, _ = await storage.read(token, path)
        assert data == b"first"

    async def test_missing_resources_are_not_found(
        self, storage: Storage, token: str, workdir: str
    ) -> None:
        missing = f"{workdir}/missing.ipynb"
        with pytest.raises(NotFound):
            await storage.stat(token, missing)
        with pytest.raises(NotFound):
            await storage.read(token, missing)
        # An id of the right storage/space that was never handed out.
        known = (await storage.stat(token, workdir)).id
        unknown = ResourceId(
            storage_id=known.storage_id, opaque_id=str(uuid.uuid4()), space_id=known.space_id
        )
        with pytest.raises(NotFound):
            await storage.stat(token, unknown)

    # ---- containers ----

    async def test_mkdir_and_list(self, storage: Storage, token: str, workdir: str) -> None:
        sub = await storage.mkdir(token, f"{workdir}/sub")
        assert sub.is_dir
        with pytest.raises(AlreadyExists):
            await storage.mkdir(token, f"{workdir}/sub")
        a = await storage.create(token, f"{workdir}/a.ipynb", b"a")
        b = await storage.create(token, f"{workdir}/b.txt", b"bb")

        children = {r.name: r for r in await storage.list(token, workdir)}
        assert set(children) == {"sub", "a.ipynb", "b.txt"}
        assert children["sub"].is_dir
        assert not children["a.ipynb"].is_dir
        assert children["a.ipynb"].id == a.id
        assert children["b.txt"].id == b.id
        assert children["b.txt"].size == 2
        assert await storage.list(token, f"{workdir}/sub") == []

    async def test_move_keeps_id(self, storage: Storage, token: str, workdir: str) -> None:
        created = await storage.create(token, f"{workdir}/old.ipynb", NB)
        moved = await storage.move(token, f"{workdir}/old.ipynb", f"{workdir}/new.ipynb")
        assert moved.id == created.id
        assert moved.name == "new.ipynb"
        with pytest.raises(NotFound):
            await storage.stat(token, f"{workdir}/old.ipynb")
        st = await storage.stat(token, f"{workdir}/new.ipynb")
        assert st.id == created.id
        assert (await storage.read(token, f"{workdir}/new.ipynb"))[0] == NB

    async def test_stat_by_id_follows_move(
        self, storage: Storage, token: str, workdir: str
    ) -> None:
        await storage.mkdir(token, f"{workdir}/dest")
        created = await storage.create(token, f"{workdir}/wander.ipynb", NB)
        await storage.move(token, created.id, f"{workdir}/dest/wandered.ipynb")
        st = await storage.stat(token, created.id)
        assert st.id == created.id
        assert st.name == "wandered.ipynb"
        assert st.path.endswith("/dest/wandered.ipynb")
        assert [r.name for r in await storage.list(token, f"{workdir}/dest")] == ["wandered.ipynb"]

    async def test_delete(self, storage: Storage, token: str, workdir: str) -> None:
        path = f"{workdir}/doomed.ipynb"
        await storage.create(token, path, NB)
        await storage.delete(token, path)
        with pytest.raises(NotFound):
            await storage.stat(token, path)
        assert [r.name for r in await storage.list(token, workdir)] == []
        with pytest.raises(NotFound):
            await storage.delete(token, path)

    # ---- locks ----

    async def test_lock_lifecycle(self, storage: Storage, token: str, workdir: str) -> None:
        path = f"{workdir}/locked.ipynb"
        await storage.create(token, path, NB)
        assert await storage.get_lock(token, path) is None

        lid = new_lock_id()
        before = time.time()
        lock = await storage.set_lock(token, path, lock_id=lid, app_name=APP, expires_in=60)
        assert (lock.lock_id, lock.app_name) == (lid, APP)
        assert before + 50 <= lock.expiration <= time.time() + 70
        me = await storage.whoami(token)
        assert lock.user in ("", me.id)

        got = await storage.get_lock(token, path)
        assert got is not None
        assert (got.lock_id, got.app_name) == (lid, APP)
        st = await storage.stat(token, path)
        assert st.lock is not None
        assert st.lock.lock_id == lid

        refreshed = await storage.refresh_lock(
            token, path, lock_id=lid, app_name=APP, expires_in=600
        )
        assert refreshed.lock_id == lid
        assert refreshed.expiration > lock.expiration + 60
        got = await storage.get_lock(token, path)
        assert got is not None
        assert got.expiration > lock.expiration + 60

        await storage.unlock(token, path, lock_id=lid, app_name=APP)
        assert await storage.get_lock(token, path) is None
        assert (await storage.stat(token, path)).lock is None

    async def test_lock_held_by_another_is_refused(
        self, storage: Storage, token: str, workdir: str
    ) -> None:
        path = f"{workdir}/contended.ipynb"
        await storage.create(token, path, NB)
        ours, theirs = new_lock_id(), new_lock_id()
        await storage.set_lock(token, path, lock_id=ours, app_name=APP, expires_in=60)

        with pytest.raises(Locked):
            await storage.set_lock(token, path, lock_id=theirs, app_name=APP, expires_in=60)
        with pytest.raises(Locked):
            await storage.refresh_lock(token, path, lock_id=theirs, app_name=APP, expires_in=60)
        with pytest.raises(Locked):
            await storage.unlock(token, path, lock_id=theirs, app_name=APP)

        got = await storage.get_lock(token, path)
        assert got is not None
        assert got.lock_id == ours
        await storage.unlock(token, path, lock_id=ours, app_name=APP)

    async def test_refresh_or_unlock_without_lock_is_refused(
        self, storage: Storage, token: str, workdir: str
    ) -> None:
        path = f"{workdir}/unlocked.ipynb"
        await storage.create(token, path, NB)
        lid = new_lock_id()
        await storage.set_lock(token, path, lock_id=lid, app_name=APP, expires_in=60)
        await storage.unlock(token, path, lock_id=lid, app_name=APP)
        # "Locked if it is gone" (Storage.refresh_lock): a released lock cannot be revived.
        with pytest.raises(Locked):
            await storage.refresh_lock(token, path, lock_id=lid, app_name=APP, expires_in=60)
        with pytest.raises(Locked):
            await storage.unlock(token, path, lock_id=lid, app_name=APP)
        assert await storage.get_lock(token, path) is None

    async def test_write_while_locked(self, storage: Storage, token: str, workdir: str) -> None:
        path = f"{workdir}/guarded.ipynb"
        created = await storage.create(token, path, b"v1")
        lid = new_lock_id()
        await storage.set_lock(token, path, lock_id=lid, app_name=APP, expires_in=60)

        with pytest.raises(Locked):
            await storage.write(token, path, b"intruder")
        with pytest.raises(Locked):
            await storage.write(token, path, b"intruder", lock_id=new_lock_id())
        with pytest.raises(Locked):
            await storage.write(token, path, b"intruder", if_match=created.etag)
        # A write lock keeps the file readable by everyone.
        assert await storage.read(token, path) == (b"v1", created.etag)

        etag = await storage.write(token, path, b"v2", lock_id=lid)
        etag = await storage.write(token, path, b"v3", if_match=etag, lock_id=lid)
        assert await storage.read(token, path) == (b"v3", etag)
        await storage.unlock(token, path, lock_id=lid, app_name=APP)

        # Released: anyone may write again.
        await storage.write(token, path, b"v4")

    async def test_move_and_delete_refused_while_locked(
        self, storage: Storage, token: str, workdir: str
    ) -> None:
        path = f"{workdir}/pinned.ipynb"
        created = await storage.create(token, path, NB)
        lid = new_lock_id()
        await storage.set_lock(token, path, lock_id=lid, app_name=APP, expires_in=60)

        with pytest.raises(Locked):
            await storage.delete(token, path)
        with pytest.raises(Locked):
            await storage.delete(token, path, lock_id=new_lock_id())
        with pytest.raises(Locked):
            await storage.move(token, path, f"{workdir}/elsewhere.ipynb")
        st = await storage.stat(token, path)
        assert st.id == created.id
        with pytest.raises(NotFound):
            await storage.stat(token, f"{workdir}/elsewhere.ipynb")

        moved = await storage.move(token, path, f"{workdir}/elsewhere.ipynb", lock_id=lid)
        assert moved.id == created.id
        await storage.delete(token, f"{workdir}/elsewhere.ipynb", lock_id=lid)
        with pytest.raises(NotFound):
            await storage.stat(token, f"{workdir}/elsewhere.ipynb")

    async def test_expired_lock_is_ignored(
        self, storage: Storage, token: str, workdir: str
    ) -> None:
        path = f"{workdir}/expiring.ipynb"
        await storage.create(token, path, b"v1")
        stale = new_lock_id()
        await storage.set_lock(
            token, path, lock_id=stale, app_name=APP, expires_in=self.short_lock_seconds
        )

        async def lock_gone() -> bool:
            return await storage.get_lock(token, path) is None

        await wait_until(lock_gone, timeout=self.lock_expiry_timeout)
        assert (await storage.stat(token, path)).lock is None

        # Nobody holds it any more: a plain write and a new holder both succeed.
        etag = await storage.write(token, path, b"v2")
        assert await storage.read(token, path) == (b"v2", etag)
        fresh = new_lock_id()
        lock = await storage.set_lock(token, path, lock_id=fresh, app_name=APP, expires_in=60)
        assert lock.lock_id == fresh
        with pytest.raises(Locked):
            await storage.refresh_lock(token, path, lock_id=stale, app_name=APP, expires_in=60)
        await storage.unlock(token, path, lock_id=fresh, app_name=APP)
