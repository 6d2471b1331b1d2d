"""Hub settings: env ``CS3COLLAB_*``, an optional TOML file, then CLI flags (highest)."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CS3COLLAB_", extra="forbid")

    # where documents live
    storage: Literal["local", "cs3"] = "local"
    root: Path = Path("notebooks")  # local backend: the served folder
    data_dir: Path | None = None  # durable state; default <root>/.cs3collab
    gateway: str = "127.0.0.1:19000"  # cs3 backend: Reva gateway host:port
    gateway_tls: bool = False
    gateway_ca_file: Path | None = None
    storage_timeout: float = Field(10.0, gt=0)

    # network
    host: str = "127.0.0.1"
    port: int = Field(8900, ge=0, le=65535)
    token: str | None = None  # local mode: the one accepted token
    lab_url: str | None = None  # where users open JupyterLab (named on the hub's own "/" page)
    auth_cache_seconds: float = Field(30.0, ge=0)
    # Connections the kernel may queue before the hub accepts them (capped by the kernel's
    # net.core.somaxconn). When an instance restarts all its clients reconnect at once; with
    # uvicorn's 2,048 the queue overflowed, dropped SYNs were retried after 1, 3, 7 ... s
    # and some clients were reset (measured, bench P2, 10,000 clients at once).
    listen_backlog: int = Field(8192, ge=1)

    # documents and snapshots
    snapshot_debounce: float = Field(1.0, ge=0)
    snapshot_max_debounce: float = Field(10.0, gt=0)
    # longest pause between retries of a failed snapshot: after an outage of any length the
    # snapshot lands within this (plus the storage's own reconnect) of the recovery
    snapshot_retry_max: float = Field(5.0, gt=0)
    unload_grace: float = Field(60.0, ge=0)
    compact_after_updates: int = Field(500, ge=1)
    compact_after_bytes: int = Field(8 * 1024 * 1024, ge=1)
    log_fsync: bool = False

    # external writers (ARCHITECTURE §5)
    lock_app_name: str = "cs3collab"
    lock_expiry: float = Field(120.0, gt=0)
    lock_refresh: float = Field(40.0, gt=0)
    watch_interval: float = Field(1.5, gt=0)  # poll Stat of open rooms for foreign writes
    # Stats per second for the watchers of all open rooms together (0: no bound). With more
    # rooms than watch_budget * watch_interval each polls less often (Hub.watch_interval:
    # never so seldom that a due lock refresh would come after the lock's expiry). 1,000
    # rooms polled every 1.5 s were 667 stats/s against the storage (a reva gateway; here
    # the local backend's one thread), ~12 % of a 10,000-client reconnect storm's admission
    # time (bench P2, watcher off vs on).
    watch_budget: float = Field(250.0, ge=0)

    # limits
    max_frame_bytes: int = Field(64 * 1024 * 1024, ge=1024)
    max_doc_bytes: int = Field(256 * 1024 * 1024, ge=1024)
    send_queue_max: int = Field(1024, ge=1)  # frames waiting for a client that does not read
    # bytes waiting for a client, beyond the one largest message in flight (a big SyncStep2
    # may always be on its way; a socket that asks for it again and again may not)
    send_backlog_bytes: int = Field(32 * 1024 * 1024, ge=64 * 1024)
    send_timeout: float = Field(30.0, gt=0)  # a client not reading for this long is dropped
    max_clients_per_room: int = Field(500, ge=1)
    # 0 = no cap. Behind jupyter_cs3 every user of a Jupyter server comes from its address.
    max_connections_per_user: int = Field(1024, ge=0)
    max_connections_per_address: int = Field(4096, ge=0)
    max_header_bytes: int = Field(16 * 1024, ge=1024)  # request line + headers of one request
    handshake_timeout: float = Field(10.0, gt=0)  # request headers must arrive within this
    max_awareness_clients: int = Field(16, ge=1)  # awareness client ids one socket may own
    max_awareness_state_bytes: int = Field(64 * 1024, ge=256)  # one client's awareness JSON
    max_command_bytes: int = Field(64 * 1024, ge=256)  # a JSON raw command
    max_command_depth: int = Field(16, ge=2)  # nesting of a JSON raw command

    # scale-out (ARCHITECTURE §10): several instances share every room over Redis
    fanout: Literal["local", "redis"] = "local"
    redis_url: str | None = None  # redis://host:port/db, needed by fanout "redis"
    # this instance's own state (update log, versions) lives in <data_dir>/instances/<name>;
    # the folder backend's index (file ids, locks) stays shared in <data_dir>
    instance_name: str = Field(default_factory=socket.gethostname, pattern=r"^[A-Za-z0-9_.-]+$")
    writer_lease_ttl: float = Field(10.0, gt=0)  # a dead writer's rooms move after this

    log_level: str = "INFO"

    @model_validator(mode="after")
    def _defaults(self) -> Settings:
        if self.data_dir is None:
            self.data_dir = self.root / ".cs3collab"
        if self.lock_refresh >= self.lock_expiry:
            raise ValueError("lock_refresh must be shorter than lock_expiry")
        if self.fanout == "redis" and not self.redis_url:
            raise ValueError("fanout 'redis' needs redis_url")
        if self.snapshot_max_debounce < self.snapshot_debounce:
            raise ValueError("snapshot_max_debounce must be >= snapshot_debounce")
        return self

    @property
    def state_dir(self) -> Path:
        assert self.data_dir is not None
        if self.fanout == "redis":
            return self.data_dir / "instances" / self.instance_name
        return self.data_dir

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("CS3COLLAB_CONFIG")
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)
