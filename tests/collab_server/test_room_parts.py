"""A room's parts in-process, with fakes: the outbox (log, then send), the room's protocol and
hooks, and the storage side (snapshots, lock, watcher, merges) on a clock the test advances.

The end-to-end tests (test_hub.py, test_external.py ...) run the same behaviour through a real
hub; these pin each part's own contract in milliseconds.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from pycrdt import Awareness, Decoder, Doc, create_update_message

from collab_server.auth import Principal
from collab_server.connection import Connection
from collab_server.loading import LoadedState, RoomParts, build_room
from collab_server.lock_keeper import LockChange, LockKeeper, LockState
from collab_server.metrics import HubMetrics
from collab_server.outbox import RemoteOrigin, RoomOutbox
from collab_server.protocol import parse_frame, raw_message
from collab_server.room import Room
from collab_server.room_hooks import CommandRequest, LargeSend, NoHooks, RoomFailed
from collab_server.room_key import RoomKey
from collab_server.settings import Settings
from collab_server.storage_sync import StorageSync
from collab_server.stored_base import StoredBase
from collab_server.supervise import supervised
from collab_server.versions import StoredVersions
from crdt.documents import content_hash, kind_for
from devkit.hubproc import notebook
from storage_bridge.errors import PermissionDenied, PreconditionFailed
from storage_bridge.types import Lock, User
from tests.fakes import RID, ManualClock, MemoryStore, OneFileStorage, RecordingSocket, settle

KIND = kind_for("json", "notebook")
assert KIND is not None
KEY = RoomKey("json", "notebook", RID.to_file_id())


def _settings(tmp_path: Path, **values: Any) -> Settings:
    return Settings(root=tmp_path / "root", data_dir=tmp_path / "data", token="t", **values)


def _file(*sources: str) -> bytes:
    return json.dumps(notebook(*sources), indent=1).encode()


def _doc(data: bytes) -> Doc[Any]:
    doc: Doc[Any] = Doc()
    doc.apply_update(KIND.load(data))
    return doc


async def _until(cond: Any, clock: ManualClock | None = None, seconds: float = 3.0) -> None:
    """Poll ``cond`` (advancing ``clock`` by nothing: only work already due runs)."""
    for _ in range(int(seconds / 0.01)):
        if cond():
            return
        await settle(1)
    raise AssertionError("condition not met")


# -- Room and its outbox ------------------------------------------------------------------------


class RecordingHooks(NoHooks):
    def __init__(self) -> None:
        self.events: list[object] = []

    async def command(self, request: CommandRequest) -> dict[str, Any]:
        self.events.append(request)
        return {"type": request.command.get("type"), "status": "success"}

    def large_send(self, event: LargeSend) -> None:
        self.events.append(event)

    async def failed(self, event: RoomFailed) -> None:
        self.events.append(event)


def _room(tmp_path: Path, store: MemoryStore, hooks: NoHooks | None = None) -> Room:
    storage = OneFileStorage(_file("a"))
    parts = RoomParts(store, storage, _settings(tmp_path), HubMetrics(), hooks or NoHooks(),
                      ManualClock())  # fmt: skip
    data = storage.data
    state = LoadedState("lineage", _doc(data), storage.etag, content_hash(data), data, 0)
    principal = Principal(User("u", "u"), "tok")
    return build_room(parts, KEY, KIND, RID, state, principal, True)


def _conn(can_write: bool = True) -> tuple[Connection, RecordingSocket]:
    sock = RecordingSocket()
    conn = Connection(sock, user=User("u", "u"), token="tok", can_write=can_write, queue_max=100)
    return conn, sock


def _edit(room: Room, text: str) -> bytes:
    """An update a synced client makes: ``text`` appended to the first cell."""
    client: Doc[Any] = Doc()
    client.apply_update(room.doc.get_update())
    before = client.get_state()
    view = KIND.bind(client)
    source = view.ycells[0]["source"]  # type: ignore[attr-defined]
    source.insert(len(source), text)
    return client.get_update(before)


def _raw(frame: bytes) -> Any:
    assert frame[0] == 2
    return json.loads(Decoder(frame[1:]).read_var_string())


def _sources(data: bytes) -> list[str]:
    return ["".join(c["source"]) for c in json.loads(data)["cells"]]


def _updates(sock: RecordingSocket) -> list[bytes]:
    return [f for f in sock.writer.frames if f[:2] == b"\x00\x02"]


async def test_an_update_is_sent_only_once_it_is_logged(tmp_path: Path) -> None:
    store = MemoryStore(blocked=asyncio.Event())
    room = _room(tmp_path, store)
    author, author_sock = _conn()
    other, other_sock = _conn()
    room.add_client(author)
    room.add_client(other)
    await room.receive(author, parse_frame(create_update_message(_edit(room, "b"))))
    await settle()
    assert _updates(other_sock) == [] and ("append", 1) not in store.calls
    assert store.blocked is not None
    store.blocked.set()
    await _until(lambda: _updates(other_sock))
    assert ("append", 1) in store.calls
    # not echoed to its author, who gets only the room's own change (the state map's "dirty")
    assert all(b"dirty" in frame for frame in _updates(author_sock))
    assert KIND.read(room.view)["cells"][0]["source"] == "ab"
    room.remove_client(author)
    room.remove_client(other)
    await room.close()


async def test_a_remote_origin_is_sent_but_neither_logged_nor_published(tmp_path: Path) -> None:
    sent: list[tuple[str, bool]] = []

    class Recording:
        def updates(
            self, frame: bytes, exclude: Connection | None, *, publish: bool, update: bytes
        ) -> None:
            sent.append(("updates", publish))

        def awareness(self, frame: bytes, *, publish: bool, update: bytes) -> None:
            sent.append(("awareness", publish))

        def message(self, data: bytes, exclude: Connection | None) -> None:
            sent.append(("message", True))

    store = MemoryStore()
    doc = _doc(_file("a"))
    outbox = RoomOutbox(room="r", log=store, doc=doc, awareness=Awareness(doc),
                        broadcaster=Recording(), settings=_settings(tmp_path),
                        metrics=HubMetrics(), doc_bytes=0)  # fmt: skip
    metrics = HubMetrics()

    async def failed() -> None:
        raise AssertionError("the log did not fail")

    outbox.start(lambda coro, task: supervised(coro, task=task, failures=metrics.task_failures),
                 failed)  # fmt: skip
    outbox.update(b"\x01\x00", RemoteOrigin())
    await outbox.logged()
    assert sent == [("updates", False)] and store.updates == {}
    outbox.update(b"\x01\x00", None)
    await outbox.logged()
    assert sent[-1] == ("updates", True) and store.updates == {"r": [b"\x01\x00"]}
    await outbox.close()


async def test_commands_go_to_the_hooks_and_viewers_are_refused(tmp_path: Path) -> None:
    hooks = RecordingHooks()
    store = MemoryStore()
    room = _room(tmp_path, store, hooks)
    editor, editor_sock = _conn()
    viewer, viewer_sock = _conn(can_write=False)
    room.add_client(editor)
    room.add_client(viewer)
    await room.receive(editor, parse_frame(raw_message({"type": "work_on_copy"})))
    assert isinstance(hooks.events[0], CommandRequest) and hooks.events[0].room is room
    assert _raw(editor_sock.writer.frames[-1])["status"] == "success"
    await room.receive(viewer, parse_frame(create_update_message(_edit(room, "x"))))
    refused = _raw(viewer_sock.writer.frames[-2])  # then the undo
    assert refused["type"] == "refused" and refused["reason"] == "read_only"
    await settle()
    assert store.updates == {} and KIND.read(room.view)["cells"][0]["source"] == "a"
    await room.fail(4500, "update log unavailable")
    assert isinstance(hooks.events[-1], RoomFailed) and hooks.events[-1].code == 4500
    assert editor.close_code == 4500 and viewer.close_code == 4500


# -- StorageSync with a fake room --------------------------------------------------------------


class FakeRoom:
    """The ``SyncedRoom`` a StorageSync needs, over a real doc; records what it is told."""

    def __init__(self, data: bytes) -> None:
        self.key = str(KEY)
        self.kind = KIND
        self.doc = _doc(data)
        self.view = KIND.bind(self.doc)
        self.events: list[str] = []
        self.states: list[dict[str, Any]] = []
        self.messages: list[dict[str, Any]] = []
        self.lock_changes: list[LockChange] = []
        self.failures: list[BaseException] = []
        self.written: list[str] = []  # etags of snapshots written
        self.metrics = HubMetrics()

    def editor_token(self) -> str | None:
        return "tok"

    def any_token(self) -> str:
        return "tok"

    def writer_tokens(self, owner: str) -> list[str]:
        return ["tok"]

    def connections(self) -> list[Connection]:
        return []

    def read_content(self) -> Any:
        return KIND.read(self.view)

    def merge_into(self, base: bytes, data: bytes) -> list[str]:
        self.events.append("merge")
        return KIND.merge_into(self.view, base, data)

    def set_state(self, **values: Any) -> None:
        self.states.append(values)

    def broadcast_raw(self, message: dict[str, Any]) -> None:
        self.messages.append(message)

    def snapshot_written(self, etag: str, digest: str, lock_id: str | None) -> None:
        self.written.append(etag)

    def lock_changed(self, change: LockChange) -> None:
        self.lock_changes.append(change)

    def autosave(self) -> bool:
        return True

    async def logged(self) -> None:
        self.events.append("logged")

    def supervise(self, coro: Any, task: str) -> Any:
        return supervised(coro, task=task, failures=self.metrics.task_failures,
                          on_failure=self.task_failed)  # fmt: skip

    def task_failed(self, exc: BaseException) -> None:
        self.failures.append(exc)

    def type_(self, text: str) -> None:
        source = self.view.ycells[0]["source"]  # type: ignore[attr-defined]
        source.insert(len(source), text)


class Side:
    def __init__(self, tmp_path: Path, **settings: Any) -> None:
        self.clock = ManualClock()
        self.storage = OneFileStorage(_file("a"))
        self.store = MemoryStore()
        self.room = FakeRoom(self.storage.data)
        conf = _settings(tmp_path, **settings)
        base = StoredBase(room=self.room.key, etag=self.storage.etag,
                          digest=content_hash(self.storage.data), content=self.storage.data,
                          versions=StoredVersions(tmp_path / "versions", "r"),
                          meta=self.store)  # fmt: skip
        lock = LockKeeper(self.storage, RID, app_name="cs3collab", expiry=conf.lock_expiry,
                          refresh_every=conf.lock_refresh, room=self.room.key,
                          clock=self.clock.time)  # fmt: skip
        self.sync = StorageSync(self.room, storage=self.storage, resource_id=RID, base=base,
                                lock=lock, settings=conf, metrics=self.room.metrics,
                                clock=self.clock)  # fmt: skip


async def test_a_snapshot_is_written_after_the_debounce_on_the_clock(tmp_path: Path) -> None:
    side = Side(tmp_path, snapshot_debounce=1.0, snapshot_max_debounce=10.0)
    await side.sync.start()
    side.room.type_("b")
    side.sync.changed()
    await side.clock.advance(0.9)
    await settle()
    assert side.storage.writes == []
    await side.clock.advance(0.2)
    await _until(lambda: side.storage.writes)
    assert _sources(side.storage.data) == ["ab"]
    assert side.sync.base.etag == side.storage.etag and not side.sync.dirty
    calls = [name for name, _ in side.store.calls if name in ("remember_base", "set_base")]
    assert calls == ["remember_base", "set_base"]  # the bytes are durable before the write
    assert side.room.states[-1]["dirty"] is False
    await side.sync.close()
    assert side.storage.lock is None  # released


async def test_steady_typing_is_written_at_the_max_debounce(tmp_path: Path) -> None:
    side = Side(tmp_path, snapshot_debounce=1.0, snapshot_max_debounce=10.0)
    await side.sync.start()
    for i in range(11):  # a change every 0.9 s: the debounce alone would never fire
        side.room.type_(str(i))
        side.sync.changed()
        await side.clock.advance(0.9, step=0.3)
        if i < 10:
            assert side.storage.writes == [], f"written after {0.9 * (i + 1):.1f} s"
    await side.clock.advance(0.2)  # 10 s after the first change
    await _until(lambda: side.storage.writes)
    assert len(side.storage.writes) == 1
    await side.sync.close()


async def test_the_watcher_merges_an_external_write_on_the_clock(tmp_path: Path) -> None:
    side = Side(tmp_path, watch_interval=1.5)
    await side.sync.start()
    side.storage.external_write(_file("a", "theirs"))
    await side.clock.advance(1.0)
    assert side.room.events == []
    await side.clock.advance(0.6)
    await _until(lambda: side.sync.base.etag == side.storage.etag)
    # merged, and the merge is in the log before the log calls their version the base
    assert side.room.events == ["merge", "logged"]
    assert side.room.messages[0]["type"] == "external_change"  # the clients are told
    assert side.store.calls[-1] == ("set_base", side.storage.etag)
    assert [c["source"] for c in KIND.read(side.room.view)["cells"]] == ["a", "theirs"]
    await side.sync.close()


async def test_the_lock_is_refreshed_on_the_clock(tmp_path: Path) -> None:
    side = Side(tmp_path, lock_expiry=120.0, lock_refresh=40.0, watch_interval=1.5)
    await side.sync.start()
    assert side.storage.lock is not None and side.sync.lock.state is LockState.HELD
    await side.clock.advance(39.0, step=0.5)
    assert side.storage.refreshes == 0
    await side.clock.advance(3.0, step=0.5)
    assert side.storage.refreshes == 1
    await side.clock.advance(40.0, step=0.5)
    assert side.storage.refreshes == 2
    await side.sync.close()


async def test_a_foreign_lock_makes_the_room_read_only_and_stops_writes(tmp_path: Path) -> None:
    side = Side(tmp_path, snapshot_debounce=0.5, snapshot_max_debounce=1.0)
    side.storage.lock = Lock("wopi-1", "wopi", "", 0.0)
    await side.sync.start()
    assert side.room.lock_changes[0].state is LockState.FOREIGN
    assert "wopi" in (side.sync.foreign_holder() or "")
    side.room.type_("b")
    side.sync.changed()
    await side.clock.advance(2.0)
    await settle()
    assert side.storage.writes == [] and side.sync.dirty  # retried once the lock is back
    side.storage.lock = None
    await side.clock.advance(2.0)
    await _until(lambda: side.storage.writes)
    assert side.room.lock_changes[-1].state is LockState.HELD
    await side.sync.close()


async def test_a_writer_naming_an_unknown_base_is_refused(tmp_path: Path) -> None:
    side = Side(tmp_path)
    await side.sync.start()
    with pytest.raises(PreconditionFailed):
        await side.sync.merge_incoming(_file("x"), "w", based_on="no-such-etag")
    result = await side.sync.merge_incoming(_file("a", "theirs"), "w")  # no base: theirs wins
    assert result.conflicts == [] and result.etag == side.storage.etag
    assert _sources(side.storage.data) == ["a", "theirs"]
    await side.sync.close()


async def test_a_refused_snapshot_is_no_longer_taken_for_a_version_in_storage(
    tmp_path: Path,
) -> None:
    # Its bytes were recorded before the write (in case the hub dies mid-write); a definite
    # refusal means they never landed: a restarted room must not count them as a possible
    # base (it would keep the next external write as a conflict copy instead of merging it).
    side = Side(tmp_path, snapshot_debounce=0.5, snapshot_max_debounce=1.0)
    await side.sync.start()
    side.storage.refuse_writes = PermissionDenied("the editor lost write access")
    side.room.type_("b")
    side.sync.changed()
    await side.clock.advance(1.0)
    await _until(lambda: any(name == "forget_base" for name, _ in side.store.calls))
    names = [(n, v) for n, v in side.store.calls if n in ("remember_base", "forget_base")]
    assert names[:2] == [("remember_base", names[0][1]), ("forget_base", names[0][1])]
    assert side.storage.writes == [] and side.sync.dirty  # still to be written
    side.storage.refuse_writes = None
    await side.clock.advance(60.0, step=1.0)  # the snapshotter's backoff
    await _until(lambda: side.storage.writes)
    assert _sources(side.storage.data) == ["ab"]
    await side.sync.close()


async def test_an_out_of_band_write_records_storage_s_version_once(tmp_path: Path) -> None:
    # The merge base recorded during the merge is what storage holds (not the writer's
    # bytes, which are not in storage yet): one record, no window for a crash in between.
    side = Side(tmp_path)
    await side.sync.start()
    before = side.storage.etag
    start = len(side.store.calls)
    await side.sync.merge_incoming(_file("a", "theirs"), "w")
    set_bases = [v for n, v in side.store.calls[start:] if n == "set_base"]
    assert set_bases == [before, side.storage.etag]  # storage's version, then the snapshot
    assert side.store.bases[str(KEY)][1] == content_hash(side.storage.data)
    await side.sync.close()
