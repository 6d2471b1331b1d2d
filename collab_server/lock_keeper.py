"""Holds the storage write lock of a room while it is open (ARCHITECTURE §5).

The lock only gates writers *outside* the room: sync clients, WOPI apps, a non-collaborative
Jupyter. States: ``held`` (we write with our lock id), ``foreign`` (another app holds it: the
room is read-only until it goes), ``none`` (not taken yet, lost, or storage cannot lock).
A crashed hub leaves a lock that simply expires.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum

from collab_server.logs import get_logger, kv
from storage_bridge.base import Storage
from storage_bridge.errors import Locked, NotFound, PermissionDenied, StorageError, Unavailable
from storage_bridge.types import Lock, ResourceId

log = get_logger("lock")


class LockState(str, Enum):
    NONE = "none"
    HELD = "held"
    FOREIGN = "foreign"
    UNSUPPORTED = "unsupported"


@dataclass(frozen=True, slots=True)
class LockChange:
    state: LockState
    holder: str  # who holds a foreign lock ("app (user)"), else ""
    lost: bool  # we held it and no longer do


class LockKeeper:
    def __init__(
        self,
        storage: Storage,
        resource_id: ResourceId,
        *,
        app_name: str,
        expiry: float,
        refresh_every: float,
        room: str,
        previous_lock_id: str | None = None,
        remember: Callable[[str | None], Awaitable[None]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        # The lock this room held before a crash: still ours if storage still has it.
        self._previous = previous_lock_id
        self._remember = remember
        self._storage = storage
        self._rid = resource_id
        self._app = app_name
        self._expiry = expiry
        self._refresh_every = refresh_every
        self._room = room
        self.state = LockState.NONE
        self.lock_id: str | None = None
        self.holder = ""
        self._next_refresh = 0.0
        self._remembering: asyncio.Future[None] | None = None

    def _remembered(self, task: asyncio.Future[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.warning(
                "lock id not recorded", extra=kv(room=self._room, error=repr(task.exception()))
            )

    def _describe(self, lock: Lock | None) -> str:
        if lock is None:
            return "another application"
        who = f" ({lock.user})" if lock.user else ""
        return f"{lock.app_name or 'another application'}{who}"

    async def tick(self, token: str | None) -> LockChange | None:
        """Acquire or refresh as due; returns what changed (or None)."""
        if self.state is LockState.UNSUPPORTED or token is None:
            return None
        if self.state is LockState.HELD:
            if self._clock() < self._next_refresh:
                return None
            return await self._refresh(token)
        return await self._acquire(token)

    def seen(self, lock: Lock | None) -> bool:
        """A stat showed ``lock`` on the file: True if we think we hold it and it is not ours
        (taken over, or ours expired and someone else's set): then refresh now, to know."""
        if self.state is not LockState.HELD or lock is None or lock.lock_id == self.lock_id:
            return False
        self._next_refresh = 0.0
        return True

    async def _acquire(self, token: str) -> LockChange | None:
        lock_id = f"cs3collab-{uuid.uuid4()}"
        previous = self.state
        try:
            await self._storage.set_lock(
                token, self._rid, lock_id=lock_id, app_name=self._app, expires_in=self._expiry
            )
        except Locked:
            try:
                current = await self._storage.get_lock(token, self._rid)
            except StorageError as exc:  # who holds it is unknown: reported as "another app"
                log.info("lock holder unknown", extra=kv(room=self._room, error=repr(exc)))
                current = None
            ours = {self.lock_id, self._previous} - {None}
            if current is not None and current.app_name == self._app and current.lock_id in ours:
                # Our own lock: taken before a hub restart (kill -9), or a refresh raced us.
                # Adopt it and refresh at once.
                self.lock_id = current.lock_id
                self.state = LockState.HELD
                self._next_refresh = 0.0
                log.info("own lock adopted", extra=kv(room=self._room))
                held = LockChange(LockState.HELD, "", lost=False)
                return held if previous is not LockState.HELD else None
            self.state = LockState.FOREIGN
            holder = self._describe(current)
            changed = previous is not LockState.FOREIGN or holder != self.holder
            self.holder = holder
            return LockChange(LockState.FOREIGN, holder, lost=False) if changed else None
        except (PermissionDenied, NotFound, Unavailable) as exc:
            # a viewer's token, a file gone, storage down: try again at the next tick
            log.info(
                "lock not taken; trying again later", extra=kv(room=self._room, error=repr(exc))
            )
            return None
        except StorageError as exc:
            # Backends without locks (reva local/eos without EOS...) answer with errors like
            # "unimplemented": run without a lock and rely on etags + merging.
            log.warning(
                "storage cannot lock; running without", extra=kv(room=self._room, error=str(exc))
            )
            self.state = LockState.UNSUPPORTED
            return LockChange(LockState.UNSUPPORTED, "", lost=False)
        self.lock_id = lock_id
        self.holder = ""
        self.state = LockState.HELD
        self._next_refresh = self._clock() + self._refresh_every
        if self._remember is not None:
            # Not awaited: the log's writer may be busy recording a big room just loaded, and
            # the id only matters after a crash (a lost id means waiting out the expiry).
            self._remembering = asyncio.ensure_future(self._remember(lock_id))
            self._remembering.add_done_callback(self._remembered)
        log.info("lock taken", extra=kv(room=self._room))
        return (
            LockChange(LockState.HELD, "", lost=False) if previous is not LockState.HELD else None
        )

    async def _refresh(self, token: str) -> LockChange | None:
        assert self.lock_id is not None
        try:
            await self._storage.refresh_lock(
                token, self._rid, lock_id=self.lock_id, app_name=self._app, expires_in=self._expiry
            )
        except (Locked, PermissionDenied, NotFound) as exc:
            log.warning("lock lost", extra=kv(room=self._room, error=str(exc)))
            self.state = LockState.NONE
            self.lock_id = None
            # Take a new one at once if we can; otherwise report who has it.
            change = await self._acquire(token)
            if change is not None and change.state is LockState.FOREIGN:
                return LockChange(LockState.FOREIGN, change.holder, lost=True)
            return LockChange(self.state, self.holder, lost=True)
        except StorageError as exc:
            # Storage unreachable: keep the lock id; the lock may still be valid when it is back.
            log.warning("lock refresh failed", extra=kv(room=self._room, error=str(exc)))
            return None
        self._next_refresh = self._clock() + self._refresh_every
        return None

    def adopt(self, lock_id: str) -> None:
        """Another instance held the lock for this room (scale-out, §9): ours now, too."""
        self._previous = lock_id

    def stand_down(self) -> None:
        """Stop holding the lock without releasing it: the new writer instance adopts it."""
        if self.lock_id is not None:
            self._previous = self.lock_id
        self.state = LockState.NONE
        self.lock_id = None

    async def release(self, token: str | None) -> None:
        if self.state is not LockState.HELD or self.lock_id is None or token is None:
            log.info("no lock to release", extra=kv(room=self._room, reason=self.state.value))
            return
        try:
            await self._storage.unlock(token, self._rid, lock_id=self.lock_id, app_name=self._app)
            log.info("lock released", extra=kv(room=self._room))
        except StorageError as exc:
            log.warning(
                "unlock failed; the lock will expire", extra=kv(room=self._room, error=str(exc))
            )
        self.state = LockState.NONE
        self.lock_id = None
