"""The three servers under test, each started as a subprocess on a free loopback port.

- ``Cs3collab``: the hub (``devkit.hubproc.HubProcess``) with its production defaults
  (snapshot debounce 1 s / max 10 s); only the unload grace is shortened so that the final
  compaction of P5 happens within the run.
- ``Jupyter``: a real ``jupyter server`` from the bench venv with jupyter-collaboration 5
  (jupyter-server-ydoc), a temporary root, token and Jupyter dirs, the YStore in its CWD.
- ``Hocuspocus``: ``bench/node/hocuspocus-server.mjs`` (@hocuspocus/server + SQLite extension).

Each gives the load generator a *target* per document and reports process id, RSS, CPU time,
disk bytes written and its update-log/store size.

P6 runs two instances of a server kind over a redis-server of their own (``CLUSTERS``):
``Cs3collabCluster`` (``--fanout redis``, one root and data dir as in docker-compose.yml) and
``HocuspocusCluster`` (``@hocuspocus/extension-redis``, a SQLite store each, every instance
seeding identical structs from the same .ipynb). ``target(path, i)`` is the document on
instance ``i``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import httpx

from bench.setup import NODE_DIR, bench_python_bin
from devkit.hubproc import HubProcess
from devkit.polling import http_ok, poll_until, process_exited
from devkit.ports import free_port
from devkit.redisproc import RedisProcess

TOKEN = "bench-token"


# -- /proc helpers ---------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            text = Path(f"/proc/{pid}/task/{task}/children").read_text().split()
            out.extend(int(c) for c in text)
    except OSError:
        pass
    return out


def process_tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        todo.extend(_children(p))
    return pids


def rss_bytes(pid: int) -> int:
    total = 0
    for p in process_tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    total = 0.0
    for p in process_tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime
        except (OSError, IndexError):
            pass
    return total


def disk_write_bytes(pid: int) -> int:
    total = 0
    for p in process_tree(pid):
        try:
            for line in Path(f"/proc/{p}/io").read_text().splitlines():
                if line.startswith("write_bytes:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def _sqlite_sizes(db: Path, query: str) -> dict[str, int]:
    """Logical bytes (sum of blob lengths) by a query, plus the files' sizes on disk."""
    result = {"logical_bytes": 0, "file_bytes": 0}
    if not db.exists():
        return result
    for suffix in ("", "-wal", "-shm"):
        f = Path(str(db) + suffix)
        if f.exists():
            result["file_bytes"] += f.stat().st_size
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        row = con.execute(query).fetchone()
        result["logical_bytes"] = int(row[0] or 0)
    finally:
        con.close()
    return result


# -- servers ----------------------------------------------------------------------------------


