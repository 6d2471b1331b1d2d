"""StoredVersions: small merge bases in memory, big ones on disk, newest kept."""

from __future__ import annotations

import asyncio
from pathlib import Path

from collab_server.versions import StoredVersions


async def test_put_get_and_eviction(tmp_path: Path) -> None:
    versions = StoredVersions(tmp_path / "versions", "room-a", keep=3, memory_max=0)
    for i in range(5):
        await versions.put(f"etag{i}", b"v%d" % i)
    assert "etag0" not in versions and "etag1" not in versions
    assert [await versions.get(f"etag{i}") for i in range(5)] == [None, None, b"v2", b"v3", b"v4"]
    # files on disk, one per kept version, nothing left half-written
    files = sorted(p.name for p in (tmp_path / "versions").rglob("*") if p.is_file())
    assert len(files) == 3 and not any(name.endswith(".tmp") for name in files)
    # re-putting an etag makes it the newest again
    await versions.put("etag2", b"v2")
    await versions.put("etag5", b"v5")
    assert await versions.get("etag2") == b"v2" and "etag3" not in versions


async def test_rooms_do_not_share_files(tmp_path: Path) -> None:
    a = StoredVersions(tmp_path, "room-a", memory_max=0)
    b = StoredVersions(tmp_path, "room-b", memory_max=0)
    await a.put("same-etag", b"a")
    await b.put("same-etag", b"b")
    assert (await a.get("same-etag"), await b.get("same-etag")) == (b"a", b"b")
    await a.remove_all()
    assert await a.get("same-etag") is None and await b.get("same-etag") == b"b"


async def test_file_removed_under_it_reads_as_unknown(tmp_path: Path) -> None:
    versions = StoredVersions(tmp_path, "room", memory_max=0)
    await versions.put("e", b"data")
    for path in tmp_path.rglob("*"):
        if path.is_file():
            path.unlink()
    assert await versions.get("e") is None and "e" not in versions


async def test_disk_refusing_keeps_the_version_in_memory(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the versions directory should be")
    versions = StoredVersions(blocker, "room", keep=2, memory_max=0)
    await versions.put("e1", b"one")
    await versions.put("e2", b"two")
    await versions.put("e3", b"three")
    # in memory after all, within the memory budget: the current base is never dropped
    assert [await versions.get(e) for e in ("e1", "e2", "e3")] == [None, None, b"three"]


async def test_small_versions_stay_in_memory_big_ones_go_to_disk(tmp_path: Path) -> None:
    versions = StoredVersions(tmp_path, "room", memory_max=100)
    await versions.put("small", b"s" * 100)
    assert not any(p.is_file() for p in tmp_path.rglob("*"))  # no disk write for it
    await versions.put("big", b"b" * 101)
    assert [p.stat().st_size for p in tmp_path.rglob("*") if p.is_file()] == [101]
    assert await versions.get("small") == b"s" * 100 and await versions.get("big") == b"b" * 101


async def test_memory_budget_drops_the_oldest_small_versions(tmp_path: Path) -> None:
    versions = StoredVersions(tmp_path, "room", memory_max=100)  # budget: 200 bytes
    for i in range(4):
        await versions.put(f"e{i}", bytes([i]) * 90)
    # two fit (180 bytes); the newest, the current base, is always kept
    assert [e for e in ("e0", "e1", "e2", "e3") if e in versions] == ["e2", "e3"]
    assert await versions.get("e3") == bytes([3]) * 90


async def test_remembered_big_version_is_readable_before_its_file_exists(tmp_path: Path) -> None:
    versions = StoredVersions(tmp_path, "room", memory_max=100)
    versions.remember("big", b"b" * 101)  # returns at once: the file is written in background
    assert await versions.get("big") == b"b" * 101
    deadline = asyncio.get_running_loop().time() + 10
    while not [p for p in tmp_path.rglob("*") if p.is_file() and not p.name.endswith(".tmp")]:
        assert asyncio.get_running_loop().time() < deadline, "never written"
        await asyncio.sleep(0.01)
    assert await versions.get("big") == b"b" * 101  # now from the file
    await versions.remove_all()
    assert not any(tmp_path.rglob("*"))
