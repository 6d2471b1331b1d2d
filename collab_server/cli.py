"""``cs3collab serve``: run the hub with uvicorn."""

from __future__ import annotations

import argparse
import secrets
import sys
from pathlib import Path
from typing import Any

import uvicorn

from collab_server.app import create_app
from collab_server.settings import Settings


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
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        ws_max_size=settings.max_frame_bytes,
        ws_ping_interval=20.0,
        ws_ping_timeout=60.0,
        log_level=settings.log_level.lower(),
        access_log=False,
        timeout_graceful_shutdown=15,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
