"""The local backend: the shared contract plus what only a local folder can show."""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage_bridge.base import Storage
from storage_bridge.errors import (
    AlreadyExists,
    InvalidArgument,
    Locked,
    NotFound,
    PermissionDenied,
    PreconditionFailed,
    Unavailable,
)
from storage_bridge.local import INDEX_NAME, TMP_PREFIX, LocalStorage, _DigestCache
from storage_bridge.types import Permissions, ResourceId
from tests.storage_bridge.contract import APP, NB, StorageContract, new_lock_id

TOKEN = "local-token"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    root.mkdir()
    return root


@pytest.fixture
def data_dir(root: Path) -> Path:
    # The default layout: the data dir inside the served folder, so hiding it is exercised.
    return root / ".cs3collab"


@pytest.fixture
async def local(root: Path, data_dir: Path) -> AsyncIterator[LocalStorage]:
    storage = LocalStorage(root, data_dir)
    yield storage
    await storage.aclose()


class TestLocalContract(StorageContract):
    @pytest.fixture
    def storage(self, local: LocalStorage) -> Storage:
        return local

    @pytest.fixture
    def token(self) -> str:
        return TOKEN

    @pytest.fixture
    async def workdir(self, storage: Storage, token: str) -> str:
        path = f"/t-{uuid.uuid4()}"
        await storage.mkdir(token, path)
        return path


def test_is_a_storage(local: LocalStorage) -> None:
    assert isinstance(local, Storage)
    assert local.name == "local"


def test_default_data_dir_is_inside_root(root: Path) -> None:
    storage = LocalStorage(root)
    assert storage._data_arg == root / ".cs3collab"


async def test_default_data_dir_created_and_hidden(root: Path) -> None:
    storage = LocalStorage(root)
    try:
        await storage.create(TOKEN, "/x.ipynb", NB)
        assert (root / ".cs3collab" / INDEX_NAME).is_file()
        assert [r.name for r in await storage.list(TOKEN, "/")] == ["x.ipynb"]
    finally:
        await storage.aclose()


# ---- metadata ----


async def test_whoami_is_the_fixed_local_user(local: LocalStorage) -> None:
    a = await local.whoami("anything")
    b = await local.whoami("")
    assert a == b
    assert (a.id, a.username) == ("local", "local")
    assert a.display_name


async def test_etag_is_sha256_of_content(local: LocalStorage, root: Path) -> None:
    res = await local.create(TOKEN, "/h.ipynb", NB)
    digest = hashlib.sha256(NB).hexdigest()
    assert res.etag == digest
    assert res.checksum == f"sha256:{digest}"
    assert res.permissions == Permissions.owner()
    assert res.id.storage_id == "local"
    assert res.path == "/h.ipynb"
    assert res.mtime == pytest.approx((root / "h.ipynb").stat().st_mtime)
    # Same bytes, same etag: content-addressed, unlike reva.
    assert await local.write(TOKEN, "/h.ipynb", NB) == digest


async def test_paths_with_and_without_leading_slash_are_the_same(local: LocalStorage) -> None:
    res = await local.create(TOKEN, "rel.ipynb", NB)
    assert res.path == "/rel.ipynb"
    assert (await local.stat(TOKEN, "/rel.ipynb")).id == res.id
    assert (await local.stat(TOKEN, "./rel.ipynb")).id == res.id
    root = await local.stat(TOKEN, "/")
    assert root.is_dir
    assert root.path == "/"


async def test_external_edit_changes_etag_keeps_id(local: LocalStorage, root: Path) -> None:
    res = await local.create(TOKEN, "/ext.ipynb", b"ours")
    (root / "ext.ipynb").write_bytes(b"theirs")
    st = await local.stat(TOKEN, "/ext.ipynb")
    assert st.id == res.id
    assert st.etag == hashlib.sha256(b"theirs").hexdigest()
    with pytest.raises(PreconditionFailed):
        await local.write(TOKEN, "/ext.ipynb", b"ours v2", if_match=res.etag)


