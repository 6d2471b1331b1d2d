"""A viewer's (or a locked room's) update: refused, and taken off the client's screen.

Updates that change nothing are not edits: a viewer's SyncStep2 carries its whole delete set on
every connect. A real edit is already on the client's screen, and a stock JupyterLab client
ignores our raw messages, so the hub resets the client: an edit that only adds (typing) is
undone by sending that client alone the deletion of what it added; its doc then shows the
room's content again, live, without a reload. An edit that deletes room content cannot be
undone that way (Y cannot revive deleted items): it is refused and left (see the end). With our
labextension a viewer's editor is read-only.
"""

from __future__ import annotations

from typing import Any

from pycrdt import Doc, create_update_message, merge_updates

from collab_server.connection import Connection
from collab_server.metrics import HubMetrics
from collab_server.protocol import ProtocolError, raw_message
from crdt.updates import refuse

_REFUSED_MAX = 1 << 20  # a viewer's refused typing kept to take it back; beyond: reload


def refuse_edit(
    conn: Connection, update: bytes, doc: Doc[Any], reason: str, metrics: HubMetrics
) -> None:
    """Refuse ``update`` of ``conn`` (``reason``: "locked" or "read_only")."""
    # Analysed together with this socket's earlier refused updates: Y numbers a client's
    # items in sequence, and the room never got the earlier ones, so alone a later update
    # has gaps that hide what it deletes.
    merged = update if conn.refused is None else merge_updates(conn.refused, update)
    try:
        refusal = refuse(merged, doc)
    except ValueError as exc:
        raise ProtocolError(str(exc)) from exc
    if not refusal.changes:
        return
    conn.refused = merged if len(merged) <= _REFUSED_MAX else None
    metrics.refused_updates.labels(reason).inc()
    message = (
        "this file is locked by another application"
        if reason == "locked"
        else "you can view this document but not edit it"
    )
    conn.send(raw_message({"type": "refused", "reason": reason, "message": message}))
    if conn.can_write:
        # An editor of a room another application locked: its edits are not taken back.
        # They stay on its screen, and when the lock comes back the room asks every
        # editor for what it has (SyncStep1) and merges them then (Room.lock_changed).
        return
    if refusal.undo is not None and conn.refused is not None:
        conn.send(create_update_message(refusal.undo))
    # An update that deletes room content (or writes a key of a map, which replaces an
    # item, e.g. the state map JupyterLab itself writes) cannot be undone in Y. Closing
    # the socket (a reloadable 1003) put a dialog in front of every viewer whose client
    # touched the state map (measured, tests/e2e), so it is refused and left: the viewer's
    # screen differs there until its next reload; typing is taken back above.
