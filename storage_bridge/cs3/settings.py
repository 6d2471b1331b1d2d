"""How the ``cs3`` backend reaches the gateway (``CS3Settings``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CS3Settings:
    """How to reach the gateway. Everything has a default except the address."""

    gateway: str  # host:port of the CS3 gateway (gRPC)
    tls: bool = False
    ca_file: str | None = None  # PEM bundle for TLS to the gateway and the data servers
    timeout: float = 10.0  # per gRPC call, seconds
    transfer_timeout: float = 120.0  # per HTTP upload/download, seconds
    connect_timeout: float = 5.0  # HTTP connect
    retries: int = 3  # extra attempts for idempotent calls on Unavailable
    backoff: float = 0.2  # first retry delay, doubled each time (with jitter)
    max_backoff: float = 3.0
    token_cache_seconds: float = 30.0  # how long a WhoAmI-verified token is trusted
    app_name: str = "cs3collab"  # X-Lock-Holder on uploads
    # Locks carry the locking user (WhoAmI). Reva then lets only that user refresh/unlock them;
    # with False the lock has no user and any user holding the lock id + app name may.
    lock_with_user: bool = True
    # Where the gateway mounts personal spaces (reva storage registry "personal" path_template);
    # used to give an absolute path to resources stat'ed by id.
    personal_space_path: str = "/users/{owner_id}"
    max_message_bytes: int = 64 * 1024 * 1024