class Server:
    name = ""
    protocol = "ywebsocket"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.root = workdir / "root"
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()

    @property
    def pid(self) -> int:
        raise NotImplementedError

    def start(self) -> Server:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def target(self, path: str) -> dict[str, Any]:
        raise NotImplementedError

    def log_sizes(self) -> dict[str, int]:
        """Size of the server's durable update log / document store."""
        raise NotImplementedError

    def store_events(self) -> tuple[int, int]:
        """(writes, bytes) the server reports itself (Hocuspocus' onStoreDocument)."""
        return 0, 0

    def loop_stalls(self) -> int | None:
        """Event-loop stalls over 10 ms the server counted so far (None: it does not say)."""
        return None

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Cs3collab(Server):
    name = "cs3collab"

    def __init__(
        self,
        workdir: Path,
        env: dict[str, str] | None = None,
        args: list[str] | None = None,
        root: Path | None = None,
    ) -> None:
        super().__init__(workdir)
        if root is not None:
            self.root = root
        self.hub = HubProcess(
            root=self.root,
            data_dir=(workdir if root is None else root.parent) / "data",
            token=TOKEN,
            port=self.port,
            args=args or [],
            env={
                "CS3COLLAB_SNAPSHOT_DEBOUNCE": "1",
                "CS3COLLAB_SNAPSHOT_MAX_DEBOUNCE": "10",
                "CS3COLLAB_UNLOAD_GRACE": "3",
                **(env or {}),
            },
        )

    @property
    def pid(self) -> int:
        assert self.hub.proc is not None
        return self.hub.proc.pid

    def start(self) -> Cs3collab:
        self.hub.start(timeout=60)
        return self

    def stop(self) -> None:
        self.hub.stop()

    def target(self, path: str) -> dict[str, Any]:
        info = self.hub.open(path)
        return {"url": self.hub.room_url(info), "label": path}

    def loop_stalls(self) -> int | None:
        text = httpx.get(f"{self.hub.http_url}/metrics", timeout=10).text
        values = {}
        for line in text.splitlines():
            if line.startswith("cs3collab_event_loop_lag_seconds_"):
                name, _, value = line.rpartition(" ")
                values[name] = float(value)
        total = values.get("cs3collab_event_loop_lag_seconds_count", 0.0)
        fast = values.get('cs3collab_event_loop_lag_seconds_bucket{le="0.01"}', 0.0)
        return int(total - fast)

    def log_sizes(self) -> dict[str, int]:
        db = self.workdir / "data" / "update-log.sqlite"
        snap = _sqlite_sizes(db, "SELECT COALESCE(SUM(LENGTH(snapshot)),0) FROM rooms")
        tail = _sqlite_sizes(db, "SELECT COALESCE(SUM(LENGTH(data)),0) FROM updates")
        rows = _sqlite_sizes(db, "SELECT COUNT(*) FROM updates")
        return {
            "logical_bytes": snap["logical_bytes"] + tail["logical_bytes"],
            "snapshot_bytes": snap["logical_bytes"],
            "tail_bytes": tail["logical_bytes"],
            "tail_updates": rows["logical_bytes"],
            "file_bytes": snap["file_bytes"],
        }


class _Subprocess(Server):
    """A peer run as one child process (started by the subclass into ``proc``)."""

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class Jupyter(_Subprocess):
    name = "jupyter-server-ydoc"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.cwd = workdir / "cwd"
        self.cwd.mkdir(exist_ok=True)
        self.log_path = workdir / "jupyter.log"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Jupyter:
        jdirs = self.workdir / "jupyter"
        env = {
            **os.environ,
            "JUPYTER_CONFIG_DIR": str(jdirs / "config"),
            "JUPYTER_DATA_DIR": str(jdirs / "data"),
            "JUPYTER_RUNTIME_DIR": str(jdirs / "runtime"),
            "JUPYTER_PLATFORM_DIRS": "1",
            "IPYTHONDIR": str(jdirs / "ipython"),
        }
        env.pop("VIRTUAL_ENV", None)
        cmd = [
            str(bench_python_bin("jupyter")), "server", "--no-browser",
            "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0", f"--ServerApp.root_dir={self.root}",
            f"--IdentityProvider.token={TOKEN}", "--ServerApp.open_browser=False", "--allow-root",
        ]  # fmt: skip
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            cmd, cwd=self.cwd, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        log_path = self.log_path
        exited = process_exited(
            self.proc, lambda: f"jupyter exited:\n{log_path.read_text()[-3000:]}"
        )
        ready = lambda: http_ok(f"{self.http_url}/api/status", headers=self._auth())  # noqa: E731
        if poll_until(ready, timeout=90, interval=0.2, failed=exited):
            return self
        raise TimeoutError(f"jupyter did not start:\n{self.log_path.read_text()[-3000:]}")

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"token {TOKEN}"}

    def target(self, path: str) -> dict[str, Any]:
        r = httpx.put(
            f"{self.http_url}/api/collaboration/session/{path}",
            json={"format": "json", "type": "notebook"},
            headers=self._auth(),
            timeout=120,
        )
        assert r.status_code in (200, 201), r.text
        info = r.json()
        url = (
            f"ws://127.0.0.1:{self.port}/api/collaboration/room/"
            f"{info['format']}:{info['type']}:{info['fileId']}"
            f"?sessionId={info['sessionId']}&token={TOKEN}"
        )
        return {"url": url, "label": path}

    def log_sizes(self) -> dict[str, int]:
        return _sqlite_sizes(
            self.cwd / ".jupyter_ystore.db", "SELECT COALESCE(SUM(LENGTH(yupdate)),0) FROM yupdates"
        )