async def test_cached_etag_sees_same_size_edit_with_restored_mtime(
    local: LocalStorage, root: Path
) -> None:
    path = root / "cached.ipynb"
    path.write_bytes(b"version-A")
    old = path.stat().st_mtime_ns - 10_000_000_000  # 10 s ago: past the racy window
    os.utime(path, ns=(old, old))
    await asyncio.sleep(_DigestCache.RACY_SECONDS + 0.1)  # ctime, which utime cannot set, ages too
    first = await local.stat(TOKEN, "/cached.ipynb")
    assert first.etag == hashlib.sha256(b"version-A").hexdigest()
    assert (await local.stat(TOKEN, "/cached.ipynb")).etag == first.etag  # served from cache
    # A writer that keeps the size and puts the mtime back: only ctime tells, and it does.
    path.write_bytes(b"version-B")
    os.utime(path, ns=(old, old))
    assert (await local.stat(TOKEN, "/cached.ipynb")).etag == hashlib.sha256(
        b"version-B"
    ).hexdigest()


async def test_fresh_files_are_rehashed_every_time(local: LocalStorage, root: Path) -> None:
    # Written within the racy window: two same-size writes in one clock tick must not collide.
    path = root / "fresh.ipynb"
    for i in range(20):
        data = b"content-%02d" % i
        path.write_bytes(data)
        assert (await local.stat(TOKEN, "/fresh.ipynb")).etag == hashlib.sha256(data).hexdigest()


# ---- path safety ----


@pytest.mark.parametrize("path", ["..", "../x", "/../x", "a/../../x", "/a/../b", "./.."])
async def test_dotdot_is_refused(local: LocalStorage, path: str) -> None:
    with pytest.raises(PermissionDenied):
        await local.stat(TOKEN, path)
    with pytest.raises(PermissionDenied):
        await local.write(TOKEN, path, b"x")
    with pytest.raises(PermissionDenied):
        await local.create(TOKEN, path, b"x")


async def test_absolute_host_path_is_not_served(local: LocalStorage, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"secret")
    # An absolute path means "from the storage root", never "from the host's /".
    with pytest.raises(NotFound):
        await local.read(TOKEN, str(secret))
    with pytest.raises(NotFound):
        await local.write(TOKEN, str(secret), b"pwned")
    assert secret.read_bytes() == b"secret"


async def test_symlinks_out_of_root_are_refused(
    local: LocalStorage, root: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"secret")
    (root / "linkdir").symlink_to(outside, target_is_directory=True)
    (root / "linkfile").symlink_to(outside / "secret.txt")

    for path in ("/linkdir/secret.txt", "/linkfile"):
        with pytest.raises(PermissionDenied):
            await local.stat(TOKEN, path)
        with pytest.raises(PermissionDenied):
            await local.read(TOKEN, path)
        with pytest.raises(PermissionDenied):
            await local.write(TOKEN, path, b"pwned")
        with pytest.raises(PermissionDenied):
            await local.delete(TOKEN, path)
        with pytest.raises(PermissionDenied):
            await local.set_lock(TOKEN, path, lock_id="l", app_name=APP, expires_in=60)
    with pytest.raises(PermissionDenied):
        await local.create(TOKEN, "/linkdir/new.txt", b"pwned")
    with pytest.raises(PermissionDenied):
        await local.mkdir(TOKEN, "/linkdir/sub")
    with pytest.raises(PermissionDenied):
        await local.list(TOKEN, "/linkdir")
    await local.create(TOKEN, "/inside.txt", b"x")
    with pytest.raises(PermissionDenied):
        await local.move(TOKEN, "/inside.txt", "/linkdir/inside.txt")

    assert (outside / "secret.txt").read_bytes() == b"secret"
    assert sorted(os.listdir(outside)) == ["secret.txt"]
    # Escaping links are not part of the listing either.
    assert [r.name for r in await local.list(TOKEN, "/")] == ["inside.txt"]


async def test_symlink_inside_root_resolves_to_target(local: LocalStorage, root: Path) -> None:
    target = await local.create(TOKEN, "/target.ipynb", NB)
    (root / "alias.ipynb").symlink_to(root / "target.ipynb")
    st = await local.stat(TOKEN, "/alias.ipynb")
    assert st.id == target.id
    assert st.path == "/target.ipynb"


async def test_nul_byte_is_invalid(local: LocalStorage) -> None:
    with pytest.raises(InvalidArgument):
        await local.stat(TOKEN, "/a\x00b")


