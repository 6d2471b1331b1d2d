"""The quick start (``scripts/serve``): the hub and one JupyterLab on a local folder.

``python -m jupyter_cs3.quickstart --root examples/notebooks`` starts the cs3collab hub on the
folder (local storage + SQLite, no other server) and JupyterLab with the ``jupyter_cs3``
extension on the same folder, then prints the JupyterLab URL. Open it in two browsers to see live
co-editing. Ctrl-C stops both. The hub's token stays between the two processes (environment);
only JupyterLab's own login token is printed.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

import httpx


def _wait_http(url: str, proc: subprocess.Popen[bytes], what: str, timeout: float) -> None:
    """Poll ``url`` until it answers 200, the process exits, or the deadline passes."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError as exc:
            last = repr(exc)  # not up yet: keep polling until the deadline
        time.sleep(0.2)
    raise TimeoutError(f"{what} did not answer {url} within {timeout:.0f} s ({last})")


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT if sys.platform != "win32" else signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/serve", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--root", type=Path, default=Path("examples/notebooks"))
    parser.add_argument("--host", default="127.0.0.1", help="listen address of both servers")
    parser.add_argument("--port", type=int, default=8888, help="JupyterLab's port")
    parser.add_argument("--hub-port", type=int, default=8900, help="the hub's port")
    parser.add_argument(
        "--token", help="JupyterLab's login token (default: $JUPYTER_TOKEN or generated)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    root: Path = args.root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    data_dir = root / ".cs3collab"
    hub_token = secrets.token_urlsafe(24)
    lab_token = args.token or os.environ.get("JUPYTER_TOKEN") or secrets.token_urlsafe(24)
    hub_url = f"http://{args.host}:{args.hub_port}"
    lab_base = f"http://{args.host}:{args.port}"
    bindir = Path(sys.executable).parent
    cs3collab = shutil.which("cs3collab", path=str(bindir)) or "cs3collab"

    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    hub: subprocess.Popen[bytes] | None = None
    lab: subprocess.Popen[bytes] | None = None
    try:
        hub = subprocess.Popen(
            [
                cs3collab,
                "serve",
                "--root",
                str(root),
                "--host",
                args.host,
                "--port",
                str(args.hub_port),
                "--lab-url",
                f"{lab_base}/lab",
            ],
            env={**os.environ, "CS3COLLAB_TOKEN": hub_token},
            stdin=subprocess.DEVNULL,
        )
        _wait_http(f"{hub_url}/readyz", hub, "the hub", 60)
        lab = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyterlab",
                "--no-browser",
                f"--ServerApp.ip={args.host}",
                f"--ServerApp.port={args.port}",
                "--ServerApp.port_retries=0",
                f"--ServerApp.root_dir={root}",
                "--CS3Config.storage=local",
                f"--CS3Config.root={root}",
                f"--CS3Config.data_dir={data_dir}",
                f"--CS3Config.hub_url={hub_url}",
                # Jupyter refuses root unless told; containers and CI machines often run as root.
                *(["--ServerApp.allow_root=True"] if os.geteuid() == 0 else []),
            ],
            env={**os.environ, "JUPYTER_TOKEN": lab_token, "JUPYTER_CS3_HUB_TOKEN": hub_token},
            stdin=subprocess.DEVNULL,
        )
        _wait_http(f"{lab_base}/api/status?token={lab_token}", lab, "JupyterLab", 120)
        print(
            f"\ncs3collab: co-editing {root}\n"
            f"  JupyterLab: {lab_base}/lab?token={lab_token}\n"
            f"  (open it in two browsers to co-edit; the hub runs at {hub_url})\n"
            "  Ctrl-C stops both.\n",
            flush=True,
        )
        while not stopping:
            for proc, what in ((hub, "the hub"), (lab, "JupyterLab")):
                if proc.poll() is not None:
                    print(f"cs3collab: {what} exited ({proc.returncode})", file=sys.stderr)
                    return 1
            time.sleep(0.5)
        return 0
    except (RuntimeError, TimeoutError) as exc:
        print(f"cs3collab: {exc}", file=sys.stderr)
        return 1
    finally:
        _stop(lab)
        _stop(hub)


if __name__ == "__main__":
    sys.exit(main())
