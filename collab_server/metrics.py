"""Prometheus metrics, one registry per hub (no process-global state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class HubMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.rooms = Gauge("cs3collab_rooms", "Open rooms", registry=r)
        self.clients = Gauge("cs3collab_clients", "Connected websocket clients", registry=r)
        self.updates = Counter("cs3collab_updates", "Y updates accepted", registry=r)
        self.update_bytes = Counter("cs3collab_update_bytes", "Bytes of Y updates", registry=r)
        self.refused_updates = Counter(
            "cs3collab_refused_updates",
            "Updates refused (read-only, too large)",
            ["reason"],
            registry=r,
        )
        self.messages = Counter(
            "cs3collab_messages", "Websocket messages received", ["type"], registry=r
        )
        self.closes = Counter("cs3collab_closes", "Sockets closed by the hub", ["code"], registry=r)
        self.log_commit_seconds = Histogram(
            "cs3collab_log_commit_seconds",
            "Update-log commit latency",
            registry=r,
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0),
        )
        self.compactions = Counter("cs3collab_compactions", "Update-log compactions", registry=r)
        self.snapshots = Counter("cs3collab_snapshots", "Snapshots written to storage", registry=r)
        self.snapshot_failures = Counter(
            "cs3collab_snapshot_failures", "Failed snapshot attempts", ["reason"], registry=r
        )
        self.snapshot_seconds = Histogram(
            "cs3collab_snapshot_seconds", "Export + write latency of a snapshot", registry=r
        )
        self.room_load_seconds = Histogram(
            "cs3collab_room_load_seconds", "Time to load a room", registry=r
        )
        self.loop_lag_seconds = Histogram(
            "cs3collab_event_loop_lag_seconds",
            "How late a 50 ms timer of the hub's event loop fired",
            registry=r,
            buckets=(0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
        )
        self.slow_clients = Counter(
            "cs3collab_slow_clients",
            "Clients closed because they stopped reading (send backlog or timeout)",
            registry=r,
        )

        self.redis_up = Gauge(
            "cs3collab_redis_up",
            "1 while this instance reaches Redis (fanout redis); 0: degraded, serving alone",
            registry=r,
        )
        self.task_failures = Counter(
            "cs3collab_task_failures",
            "Background tasks that ended with an unexpected exception (logged with context)",
            ["task"],
            registry=r,
        )
        self.room_failures = Counter(
            "cs3collab_room_failures",
            "Rooms closed after a failure of one of their tasks (clients reconnect, reload)",
            registry=r,
        )
        self.refused_connections = Counter(
            "cs3collab_refused_connections",
            "Connections refused before the websocket opened (auth, caps, headers, timeout)",
            ["reason"],
            registry=r,
        )
        self.protocol_errors = Counter(
            "cs3collab_protocol_errors",
            "Sockets closed with 4400 for a malformed or over-limit message",
            ["kind"],
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
