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
"""

from __future__ import annotations

import asyncio
import json
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
    """What presence needs of a hub room: the users of its sockets."""

    @property
    def clients(self) -> Iterable[_HasUser]: ...


class ReceivingSocket(Socket, Protocol):
    async def receive(self) -> bytes | None: ...


def co_present(rooms: Iterable[OpenRoom]) -> dict[str, frozenset[str]]:
    """user id -> the users who share at least one room with them (themselves included)."""
    seen: dict[str, set[str]] = {}
    for room in rooms:
        users = {client.user.id for client in room.clients}
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
    ) -> None:
        self._failures = failures
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
        self._visible = co_present(self._rooms())
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
            if owner is not None and owner is not member:
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

    def _sees(self, viewer: _Member, owner: _Member) -> bool:
        return viewer.user == owner.user or owner.user in self._visible.get(viewer.user, ())

    def _entry(self, viewer: _Member, owner: _Member, client: int) -> Entry:
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
        for owner in self._members:
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
        while self._members:
            await asyncio.sleep(self._interval)
            self._visible = co_present(self._rooms())
            for viewer in list(self._members):
                if viewer.seen_users != self._visible.get(viewer.user, frozenset()):
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
