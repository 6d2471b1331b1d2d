"""The room's storage lock under an injected clock: refresh, expiry, loss, adoption.

One fake clock drives both the keeper (when to refresh) and the local backend (when a lock
expires), so nothing here waits on the wall clock.
"""

from __future__ import annotations

from pathlib import Path

from collab_server.lock_keeper import LockKeeper, LockState
from storage_bridge.local import LocalStorage

TOKEN = "t"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _keeper(storage: LocalStorage, rid: object, clock: FakeClock, **kw: object) -> LockKeeper:
    return LockKeeper(
        storage,
        rid,  # type: ignore[arg-type]
        app_name="cs3collab",
        expiry=120,
        refresh_every=40,
        room="r",
        clock=clock,
        **kw,  # type: ignore[arg-type]
    )


async def test_refresh_expiry_loss_and_adoption(tmp_path: Path) -> None:
    clock = FakeClock()
    (tmp_path / "root").mkdir()
    storage = LocalStorage(tmp_path / "root", tmp_path / "data", clock=clock)
    try:
        nb = await storage.create(TOKEN, "/nb.ipynb", b"{}")
        keeper = _keeper(storage, nb.id, clock)
        change = await keeper.tick(TOKEN)
        assert change is not None and change.state is LockState.HELD
        lock = await storage.get_lock(TOKEN, nb.id)
        assert lock is not None and lock.expiration == clock.now + 120

        clock.advance(39)  # not due yet: storage is not asked
        assert await keeper.tick(TOKEN) is None
        assert (await storage.get_lock(TOKEN, nb.id)).expiration == lock.expiration  # type: ignore[union-attr]
        clock.advance(2)  # due: refreshed for another expiry period
        assert await keeper.tick(TOKEN) is None
        refreshed = await storage.get_lock(TOKEN, nb.id)
        assert refreshed is not None and refreshed.expiration == clock.now + 120

        # the hub stalls past the expiry; another application takes the file meanwhile
        clock.advance(121)
        assert await storage.get_lock(TOKEN, nb.id) is None
        await storage.set_lock(TOKEN, nb.id, lock_id="wopi", app_name="wopi", expires_in=60)
        clock.advance(40)
        change = await keeper.tick(TOKEN)
        assert change is not None and change.state is LockState.FOREIGN and change.lost
        assert "wopi" in change.holder
        # it lets go: the room takes the lock again at its next tick
        await storage.unlock(TOKEN, nb.id, lock_id="wopi", app_name="wopi")
        change = await keeper.tick(TOKEN)
        assert change is not None and change.state is LockState.HELD
        ours = keeper.lock_id

        # a hub killed with -9 restarts: the new room adopts its own lock, refreshes it at once
        reborn = _keeper(storage, nb.id, clock, previous_lock_id=ours)
        change = await reborn.tick(TOKEN)
        assert change is not None and change.state is LockState.HELD
        assert reborn.lock_id == ours
        clock.advance(1)
        await reborn.tick(TOKEN)  # adoption refreshes at the next tick
        adopted = await storage.get_lock(TOKEN, nb.id)
        assert adopted is not None and adopted.expiration == clock.now + 120

        # a dead hub's lock the new room does not know simply expires
        stranger = _keeper(storage, nb.id, clock)
        assert (await stranger.tick(TOKEN)).state is LockState.FOREIGN  # type: ignore[union-attr]
        clock.advance(121)
        assert (await stranger.tick(TOKEN)).state is LockState.HELD  # type: ignore[union-attr]
    finally:
        await storage.aclose()
