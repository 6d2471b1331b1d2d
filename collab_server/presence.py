"""The hub's ``JupyterLab:globalAwareness`` room: who is online, across Jupyter servers.

JupyterLab's "Online Collaborators" panel reads a global awareness room that a stock Jupyter
server serves for itself, so users on other servers never appear. jupyter_cs3 relays that room
to ``ws /api/collaboration/awareness`` here instead (ARCHITECTURE §6), and this module serves it.

**Scope: who sees whom.** A user's global state reaches another user only while the two have a
document room in common (each has a socket in the same hub room, i.e. both opened the same
resource, which each of them may read). Everyone else on the hub stays invisible: being online,
and which files one works on, is not announced to strangers. A user always sees their own other
tabs. Visibility follows the rooms: it is recomputed every ``interval`` seconds, and a pair that
stops sharing a room gets removals.

**What is shown.** Another user receives only the ``user`` field of a state (the identity
JupyterLab shows); ``current`` and the rest are paths as *their owner* sees them (marie's
``Shares/x.ipynb`` is einstein's ``x.ipynb``; a path may name a file the viewer cannot see), so
they go only to the same user's tabs. The identity is the one the client announces (as in stock
JupyterLab); the hub does not rewrite it.

**Clocks.** The hub numbers what it sends with its own increasing clock, not the sender's: a
state hidden (sent as a removal) and shown again must have a newer clock than the removal, or
y-protocols clients ignore it. Renewals (a client re-announces every 15 s) are forwarded, so
viewers do not time the state out.

The rules of ``awareness.py`` apply: a socket owns the client ids it introduced, at most
``max_awareness_clients`` of them and ``max_awareness_state_bytes`` a state; a malformed frame or
a cap costs that socket a 4400. There is no shared document: sync messages are answered with an
empty one, updates and raw messages are dropped.

**Across instances** (``--fanout redis``, §10): a ``PresenceLink`` carries each user's snapshot
(rooms on this instance, states here) to the other instances, and theirs come back through
``apply_remote_awareness`` (presence_remote.py). Visibility is then computed over every
instance's rooms, so einstein on one hub and marie on another see each other while they share
a room, as they would on one hub.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from prometheus_client import Counter
from pycrdt import Doc, YMessageType, YSyncMessageType, create_sync_message, write_var_uint
from starlette.websockets import WebSocket

from collab_server.auth import Principal
from collab_server.awareness import Entry, encode_entries, parse_entries
from collab_server.connection import Connection, Socket
from collab_server.hub import Hub, HubError
from collab_server.logs import get_logger, kv
from collab_server.presence_remote import (
    MAX_STATES,
    RENEW_S,
    RemoteUsers,
    Snapshot,
    decode_snapshot,
)
from collab_server.protocol import (
    AwarenessFrame,
    CloseCode,
    ProtocolError,
    QueryAwarenessFrame,
    SyncFrame,
    parse_frame,
    sync_step2_message,
)
from collab_server.settings import Settings
from collab_server.supervise import supervised

log = get_logger("presence")

PRESENCE_PATH = "/api/collaboration/awareness"
_EMPTY_UPDATE = Doc().get_update()


class _HasUser(Protocol):
    @property
    def user(self) -> _HasId: ...


class _HasId(Protocol):
    @property
    def id(self) -> str: ...


class OpenRoom(Protocol):
    """What presence needs of a hub room: its key (the same on every instance) and the users
    of its sockets."""

    @property
    def key(self) -> str: ...

    @property
    def clients(self) -> Iterable[_HasUser]: ...


class PresenceLink(Protocol):
    """Carries this instance's snapshots to the other instances (scale-out)."""

    def offer(self, payload: bytes) -> None: ...


class _Owner(Protocol):
    @property
    def user(self) -> str: ...

    @property
    def owned(self) -> dict[int, tuple[int, str, str]]: ...


class ReceivingSocket(Socket, Protocol):
    async def receive(self) -> bytes | None: ...


def co_present(rooms: Iterable[set[str]]) -> dict[str, frozenset[str]]:
    """user id -> the users who share at least one room (a set of user ids) with them
    (themselves included)."""
    seen: dict[str, set[str]] = {}
    for users in rooms:
        for user in users:
            seen.setdefault(user, set()).update(users)
    return {user: frozenset(others) for user, others in seen.items()}


