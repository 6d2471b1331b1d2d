"""The fan-out seam for scale-out: this instance's clients, then the other instances (§10)."""

from __future__ import annotations

from collab_server.connection import Connection
from collab_server.outbox import LocalBroadcaster
from collab_server.scaleout.cluster import Cluster


class ClusterBroadcaster(LocalBroadcaster):
    """Sends a durable batch to this instance's clients, and publishes what the outbox lets it
    (never what came from another instance: Hocuspocus #335/#696 loops)."""

    def __init__(self, clients: set[Connection], room: str, cluster: Cluster) -> None:
        super().__init__(clients)
        self._room = room
        self._cluster = cluster

    def updates(
        self, frame: bytes, exclude: Connection | None, *, publish: bool, update: bytes
    ) -> None:
        super().updates(frame, exclude, publish=publish, update=update)
        replica = self._cluster.replica(self._room) if publish else None
        if replica is not None:
            replica.publish(update)  # already in this instance's log

    def awareness(self, frame: bytes, *, publish: bool, update: bytes) -> None:
        super().awareness(frame, publish=publish, update=update)
        if publish:
            self._cluster.publish_awareness(self._room, update)
