"""Install the benchmark's own tools, away from the project's pinned environment.

- Python peers and tools (``bench/requirements-peers.txt``: jupyter-collaboration, matplotlib,
  py-spy) go into a separate venv, ``${CS3COLLAB_CACHE:-~/.cache/cs3collab}/bench-venv``,
  reinstalled only when that file changes.
- Node packages (``bench/node/package-lock.json``: Hocuspocus, yjs, ws) are installed with
  ``npm ci`` when ``node_modules`` does not match the lock file. better-sqlite3 has no prebuilt
  binary reachable here, so it is compiled against the local Node headers (``/usr/include/node``).

    python -m bench.setup        # both; run.py calls this itself
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
NODE_DIR = BENCH_DIR / "node"
REQUIREMENTS = BENCH_DIR / "requirements-peers.txt"


def cache_dir() -> Path:
    return Path(os.environ.get("CS3COLLAB_CACHE", Path.home() / ".cache" / "cs3collab"))


def bench_venv() -> Path:
    return cache_dir() / "bench-venv"


def bench_python_bin(name: str = "python") -> Path:
    return bench_venv() / "bin" / name


def ensure_bench_venv(quiet: bool = False) -> Path:
    venv = bench_venv()
    stamp = venv / ".requirements-sha256"
    want = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text().strip() == want and bench_python_bin().exists():
        return venv
    if not quiet:
        print(f"bench: installing peers into {venv} (once)", file=sys.stderr, flush=True)
    if not bench_python_bin().exists():
        subprocess.run(["python3", "-m", "venv", str(venv)], check=True)
    pip = [str(bench_python_bin()), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "-r", str(REQUIREMENTS)], check=True)
    stamp.write_text(want)
    return venv


def _node_modules_match() -> bool:
    lock = json.loads((NODE_DIR / "package-lock.json").read_text())
    for key, meta in lock.get("packages", {}).items():
        if not key.startswith("node_modules/") or key.count("node_modules/") != 1:
            continue
        installed = NODE_DIR / key / "package.json"
        if not installed.exists():
            return False
        if json.loads(installed.read_text()).get("version") != meta.get("version"):
            return False
    return (NODE_DIR / "node_modules" / "better-sqlite3" / "build" / "Release").exists()


def ensure_node(quiet: bool = False) -> None:
    if (NODE_DIR / "node_modules").exists() and _node_modules_match():
        return
    if not quiet:
        print("bench: npm ci in bench/node (once; compiles better-sqlite3)", file=sys.stderr)
    env = dict(os.environ)
    if Path("/usr/include/node/node.h").exists():
        env.setdefault("npm_config_nodedir", "/usr")
    subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=NODE_DIR, env=env, check=True,
    )  # fmt: skip


def main() -> int:
    ensure_bench_venv()
    ensure_node()
    print(f"bench venv: {bench_venv()}\nnode: {NODE_DIR / 'node_modules'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
