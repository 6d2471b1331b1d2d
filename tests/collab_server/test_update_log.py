"""The SQLite update log: lineage, append-before-broadcast batches, compaction, fork bases."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from pycrdt import Doc, Text

from collab_server.update_log import SQLiteUpdateLog
from crdt.compaction import compact


def _updates(n: int) -> list[bytes]:
    doc: Doc[Any] = Doc()
    text = doc.get("t", type=Text)
    out: list[bytes] = []
    doc.observe(lambda event: out.append(event.update))
    for i in range(n):
        text.insert(len(text), f"{i},")
    return out


def _text(snapshot: bytes | None, updates: list[bytes]) -> str:
    doc: Doc[Any] = Doc()
    if snapshot:
        doc.apply_update(snapshot)
    for u in updates:
        doc.apply_update(u)
    return str(doc.get("t", type=Text))


async def test_lineage_is_stable_until_the_log_is_lost(tmp_path: Path) -> None:
    log = SQLiteUpdateLog(tmp_path / "a" / "log.sqlite")
    lineage, created = await log.ensure_lineage("room")
    assert created and await log.ensure_lineage("room") == (lineage, False)
    assert await log.has_lineage(lineage) and not await log.has_lineage("other")
    await log.aclose()
    reopened = SQLiteUpdateLog(tmp_path / "a" / "log.sqlite")
    assert await reopened.ensure_lineage("room") == (lineage, False)
    await reopened.aclose()
    fresh = SQLiteUpdateLog(tmp_path / "b" / "log.sqlite")  # the log is gone: a new lineage
    assert (await fresh.ensure_lineage("room"))[0] != lineage
    await fresh.aclose()


async def test_append_load_compact_keep_every_update(tmp_path: Path) -> None:
    log = SQLiteUpdateLog(tmp_path / "log.sqlite")
    await log.ensure_lineage("room")
    all_updates = _updates(31)
    updates, more = all_updates[:30], all_updates[30:]
    await log.start("room", b"\x00\x00", "etag0", hashlib.sha256(b"base").hexdigest(), b"base")
    seq = await log.append("room", updates[:10])
    seq = await log.append("room", updates[10:])
    stored = await log.load("room")
    assert stored is not None and stored.updates == updates and stored.last_seq == seq == 30
    assert (stored.base_etag, stored.base_content) == ("etag0", b"base")
    # a snapshot remembers its bytes before it writes (a crash in between: they are pending),
    # then set_base points at them: the base's bytes always match its hash
    await log.remember_base("room", "hash1", b"snap1")
    stored = await log.load("room")
    assert stored is not None and stored.pending == {"hash1": b"snap1"}
    assert (stored.base_etag, stored.base_content) == ("etag0", b"base")
    # storage refused that write: the bytes never landed, so they are no longer pending
    await log.forget_base("room", "hash1")
    stored = await log.load("room")
    assert stored is not None and stored.pending == {}
    assert (stored.base_etag, stored.base_content) == ("etag0", b"base")
    await log.forget_base("room", hashlib.sha256(b"base").hexdigest())  # never the base itself
    stored = await log.load("room")
    assert stored is not None and stored.base_content == b"base"
    await log.remember_base("room", "hash1", b"snap1")
    await log.set_base("room", "etag1", "hash1")
    stored = await log.load("room")
    assert stored is not None and stored.pending == {}
    assert (stored.base_etag, stored.base_hash, stored.base_content) == ("etag1", "hash1", b"snap1")
    # a hash the log has no bytes for: the base is unknown, never older bytes
    await log.set_base("room", "etag-x", "hash-x")
    stored = await log.load("room")
    assert stored is not None and stored.base_content is None
    await log.set_base("room", "etag2", "hash2", b"newer")
    stored = await log.load("room")
    assert stored is not None and stored.base_content == b"newer"
    # compaction: snapshot + empty tail, same document
    snapshot = compact(stored.snapshot, stored.updates)
    await log.compact("room", snapshot, seq)
    await log.append("room", more)  # only valid on top of the first 30
    stored = await log.load("room")
    assert stored is not None and stored.updates == more and stored.last_seq == 31
    assert _text(stored.snapshot, stored.updates) == "".join(f"{i}," for i in range(31))
    await log.aclose()


async def test_fork_bases(tmp_path: Path) -> None:
    log = SQLiteUpdateLog(tmp_path / "log.sqlite")
    assert await log.fork_of("copy") is None
    await log.record_fork("copy", "origin", b"base bytes")
    assert await log.fork_of("copy") == ("origin", b"base bytes")
    await log.aclose()


async def test_checkpoints_keep_the_wal_bounded_and_close_truncates_it(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    log = SQLiteUpdateLog(path)
    await log.ensure_lineage("room")
    wal = Path(f"{path}-wal")
    sizes = []
    chunk = [bytes([i % 251]) * 65536 for i in range(16)]  # 1 MiB per commit
    for _ in range(48):
        await log.append("room", chunk)
        sizes.append(wal.stat().st_size)
    # without checkpoints the WAL would hold all 48 MiB; with them it is reused
    assert max(sizes) < 48 * 2**20 / 2
    stored = await log.load("room")
    assert stored is not None and len(stored.updates) == 48 * 16
    await log.aclose()
    assert not wal.exists() or wal.stat().st_size == 0