async def test_data_dir_is_hidden_and_unreachable(local: LocalStorage, root: Path) -> None:
    await local.create(TOKEN, "/visible.ipynb", NB)
    assert (root / ".cs3collab" / INDEX_NAME).exists()
    assert [r.name for r in await local.list(TOKEN, "/")] == ["visible.ipynb"]
    for path in ("/.cs3collab", f"/.cs3collab/{INDEX_NAME}", f".cs3collab/./{INDEX_NAME}"):
        with pytest.raises(NotFound):
            await local.stat(TOKEN, path)
        with pytest.raises(NotFound):
            await local.delete(TOKEN, path)
    with pytest.raises(NotFound):
        await local.read(TOKEN, f"/.cs3collab/{INDEX_NAME}")
    with pytest.raises(NotFound):
        await local.write(TOKEN, f"/.cs3collab/{INDEX_NAME}", b"junk")
    with pytest.raises(NotFound):
        await local.create(TOKEN, "/.cs3collab/new.txt", b"junk")
    with pytest.raises(NotFound):
        await local.move(TOKEN, "/visible.ipynb", "/.cs3collab/visible.ipynb")
    with pytest.raises(NotFound):
        await local.list(TOKEN, "/.cs3collab")
    # A symlink into the data dir does not open a back door.
    (root / "peek").symlink_to(root / ".cs3collab")
    with pytest.raises(NotFound):
        await local.read(TOKEN, f"/peek/{INDEX_NAME}")
    assert (await local.stat(TOKEN, "/visible.ipynb")).size == len(NB)


async def test_root_cannot_be_deleted_or_moved(local: LocalStorage) -> None:
    with pytest.raises(PermissionDenied):
        await local.delete(TOKEN, "/")
    with pytest.raises(PermissionDenied):
        await local.move(TOKEN, "/", "/elsewhere")


async def test_data_dir_holder_cannot_be_deleted(root: Path, tmp_path: Path) -> None:
    (root / "sys").mkdir()
    storage = LocalStorage(root, root / "sys" / "data")
    try:
        await storage.stat(TOKEN, "/")  # creates the index
        with pytest.raises(PermissionDenied):
            await storage.delete(TOKEN, "/sys")
        with pytest.raises(PermissionDenied):
            await storage.move(TOKEN, "/sys", "/sys2")
        assert (root / "sys" / "data" / INDEX_NAME).exists()
    finally:
        await storage.aclose()


# ---- ids ----


async def test_ids_survive_a_new_instance(root: Path, data_dir: Path) -> None:
    first = LocalStorage(root, data_dir)
    a = await first.create(TOKEN, "/a.ipynb", NB)
    await first.mkdir(TOKEN, "/sub")
    b = await first.create(TOKEN, "/b.ipynb", NB)
    await first.move(TOKEN, "/b.ipynb", "/sub/b2.ipynb")
    await first.aclose()

    second = LocalStorage(root, data_dir)
    try:
        assert (await second.stat(TOKEN, "/a.ipynb")).id == a.id
        st = await second.stat(TOKEN, b.id)
        assert (st.id, st.path) == (b.id, "/sub/b2.ipynb")
    finally:
        await second.aclose()


async def test_id_is_assigned_on_first_stat_and_stable(local: LocalStorage, root: Path) -> None:
    (root / "external.ipynb").write_bytes(NB)
    first = await local.stat(TOKEN, "/external.ipynb")
    again = await local.stat(TOKEN, "external.ipynb")
    assert first.id == again.id
    uuid.UUID(first.id.opaque_id)  # a real uuid, not a path in disguise


async def test_unknown_and_foreign_ids_are_not_found(local: LocalStorage) -> None:
    res = await local.create(TOKEN, "/f.ipynb", NB)
    with pytest.raises(NotFound):
        await local.stat(TOKEN, ResourceId("local", str(uuid.uuid4())))
    with pytest.raises(NotFound):
        await local.stat(TOKEN, ResourceId("cs3", res.id.opaque_id))


async def test_delete_drops_the_id(local: LocalStorage) -> None:
    res = await local.create(TOKEN, "/gone.ipynb", NB)
    await local.delete(TOKEN, "/gone.ipynb")
    with pytest.raises(NotFound):
        await local.stat(TOKEN, res.id)
    again = await local.create(TOKEN, "/gone.ipynb", NB)
    assert again.id != res.id


async def test_id_of_externally_removed_file_is_not_found(local: LocalStorage, root: Path) -> None:
    res = await local.create(TOKEN, "/vanish.ipynb", NB)
    (root / "vanish.ipynb").unlink()
    with pytest.raises(NotFound):
        await local.stat(TOKEN, res.id)
    with pytest.raises(NotFound):
        await local.read(TOKEN, res.id)
    # Never resurrected through its id.
    with pytest.raises(NotFound):
        await local.write(TOKEN, res.id, b"x")
    assert not (root / "vanish.ipynb").exists()