@dataclass(eq=False)
class _Member:
    conn: Connection
    user: str
    owned: dict[int, tuple[int, str, str]] = field(default_factory=dict)  # id: clock, full, public
    sent: dict[int, int] = field(default_factory=dict)  # id -> owner's clock last sent here
    seen_users: frozenset[str] | None = None  # visibility when last reconciled


def _public(state: str) -> str:
    """What another user may see of a state: its ``user`` only."""
    try:
        value = json.loads(state)
    except (ValueError, RecursionError) as exc:  # 64 KiB of "[" nests too deep for json
        raise ProtocolError(f"awareness state is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ProtocolError("awareness state must be a JSON object")
    return json.dumps({"user": value["user"]} if "user" in value else {})


class Presence:
    """The global awareness room of one hub (all its sockets, all users)."""

    def __init__(
        self,
        settings: Settings,
        rooms: Callable[[], Iterable[OpenRoom]],
        *,
        failures: Counter,
        interval: float = 1.0,
        link: PresenceLink | None = None,
        instance: str = "",
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self._failures = failures
        self._link = link
        self._instance = instance
        self._now = now
        self._remote = RemoteUsers()
        self._local_rooms: dict[str, frozenset[str]] = {}  # user -> rooms here (last tick)
        self._published: dict[str, tuple[frozenset[str], float]] = {}  # user -> rooms, when
        self._settings = settings
        self._rooms = rooms
        self._interval = interval
        self._members: set[_Member] = set()
        self._owner: dict[int, _Member] = {}
        self._visible: dict[str, frozenset[str]] = {}
        self._clock = 0
        self._ticker: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._members)

    async def serve(self, socket: ReceivingSocket, principal: Principal) -> None:
        """Run one socket (of an admitted principal) to its end."""
        s = self._settings
        conn = Connection(
            socket,
            user=principal.user,
            token=principal.token,
            can_write=False,
            queue_max=s.send_queue_max,
            backlog_bytes=s.send_backlog_bytes,
            send_timeout=s.send_timeout,
        )
        member = _Member(conn, principal.user.id)
        self._members.add(member)
        self._refresh()
        self._ensure_ticker()
        conn.send(bytes(create_sync_message(Doc())))
        self._reconcile(member)
        loop = asyncio.get_running_loop()
        writer = loop.create_task(conn.run_writer())
        reader = loop.create_task(self._read_loop(socket, member))
        try:
            # Either side may end it: the peer (reader) or a failed or slow send (writer).
            await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
            if not reader.done():
                reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            if conn.close_code is None:
                conn.mark_gone()
            await writer
        finally:
            self._leave(member)

    async def _read_loop(self, socket: ReceivingSocket, member: _Member) -> None:
        conn = member.conn
        while conn.close_code is None:
            data = await socket.receive()
            if data is None:
                conn.mark_gone()
                return
            try:
                self._receive(member, data)
            except ProtocolError as exc:
                log.info("malformed presence message", extra=kv(user=member.user, error=str(exc)))
                conn.close_now(CloseCode.BAD_REQUEST, str(exc)[:123])
                return

    def _receive(self, member: _Member, data: bytes) -> None:
        frame = parse_frame(data)
        if isinstance(frame, AwarenessFrame):
            self._apply(member, parse_entries(frame.payload))
        elif isinstance(frame, QueryAwarenessFrame):
            # The client asks for everything again: resend all it may see (and remove the rest).
            member.sent = dict.fromkeys(member.sent, -1)
            self._reconcile(member)
        elif isinstance(frame, SyncFrame) and frame.step == YSyncMessageType.SYNC_STEP1:
            member.conn.send(sync_step2_message(_EMPTY_UPDATE))
        # SyncStep2 / updates / raw: there is no shared document here, nothing to keep.

    def _apply(self, member: _Member, entries: list[Entry]) -> None:
        cap = self._settings.max_awareness_clients
        max_bytes = self._settings.max_awareness_state_bytes
        changed: list[int] = []
        for entry in entries:
            if len(entry.state) > max_bytes or len(entry.state.encode()) > max_bytes:
                raise ProtocolError(f"awareness state over {max_bytes} bytes")
            owner = self._owner.get(entry.client)
            if (owner is not None and owner is not member) or self._remote.owns(entry.client):
                continue  # an echo of someone else's state (or a spoof): never theirs to change
            known = member.owned.get(entry.client)
            if entry.state == "null":
                if known is not None:
                    del member.owned[entry.client]
                    del self._owner[entry.client]
                    changed.append(entry.client)
                continue
            if known is not None and entry.clock <= known[0]:
                continue
            if known is None and len(member.owned) >= cap:
                raise ProtocolError(f"awareness for more than {cap} clients on one socket")
            member.owned[entry.client] = (entry.clock, entry.state, _public(entry.state))
            self._owner[entry.client] = member
            changed.append(entry.client)
        if changed:
            for viewer in self._members:
                if viewer is not member:
                    self._send(viewer, self._changes(viewer, member, changed))
            self._publish(member.user)

    def _sees(self, viewer: _Member, owner: _Owner) -> bool:
        return viewer.user == owner.user or owner.user in self._visible.get(viewer.user, ())

    def _entry(self, viewer: _Member, owner: _Owner, client: int) -> Entry:
        clock, full, public = owner.owned[client]
        viewer.sent[client] = clock
        self._clock += 1
        return Entry(client, self._clock, full if viewer.user == owner.user else public)

    def _removal(self, viewer: _Member, client: int) -> Entry:
        del viewer.sent[client]
        self._clock += 1
        return Entry(client, self._clock, "null")

    def _changes(self, viewer: _Member, owner: _Member, clients: list[int]) -> list[Entry]:
        """What ``viewer`` must be told about ``owner``'s ``clients`` that changed."""
        visible = self._sees(viewer, owner)
        out = []
        for client in clients:
            if visible and client in owner.owned:
                out.append(self._entry(viewer, owner, client))
            elif client in viewer.sent:
                out.append(self._removal(viewer, client))
        return out

    def _reconcile(self, viewer: _Member) -> None:
        """Bring what ``viewer`` was sent in line with what it may see now."""
        viewer.seen_users = self._visible.get(viewer.user, frozenset())
        out: list[Entry] = []
        wanted: set[int] = set()
        for owner in self._owners():
            if owner is viewer or not self._sees(viewer, owner):
                continue
            for client, (clock, _, _) in owner.owned.items():
                wanted.add(client)
                if viewer.sent.get(client) != clock:
                    out.append(self._entry(viewer, owner, client))
        out.extend(self._removal(viewer, c) for c in list(viewer.sent) if c not in wanted)
        self._send(viewer, out)

    def _send(self, viewer: _Member, entries: list[Entry]) -> None:
        if entries:
            payload = encode_entries(entries)
            frame = bytes([YMessageType.AWARENESS]) + write_var_uint(len(payload)) + payload
            viewer.conn.send(frame)

    def _leave(self, member: _Member) -> None:
        self._members.discard(member)
        gone = list(member.owned)
        for client in gone:
            del self._owner[client]
        member.owned.clear()
        for viewer in self._members:
            self._send(viewer, [self._removal(viewer, c) for c in gone if c in viewer.sent])
        self._publish(member.user)

    def _ensure_ticker(self) -> None:
        if self._ticker is None or self._ticker.done():
            self._ticker = supervised(
                self._tick(),
                task="presence.tick",
                failures=self._failures,
                on_failure=lambda _: self._ensure_ticker(),  # it sleeps first: no busy loop
            )

    async def _tick(self) -> None:
        """Follow the rooms: who may see whom changes as people open and close documents."""
        while self._members or len(self._remote) or self._published:
            await asyncio.sleep(self._interval)
            expired = self._remote.expire(self._now())
            self._refresh()
            self._publish_due()
            for viewer in list(self._members):
                if expired or viewer.seen_users != self._visible.get(viewer.user, frozenset()):
                    self._reconcile(viewer)

    # -- across instances (scale-out, §10) -------------------------------------------------------

    def _owners(self) -> list[_Owner]:
        return [*self._members, *self._remote]

    def _refresh(self) -> None:
        """Recompute who may see whom, over this instance's rooms and the others'."""
        by_room: dict[str, set[str]] = {}
        local: dict[str, set[str]] = {}
        for room in self._rooms():
            users = {client.user.id for client in room.clients}
            by_room.setdefault(room.key, set()).update(users)
            for user in users:
                local.setdefault(user, set()).add(room.key)
        for remote in self._remote:
            for key in remote.rooms:
                by_room.setdefault(key, set()).add(remote.user)
        self._local_rooms = {user: frozenset(keys) for user, keys in local.items()}
        self._visible = co_present(by_room.values())

    def _publish(self, user: str) -> None:
        """Tell the other instances what this one has of ``user`` now (a whole snapshot)."""
        if self._link is None:
            return
        states = {
            client: (clock, full)
            for m in self._members
            if m.user == user
            for client, (clock, full, _) in m.owned.items()
        }
        snap = Snapshot(self._instance, user, self._local_rooms.get(user, frozenset()), states)
        self._link.offer(snap.encode())
        if snap.empty:
            self._published.pop(user, None)
        else:
            self._published[user] = (snap.rooms, self._now())

    def _publish_due(self) -> None:
        """Snapshots whose rooms changed, renewals, and the last word for users gone here.
        Only users with global states somewhere matter: nobody else is shown."""
        if self._link is None:
            return
        now = self._now()
        here = {m.user for m in self._members}
        shown = here | {r.user for r in self._remote if r.owned}
        for user in shown | set(self._published):
            rooms = self._local_rooms.get(user, frozenset()) if user in shown else frozenset()
            last = self._published.get(user)
            if last is None and not rooms and user not in here:
                continue  # nothing here to tell about them
            if last is None or last[0] != rooms or now - last[1] >= RENEW_S:
                self._publish(user)

    def apply_remote_awareness(self, payload: bytes) -> list[int]:
        """Another instance's snapshot of one user (from the relay); every client id held from
        that instance now (the relay's clean-up when it dies, ``whole``)."""
        s = self._settings
        try:
            snap = decode_snapshot(
                payload, max_states=MAX_STATES, max_state_bytes=s.max_awareness_state_bytes
            )
            public = {client: _public(state) for client, (_, state) in snap.states.items()}
        except (ValueError, ProtocolError) as exc:
            log.warning("bad presence snapshot from another instance", extra=kv(error=str(exc)))
            return []
        if snap.instance == self._instance:
            return []
        rooms_before = self._remote.rooms_of(snap.instance, snap.user)
        self._remote.apply(snap, public, self._now())
        if self._remote.rooms_of(snap.instance, snap.user) != rooms_before:
            # Who may see whom changed; a renewal or a new state (most messages) leaves it as
            # it was, and walking every room of the hub per message is not needed for those.
            self._refresh()
        for viewer in list(self._members):
            self._reconcile(viewer)
        self._ensure_ticker()  # renewals and our side of the rooms, for them
        return self._remote.ids_of(snap.instance)

    def drop_awareness(self, client_ids: list[int]) -> None:
        """An instance died (its liveness expired): its users' states go at once."""
        if self._remote.drop_clients(client_ids):
            self._refresh()
            for viewer in list(self._members):
                self._reconcile(viewer)


def endpoint(
    hub: Hub,
    presence: Presence,
    *,
    token_from: Callable[[dict[str, str], dict[str, str]], str | None],
    deny: Callable[[WebSocket, HubError], Awaitable[None]],
    wrap: Callable[[WebSocket], ReceivingSocket],
) -> Callable[[WebSocket], Awaitable[None]]:
    """The ASGI websocket endpoint of ``PRESENCE_PATH``: admitted like a document room's
    socket (token, sockets per user and address, before the upgrade), then served here."""

    async def serve(websocket: WebSocket) -> None:
        token = token_from(dict(websocket.headers), dict(websocket.query_params))
        address = websocket.client.host if websocket.client else ""
        try:
            principal = await hub.admit(token, address)
        except HubError as exc:
            await deny(websocket, exc)
            return
        try:
            await websocket.accept()
            socket = wrap(websocket)
            try:
                await presence.serve(socket, principal)
            except Exception:
                # A bug must cost one socket, not the process; the client reconnects.
                log.exception("presence handler failed", extra=kv(user=principal.user.id))
                await socket.close(CloseCode.RECONNECT, "internal error")
        finally:
            hub.leave(principal, address)

    return serve