class Hocuspocus(_Subprocess):
    name = "hocuspocus"
    protocol = "hocuspocus"

    def __init__(
        self, workdir: Path, args: list[str] | None = None, root: Path | None = None
    ) -> None:
        super().__init__(workdir)
        if root is not None:
            self.root = root
        self.args = args or []
        self.db = workdir / "hocuspocus.sqlite"
        self.log_path = workdir / "hocuspocus.log"

    def start(self) -> Hocuspocus:
        cmd = [
            "node", str(NODE_DIR / "hocuspocus-server.mjs"), "--port", str(self.port),
            "--root", str(self.root), "--db", str(self.db), "--token", TOKEN, *self.args,
        ]  # fmt: skip
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(cmd, cwd=NODE_DIR, stdout=log, stderr=subprocess.STDOUT)
        log_path = self.log_path
        exited = process_exited(
            self.proc, lambda: f"hocuspocus exited:\n{log_path.read_text()[-3000:]}"
        )
        listening = lambda: '"listening"' in log_path.read_text()  # noqa: E731
        if poll_until(listening, timeout=30, interval=0.1, failed=exited):
            return self
        raise TimeoutError("hocuspocus did not start")

    def target(self, path: str) -> dict[str, Any]:
        return {"url": f"ws://127.0.0.1:{self.port}/", "doc": path, "token": TOKEN, "label": path}

    def log_sizes(self) -> dict[str, int]:
        return _sqlite_sizes(self.db, "SELECT COALESCE(SUM(LENGTH(data)),0) FROM documents")

    def store_events(self) -> tuple[int, int]:
        writes = size = 0
        for line in self.log_path.read_text().splitlines():
            if line.startswith("{"):
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if event.get("event") == "store":
                    writes += 1
                    size += int(event["bytes"])
        return writes, size


SERVERS: dict[str, type[Server]] = {
    "cs3collab": Cs3collab,
    "jupyter": Jupyter,
    "hocuspocus": Hocuspocus,
}


# -- two instances over Redis (P6) ------------------------------------------------------------


class Cluster:
    """``n`` instances of one server kind sharing documents through a fresh redis-server."""

    name = ""
    protocol = "ywebsocket"

    def __init__(self, workdir: Path, n: int = 2) -> None:
        self.workdir = workdir
        self.root = workdir / "root"
        self.root.mkdir(parents=True, exist_ok=True)
        self.redis = RedisProcess(data_dir=workdir / "redis", appendfsync="everysec")
        self.n = n
        self.instances: list[Server] = []

    def _make(self, i: int) -> Server:
        raise NotImplementedError

    @property
    def pids(self) -> list[int]:
        return [s.pid for s in self.instances]

    @property
    def redis_pid(self) -> int:
        assert self.redis.proc is not None
        return self.redis.proc.pid

    def start(self) -> Cluster:
        self.redis.start()
        try:
            for i in range(self.n):
                self.instances.append(self._make(i).start())
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for s in reversed(self.instances):
            s.stop()
        self.redis.stop()

    def target(self, path: str, i: int) -> dict[str, Any]:
        return self.instances[i].target(path)

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Cs3collabCluster(Cluster):
    name = "cs3collab"

    def _make(self, i: int) -> Server:
        args = ["--fanout", "redis", "--redis-url", self.redis.url, "--instance-name", f"hub{i}"]
        return Cs3collab(self.workdir / f"hub{i}", args=args, root=self.root)


class HocuspocusCluster(Cluster):
    name = "hocuspocus"
    protocol = "hocuspocus"

    def _make(self, i: int) -> Server:
        args = ["--redis", self.redis.url, "--name", f"hocuspocus{i}"]
        return Hocuspocus(self.workdir / f"hp{i}", args=args, root=self.root)


CLUSTERS: dict[str, type[Cluster]] = {
    "cs3collab": Cs3collabCluster,
    "hocuspocus": HocuspocusCluster,
}
