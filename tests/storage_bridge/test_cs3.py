"""What only the CS3 backend shows, against a real revad (reva v2.27.7, ocis/decomposedfs)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from devkit.revad.launcher import USERS, RevadHandle, home_path, start_revad
from storage_bridge.base import Storage
from storage_bridge.cs3 import CS3Settings, CS3Storage
from storage_bridge.errors import (
    AlreadyExists,
    InvalidArgument,
    Locked,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
)
from storage_bridge.types import ResourceId
from tests.storage_bridge.contract import APP, NB, new_lock_id

pytestmark = pytest.mark.revad


@pytest.fixture
async def storage(revad: RevadHandle) -> AsyncIterator[CS3Storage]:
    storage = CS3Storage(revad.gateway)
    yield storage
    await storage.aclose()


@pytest.fixture
async def einstein(storage: CS3Storage) -> str:
    return await storage.authenticate("einstein", USERS["einstein"][0])


@pytest.fixture
async def workdir(storage: CS3Storage, einstein: str) -> str:
    path = f"{home_path('einstein')}/cs3-{uuid.uuid4()}"
    await storage.mkdir(einstein, path)
    return path


async def test_is_a_storage(storage: CS3Storage) -> None:
    assert isinstance(storage, Storage)
    assert storage.name == "cs3"


async def test_authenticate_and_whoami(storage: CS3Storage) -> None:
    token = await storage.authenticate("marie", USERS["marie"][0])
    user = await storage.whoami(token)
    assert (user.id, user.username) == (USERS["marie"][1], "marie")
    assert user.display_name == "Marie Curie"
    assert user.idp


async def test_wrong_password_is_unauthenticated(storage: CS3Storage) -> None:
    with pytest.raises(Unauthenticated):
        await storage.authenticate("marie", "wrong")


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c"])
async def test_invalid_token_is_unauthenticated(storage: CS3Storage, token: str) -> None:
    # The reva v2 gateway answers a bad token with e.g. NOT_FOUND; the backend checks tokens.
    with pytest.raises(Unauthenticated):
        await storage.whoami(token)
    with pytest.raises(Unauthenticated):
        await storage.stat(token, home_path("einstein"))
    with pytest.raises(Unauthenticated):
        await storage.read(token, f"{home_path('einstein')}/x")


async def test_token_of_another_instance_is_valid(revad: RevadHandle, einstein: str) -> None:
    other = CS3Storage(revad.gateway)
    try:
        assert (await other.whoami(einstein)).username == "einstein"
    finally:
        await other.aclose()


async def test_etags_are_reva_etags(storage: CS3Storage, einstein: str, workdir: str) -> None:
    created = await storage.create(einstein, f"{workdir}/e.ipynb", NB)
    assert created.etag.startswith('"') and created.etag.endswith('"')
    etag = await storage.write(einstein, f"{workdir}/e.ipynb", b"changed")
    assert etag != created.etag
    assert (await storage.stat(einstein, f"{workdir}/e.ipynb")).etag == etag
    assert created.checksum.startswith("sha1:")


async def test_stat_by_id_reports_an_absolute_path(
    storage: CS3Storage, einstein: str, workdir: str
) -> None:
    await storage.mkdir(einstein, f"{workdir}/sub")
    created = await storage.create(einstein, f"{workdir}/sub/n.ipynb", NB)
    st = await storage.stat(einstein, created.id)
    assert st.path == f"{workdir}/sub/n.ipynb"
    assert st.name == "n.ipynb"
    assert st.permissions.write
    listed = await storage.list(einstein, (await storage.stat(einstein, f"{workdir}/sub")).id)
    assert [r.path for r in listed] == [f"{workdir}/sub/n.ipynb"]
    assert st.id.storage_id and st.id.space_id and st.id.opaque_id
    assert ResourceId.from_file_id(st.id.to_file_id()) == st.id


async def test_paths_are_normalized(storage: CS3Storage, einstein: str, workdir: str) -> None:
    created = await storage.create(einstein, f"{workdir}//sub/../p.ipynb", NB)
    assert created.path == f"{workdir}/p.ipynb"
    assert (await storage.stat(einstein, f"{workdir}/./p.ipynb")).path == f"{workdir}/p.ipynb"


async def test_empty_files(storage: CS3Storage, einstein: str, workdir: str) -> None:
    # reva refuses a 0-byte PUT; an Upload-Length 0 upload completes in InitiateFileUpload.
    created = await storage.create(einstein, f"{workdir}/empty.txt", b"")
    assert created.size == 0
    assert (await storage.read(einstein, f"{workdir}/empty.txt"))[0] == b""
    etag = await storage.write(einstein, f"{workdir}/empty.txt", b"x")
    etag = await storage.write(einstein, f"{workdir}/empty.txt", b"", if_match=etag)
    assert await storage.read(einstein, f"{workdir}/empty.txt") == (b"", etag)


async def test_refusals_are_typed(storage: CS3Storage, einstein: str, workdir: str) -> None:
    with pytest.raises(NotFound):
        await storage.write(einstein, f"{workdir}/no/such/folder.ipynb", NB)
    with pytest.raises(NotFound):
        await storage.create(einstein, f"{workdir}/no/such/folder.ipynb", NB)
    with pytest.raises(NotFound):
        await storage.mkdir(einstein, f"{workdir}/no/such")
    await storage.mkdir(einstein, f"{workdir}/dir")
    with pytest.raises(InvalidArgument):
        await storage.write(einstein, f"{workdir}/dir", NB)
    with pytest.raises(AlreadyExists):
        await storage.create(einstein, f"{workdir}/dir", NB)
    with pytest.raises(InvalidArgument):
        await storage.stat(einstein, "relative/path")
    with pytest.raises(InvalidArgument):
        await storage.create(einstein, ResourceId("s", "o", "p"), NB)


async def test_move_onto_existing_is_refused(
    storage: CS3Storage, einstein: str, workdir: str
) -> None:
    # Reva's Move would replace the destination; the contract refuses instead.
    a = await storage.create(einstein, f"{workdir}/a.ipynb", b"a")
    await storage.create(einstein, f"{workdir}/b.ipynb", b"b")
    with pytest.raises(AlreadyExists):
        await storage.move(einstein, a.id, f"{workdir}/b.ipynb")
    assert (await storage.read(einstein, f"{workdir}/b.ipynb"))[0] == b"b"


async def test_other_users_home_is_invisible(
    storage: CS3Storage, einstein: str, workdir: str
) -> None:
    created = await storage.create(einstein, f"{workdir}/private.ipynb", NB)
    marie = await storage.authenticate("marie", USERS["marie"][0])
    with pytest.raises((NotFound, PermissionDenied)):
        await storage.stat(marie, f"{workdir}/private.ipynb")
    with pytest.raises((NotFound, PermissionDenied)):
        await storage.stat(marie, created.id)
    with pytest.raises((NotFound, PermissionDenied)):
        await storage.read(marie, created.id)
    with pytest.raises((NotFound, PermissionDenied)):
        await storage.write(marie, created.id, b"no")
    with pytest.raises((NotFound, PermissionDenied)):
        await storage.set_lock(marie, created.id, lock_id="m", app_name=APP, expires_in=60)


async def test_reva_lock_specifics(storage: CS3Storage, einstein: str, workdir: str) -> None:
    path = f"{workdir}/l.ipynb"
    await storage.create(einstein, path, NB)
    # A lock id for a file that is not locked is refused (decomposedfs: "not locked").
    with pytest.raises(Locked):
        await storage.write(einstein, path, b"x", lock_id=new_lock_id())
    lid = new_lock_id()
    lock = await storage.set_lock(einstein, path, lock_id=lid, app_name=APP, expires_in=60)
    assert lock.user == USERS["einstein"][1]
    # Setting it again, even by its holder, is refused; refresh is the way to extend it.
    with pytest.raises(Locked):
        await storage.set_lock(einstein, path, lock_id=lid, app_name=APP, expires_in=60)
    # Another app name may not refresh or release it.
    with pytest.raises(Locked):
        await storage.refresh_lock(einstein, path, lock_id=lid, app_name="other", expires_in=60)
    with pytest.raises(Locked):
        await storage.unlock(einstein, path, lock_id=lid, app_name="other")
    got = await storage.get_lock(einstein, path)
    assert got is not None
    assert (got.lock_id, got.app_name, got.user) == (lid, APP, USERS["einstein"][1])
    await storage.unlock(einstein, path, lock_id=lid, app_name=APP)


async def test_get_lock_of_missing_file_is_not_found(
    storage: CS3Storage, einstein: str, workdir: str
) -> None:
    with pytest.raises(NotFound):
        await storage.get_lock(einstein, f"{workdir}/missing.ipynb")


async def test_unreachable_gateway_is_unavailable(unused_tcp_port: int) -> None:
    storage = CS3Storage(
        CS3Settings(gateway=f"127.0.0.1:{unused_tcp_port}", timeout=2, retries=2, backoff=0.05)
    )
    try:
        started = time.monotonic()
        with pytest.raises(Unavailable):
            await storage.whoami("token")
        with pytest.raises(Unavailable):
            await storage.authenticate("einstein", "relativity")
        assert time.monotonic() - started < 20
    finally:
        await storage.aclose()


@pytest.fixture
def private_revad(tmp_path: Path, revad: RevadHandle) -> Iterator[RevadHandle]:
    """A second revad of our own, to stop and restart (the session one stays up)."""
    handle = start_revad(tmp_path / "revad", binary=revad.binary)
    try:
        yield handle
    finally:
        handle.stop()


async def test_survives_a_revad_restart(private_revad: RevadHandle) -> None:
    storage = CS3Storage(CS3Settings(gateway=private_revad.gateway, retries=1, backoff=0.05))
    try:
        token = await storage.authenticate("einstein", USERS["einstein"][0])
        path = f"{home_path('einstein')}/restart.ipynb"
        created = await storage.create(token, path, NB)

        await asyncio.to_thread(private_revad.stop)
        with pytest.raises(Unavailable):
            await storage.stat(token, path)
        with pytest.raises(Unavailable):
            await storage.write(token, path, b"while down")

        await asyncio.to_thread(private_revad.start)
        # Same channel, same token (revad keeps its JWT secret and data): back to normal.
        deadline = time.monotonic() + 30
        while True:
            try:
                st = await storage.stat(token, path)
                break
            except Unavailable:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
        assert st.id == created.id
        assert st.etag == created.etag
        etag = await storage.write(token, path, b"after restart", if_match=created.etag)
        assert await storage.read(token, path) == (b"after restart", etag)
    finally:
        await storage.aclose()


async def test_reads_racing_writes_of_the_same_file_all_succeed(
    storage: CS3Storage, einstein: str, workdir: str
) -> None:
    # reva's decomposedfs answers a GET that races an upload of the same file with HTTP 500
    # ("could not read blob ... no such file or directory") now and then: a room opening while
    # another instance snapshots it. The read is retried, so every read gets one whole version.
    path = f"{workdir}/raced.ipynb"
    versions = [b'{"v": %d}' % i + b" " * 20_000 for i in range(60)]
    await storage.create(einstein, path, versions[0])
    writing = True

    async def write_all() -> None:
        nonlocal writing
        for data in versions[1:]:
            await storage.write(einstein, path, data)
        writing = False

    async def read_while_writing() -> int:
        reads = 0
        while writing:
            data, _ = await storage.read(einstein, path)
            assert data in versions
            reads += 1
        return reads

    _, *reads = await asyncio.gather(write_all(), read_while_writing(), read_while_writing())
    assert sum(reads) >= 40  # enough reads overlapped the writes to have met the race