async def test_moving_a_folder_keeps_ids_below(local: LocalStorage) -> None:
    await local.mkdir(TOKEN, "/d")
    await local.mkdir(TOKEN, "/d/e")
    inner = await local.create(TOKEN, "/d/e/n.ipynb", NB)
    sibling = await local.create(TOKEN, "/d2.ipynb", NB)  # "/d2..." must not be renamed
    await local.move(TOKEN, "/d", "/moved")
    st = await local.stat(TOKEN, inner.id)
    assert st.path == "/moved/e/n.ipynb"
    assert (await local.stat(TOKEN, sibling.id)).path == "/d2.ipynb"


async def test_move_does_not_overwrite(local: LocalStorage) -> None:
    await local.create(TOKEN, "/src.ipynb", b"src")
    await local.create(TOKEN, "/dst.ipynb", b"dst")
    with pytest.raises(AlreadyExists):
        await local.move(TOKEN, "/src.ipynb", "/dst.ipynb")
    assert (await local.read(TOKEN, "/dst.ipynb"))[0] == b"dst"
    with pytest.raises(NotFound):
        await local.move(TOKEN, "/src.ipynb", "/no/such/dir.ipynb")
    await local.mkdir(TOKEN, "/folder")
    with pytest.raises(InvalidArgument):
        await local.move(TOKEN, "/folder", "/folder/inner")


async def test_move_onto_path_of_externally_removed_file(local: LocalStorage, root: Path) -> None:
    old = await local.create(TOKEN, "/x.ipynb", b"old")
    (root / "x.ipynb").unlink()  # behind the backend's back: its index row is now stale
    y = await local.create(TOKEN, "/y.ipynb", b"y")
    moved = await local.move(TOKEN, "/y.ipynb", "/x.ipynb")
    assert moved.id == y.id
    with pytest.raises(NotFound):
        await local.stat(TOKEN, old.id)


async def test_move_keeps_the_lock(local: LocalStorage) -> None:
    await local.create(TOKEN, "/m.ipynb", NB)
    lid = new_lock_id()
    await local.set_lock(TOKEN, "/m.ipynb", lock_id=lid, app_name=APP, expires_in=60)
    await local.move(TOKEN, "/m.ipynb", "/m2.ipynb", lock_id=lid)
    lock = await local.get_lock(TOKEN, "/m2.ipynb")
    assert lock is not None
    assert lock.lock_id == lid
    with pytest.raises(Locked):
        await local.write(TOKEN, "/m2.ipynb", b"x")


# ---- create / write edge cases ----


async def test_write_missing_file(local: LocalStorage) -> None:
    with pytest.raises(NotFound):
        await local.write(TOKEN, "/nope.ipynb", b"x", if_match="0" * 64)
    with pytest.raises(NotFound):
        await local.stat(TOKEN, "/nope.ipynb")
    # Without a precondition a write creates, like an upload to reva.
    etag = await local.write(TOKEN, "/nope.ipynb", b"x")
    assert await local.read(TOKEN, "/nope.ipynb") == (b"x", etag)
    with pytest.raises(NotFound):
        await local.write(TOKEN, "/no-dir/x.ipynb", b"x")


async def test_create_needs_parent(local: LocalStorage) -> None:
    with pytest.raises(NotFound):
        await local.create(TOKEN, "/no-dir/x.ipynb", b"x")
    with pytest.raises(NotFound):
        await local.mkdir(TOKEN, "/no-dir/sub")


async def test_folders_are_not_files(local: LocalStorage) -> None:
    await local.mkdir(TOKEN, "/dir")
    await local.create(TOKEN, "/file.txt", b"x")
    with pytest.raises(InvalidArgument):
        await local.read(TOKEN, "/dir")
    with pytest.raises(InvalidArgument):
        await local.write(TOKEN, "/dir", b"x")
    with pytest.raises(AlreadyExists):
        await local.create(TOKEN, "/dir", b"x")
    with pytest.raises(InvalidArgument):
        await local.list(TOKEN, "/file.txt")


