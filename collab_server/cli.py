"""``cs3collab serve``: run the hub with uvicorn."""

from __future__ import annotations

import argparse
import copy
import gc
import secrets
import sys
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from collab_server.app import create_app
from collab_server.heap import pin_mmap_threshold
from collab_server.http_guard import guarded_http_protocol
from collab_server.settings import Settings
from collab_server.wsprotocol import CONNECTION_LOG, FanOutWebSocketProtocol


def _tune_interpreter() -> None:
    """Process-wide knobs for a latency-bound server (measured, bench P1, 50 editors).

    - Everything imported and built so far (FastAPI, pydantic models, schemas) lives as long
      as the process: frozen, the collector stops re-scanning it in every full collection.
    - The update log commits on a worker thread; with Python's default 5 ms GIL switch
      interval a commit that finished could wait up to 5 ms for the loop thread to yield,
      which showed in the p99 of edit delivery.
    - Notebook-sized buffers are mmapped and given back when freed (see heap.py).
    """
    gc.freeze()
    sys.setswitchinterval(0.0005)
    pin_mmap_threshold()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cs3collab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the collaboration hub")
    serve.add_argument("--root", type=Path, help="folder served by the local backend")
    serve.add_argument("--data-dir", type=Path, help="durable state (default <root>/.cs3collab)")
    serve.add_argument("--host", help="listen address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default 8900)")
    serve.add_argument("--token", help="access token (default: $CS3COLLAB_TOKEN or generated)")
    serve.add_argument("--storage", choices=["local", "cs3"], help="storage backend")
    serve.add_argument("--gateway", help="Reva gateway host:port (cs3 backend)")
    serve.add_argument("--log-level", help="DEBUG, INFO, WARNING ...")
    serve.add_argument("--lab-url", help="JupyterLab's URL, named on the hub's own / page")
    serve.add_argument(
        "--fanout", choices=["local", "redis"], help="one instance, or many over Redis"
    )
    serve.add_argument("--redis-url", help="redis://host:port/db (with --fanout redis)")
    serve.add_argument("--instance-name", help="this instance's name (its state folder)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    overrides: dict[str, Any] = {
        key: value for key, value in vars(args).items() if key != "command" and value is not None
    }
    settings = Settings(**overrides)
    if settings.storage == "local" and not settings.token:
        settings.token = secrets.token_urlsafe(24)
        print(
            f"cs3collab: serving {settings.root.resolve()} at "
            f"http://{settings.host}:{settings.port}/?token={settings.token}",
            file=sys.stderr,
            flush=True,
        )
    app = create_app(settings)
    _tune_interpreter()
    # uvicorn's per-socket INFO lines (with the token in the URL) only when debugging; set in
    # uvicorn's own logging config, which would reset a level set on the logger before it.
    log_config = copy.deepcopy(LOGGING_CONFIG)
    debug = settings.log_level.upper() == "DEBUG"
    log_config["loggers"][CONNECTION_LOG.name] = {"level": "DEBUG" if debug else "WARNING"}
    refused = app.state.hub.metrics.refused_connections
    http = guarded_http_protocol(
        max_header_bytes=settings.max_header_bytes,
        handshake_timeout=settings.handshake_timeout,
        on_refused=lambda reason: refused.labels(reason).inc(),
    )
    ws = type(
        "GuardedWebSocketProtocol",
        (FanOutWebSocketProtocol,),
        {"on_refused": staticmethod(lambda reason: refused.labels(reason).inc())},
    )
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        http=http,
        ws=ws,
        backlog=settings.listen_backlog,
        ws_max_size=settings.max_frame_bytes,
        # Y updates are small and mostly unique per frame; compressing each one per client cost
        # CPU and a zlib context per connection (measured, bench P1/P2). Jupyter's Tornado
        # does not compress either.
        ws_per_message_deflate=False,
        ws_ping_interval=20.0,
        ws_ping_timeout=60.0,
        log_level=settings.log_level.lower(),
        log_config=log_config,
        access_log=False,
        timeout_graceful_shutdown=15,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
