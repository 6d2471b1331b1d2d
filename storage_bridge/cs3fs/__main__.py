"""A token file for ``cs3://`` outside Jupyter (batch jobs): log in, write it (0600), keep it fresh.

    python -m storage_bridge.cs3fs login --gateway HOST:PORT --user einstein \\
        --token-file ~/.cs3/token [--keep-fresh]

The password is read from the terminal, or from stdin when it is not a terminal (never from
the command line or the environment). ``--keep-fresh`` stays running and logs in again at half
the token's lifetime, like the Jupyter server does for its kernels; then point the job at it
with ``CS3_GATEWAY`` and ``CS3_TOKEN_FILE``.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

from storage_bridge.cs3 import CS3Storage, jwt_expiry

log = logging.getLogger("storage_bridge.cs3fs")


def write_token(path: Path, token: str) -> None:
    """Replace ``path`` atomically with a 0600 file holding ``token``."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".token-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(token + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


async def login(args: argparse.Namespace, password: str, path: Path) -> int:
    storage = CS3Storage(args.gateway, tls=args.tls, ca_file=args.ca_file or None)
    try:
        while True:
            try:
                token = await storage.authenticate(args.user, password)
            except Exception as exc:  # reported; with --keep-fresh the old token may still do
                log.error("login as %s failed: %r", args.user, exc)
                if not args.keep_fresh:
                    return 1
                await asyncio.sleep(5)
                continue
            await asyncio.to_thread(write_token, path, token)
            if not args.keep_fresh:
                print(path)
                return 0
            exp = jwt_expiry(token)
            delay = 600.0 if exp is None else max(1.0, min(600.0, (exp - time.time()) / 2))
            log.info("token written to %s; next login in %.0fs", path, delay)
            await asyncio.sleep(delay)
    finally:
        await storage.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m storage_bridge.cs3fs")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("login", help="write a CS3 token file for cs3://")
    p.add_argument("--gateway", default=os.environ.get("CS3_GATEWAY", ""), required=False)
    p.add_argument("--user", required=True)
    p.add_argument("--token-file", default=os.environ.get("CS3_TOKEN_FILE", "~/.cs3/token"))
    p.add_argument("--keep-fresh", action="store_true", help="stay running, renew the token")
    p.add_argument("--tls", action="store_true")
    p.add_argument("--ca-file", default="")
    args = parser.parse_args(argv)
    if not args.gateway:
        parser.error("--gateway (or CS3_GATEWAY) is required")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if sys.stdin.isatty():
        password = getpass.getpass(f"CS3 password of {args.user}: ")
    else:
        password = sys.stdin.readline().rstrip("\n")
    return asyncio.run(login(args, password, Path(args.token_file).expanduser()))


if __name__ == "__main__":
    sys.exit(main())