async def test_write_is_atomic_and_leaves_no_temp_files(local: LocalStorage, root: Path) -> None:
    await local.mkdir(TOKEN, "/w")
    res = await local.create(TOKEN, "/w/n.ipynb", NB)
    etag = res.etag
    for i in range(5):
        etag = await local.write(TOKEN, "/w/n.ipynb", NB * (i + 2), if_match=etag)
    with pytest.raises(PreconditionFailed):
        await local.write(TOKEN, "/w/n.ipynb", b"late", if_match=res.etag)
    lid = new_lock_id()
    await local.set_lock(TOKEN, "/w/n.ipynb", lock_id=lid, app_name=APP, expires_in=60)
    with pytest.raises(Locked):
        await local.write(TOKEN, "/w/n.ipynb", b"refused")
    assert os.listdir(root / "w") == ["n.ipynb"]
    assert (root / "w" / "n.ipynb").read_bytes() == NB * 6


async def test_write_keeps_file_mode(local: LocalStorage, root: Path) -> None:
    await local.create(TOKEN, "/mode.ipynb", NB)
    os.chmod(root / "mode.ipynb", 0o640)
    await local.write(TOKEN, "/mode.ipynb", b"new")
    assert stat.S_IMODE((root / "mode.ipynb").stat().st_mode) == 0o640


async def test_temp_files_are_not_listed(local: LocalStorage, root: Path) -> None:
    # What a writer in another process would leave visible for a moment.
    (root / f"{TMP_PREFIX}abc.tmp").write_bytes(b"half")
    await local.create(TOKEN, "/real.ipynb", NB)
    assert [r.name for r in await local.list(TOKEN, "/")] == ["real.ipynb"]


async def test_concurrent_cas_writes_exactly_one_wins(local: LocalStorage, root: Path) -> None:
    res = await local.create(TOKEN, "/race.ipynb", b"base")
    payloads = [f"writer {i}".encode() for i in range(16)]
    results = await asyncio.gather(
        *(local.write(TOKEN, "/race.ipynb", p, if_match=res.etag) for p in payloads),
        return_exceptions=True,
    )
    winners = [i for i, r in enumerate(results) if isinstance(r, str)]
    assert len(winners) == 1
    losers = [r for r in results if not isinstance(r, str)]
    assert all(isinstance(r, PreconditionFailed) for r in losers)
    assert (root / "race.ipynb").read_bytes() == payloads[winners[0]]


async def test_concurrent_cas_across_instances(root: Path, data_dir: Path) -> None:
    # Two backends on one folder (the hub and a Jupyter server, say) share the SQLite lock.
    a, b = LocalStorage(root, data_dir), LocalStorage(root, data_dir)
    try:
        res = await a.create(TOKEN, "/shared.ipynb", b"base")
        writes = [
            s.write(TOKEN, "/shared.ipynb", f"{n} {i}".encode(), if_match=res.etag)
            for i in range(8)
            for n, s in (("a", a), ("b", b))
        ]
        results = await asyncio.gather(*writes, return_exceptions=True)
        assert sum(isinstance(r, str) for r in results) == 1
        assert all(isinstance(r, str | PreconditionFailed) for r in results)
        assert (await a.stat(TOKEN, "/shared.ipynb")).id == (
            await b.stat(TOKEN, "/shared.ipynb")
        ).id
    finally:
        await a.aclose()
        await b.aclose()


async def test_concurrent_creates_exactly_one_wins(local: LocalStorage) -> None:
    results = await asyncio.gather(
        *(local.create(TOKEN, "/once.ipynb", f"{i}".encode()) for i in range(8)),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert sum(isinstance(r, AlreadyExists) for r in results) == 7


# ---- locks: local-specific semantics ----


async def test_lock_refusal_is_locked_not_precondition(local: LocalStorage) -> None:
    res = await local.create(TOKEN, "/l.ipynb", NB)
    await local.set_lock(TOKEN, "/l.ipynb", lock_id=new_lock_id(), app_name=APP, expires_in=60)
    with pytest.raises(Locked) as info:
        await local.write(TOKEN, "/l.ipynb", b"x", if_match=res.etag)
    assert type(info.value) is Locked


async def test_holder_with_stale_etag_gets_precondition_failed(local: LocalStorage) -> None:
    res = await local.create(TOKEN, "/p.ipynb", NB)
    lid = new_lock_id()
    await local.set_lock(TOKEN, "/p.ipynb", lock_id=lid, app_name=APP, expires_in=60)
    await local.write(TOKEN, "/p.ipynb", b"v2", lock_id=lid)
    with pytest.raises(PreconditionFailed):
        await local.write(TOKEN, "/p.ipynb", b"v3", if_match=res.etag, lock_id=lid)


async def test_set_lock_again_by_holder_refreshes(local: LocalStorage) -> None:
    await local.create(TOKEN, "/r.ipynb", NB)
    lid = new_lock_id()
    first = await local.set_lock(TOKEN, "/r.ipynb", lock_id=lid, app_name=APP, expires_in=10)
    second = await local.set_lock(TOKEN, "/r.ipynb", lock_id=lid, app_name=APP, expires_in=600)
    assert second.expiration > first.expiration
    # Same lock id from a different app is someone else.
    with pytest.raises(Locked):
        await local.set_lock(TOKEN, "/r.ipynb", lock_id=lid, app_name="other", expires_in=60)


async def test_refresh_and_unlock_need_the_same_app(local: LocalStorage) -> None:
    await local.create(TOKEN, "/app.ipynb", NB)
    lid = new_lock_id()
    await local.set_lock(TOKEN, "/app.ipynb", lock_id=lid, app_name=APP, expires_in=60)
    with pytest.raises(Locked):
        await local.refresh_lock(TOKEN, "/app.ipynb", lock_id=lid, app_name="other", expires_in=60)
    with pytest.raises(Locked):
        await local.unlock(TOKEN, "/app.ipynb", lock_id=lid, app_name="other")
    assert await local.get_lock(TOKEN, "/app.ipynb") is not None


async def test_lock_id_on_unlocked_file_is_accepted(local: LocalStorage) -> None:
    # Deliberately lenient (reva v2 answers CODE_ABORTED here): a hub whose lock lapsed can
    # still save, the etag precondition is what protects the content.
    res = await local.create(TOKEN, "/lenient.ipynb", NB)
    await local.write(TOKEN, "/lenient.ipynb", b"x", if_match=res.etag, lock_id=new_lock_id())


async def test_lock_arguments_are_validated(local: LocalStorage) -> None:
    await local.create(TOKEN, "/v.ipynb", NB)
    for expires_in in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(InvalidArgument):
            await local.set_lock(
                TOKEN, "/v.ipynb", lock_id="l", app_name=APP, expires_in=expires_in
            )
    with pytest.raises(InvalidArgument):
        await local.set_lock(TOKEN, "/v.ipynb", lock_id="", app_name=APP, expires_in=60)
    with pytest.raises(NotFound):
        await local.set_lock(TOKEN, "/missing.ipynb", lock_id="l", app_name=APP, expires_in=60)
    with pytest.raises(NotFound):
        await local.get_lock(TOKEN, "/missing.ipynb")


async def test_locks_survive_a_new_instance(root: Path, data_dir: Path) -> None:
    first = LocalStorage(root, data_dir)
    await first.create(TOKEN, "/keep.ipynb", NB)
    lid = new_lock_id()
    await first.set_lock(TOKEN, "/keep.ipynb", lock_id=lid, app_name=APP, expires_in=60)
    await first.aclose()
    second = LocalStorage(root, data_dir)
    try:
        with pytest.raises(Locked):
            await second.write(TOKEN, "/keep.ipynb", b"x")
        await second.write(TOKEN, "/keep.ipynb", b"x", lock_id=lid)
    finally:
        await second.aclose()


async def test_folder_with_locked_file_cannot_be_deleted(local: LocalStorage, root: Path) -> None:
    await local.mkdir(TOKEN, "/proj")
    await local.create(TOKEN, "/proj/open.ipynb", NB)
    lid = new_lock_id()
    await local.set_lock(TOKEN, "/proj/open.ipynb", lock_id=lid, app_name=APP, expires_in=60)
    with pytest.raises(Locked):
        await local.delete(TOKEN, "/proj")
    assert (root / "proj" / "open.ipynb").exists()
    await local.unlock(TOKEN, "/proj/open.ipynb", lock_id=lid, app_name=APP)
    await local.delete(TOKEN, "/proj")
    assert not (root / "proj").exists()


async def test_closed_storage_is_unavailable(root: Path, data_dir: Path) -> None:
    storage = LocalStorage(root, data_dir)
    await storage.stat(TOKEN, "/")
    await storage.aclose()
    await storage.aclose()  # idempotent
    with pytest.raises(Unavailable):
        await storage.stat(TOKEN, "/")


async def test_missing_root_is_unavailable(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "nope", tmp_path / "data")
    try:
        with pytest.raises(Unavailable):
            await storage.stat(TOKEN, "/")
    finally:
        await storage.aclose()
