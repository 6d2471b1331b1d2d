"""Drive ``bench/node/loadgen.mjs`` (the Node load generator): config in, JSON lines out."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

from bench.setup import NODE_DIR


class Generator:
    def __init__(self, config: dict[str, Any], workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="loadgen-", suffix=".json", dir=workdir)
        with open(fd, "w") as f:
            json.dump(config, f)
        self.stderr_path = Path(name).with_suffix(".stderr")
        self._stderr = self.stderr_path.open("wb")
        self.proc = subprocess.Popen(
            [
                "node",
                *os.environ.get("LOADGEN_NODE_ARGS", "").split(),
                "--max-old-space-size=8192",
                str(NODE_DIR / "loadgen.mjs"),
                name,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            bufsize=1,
        )
        self._events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.strip()
            if line.startswith("{"):
                self._events.put(json.loads(line))
        self._events.put(None)

    def expect(self, event: str, timeout: float = 300) -> dict[str, Any]:
        """The next event of this name (errors and an early exit raise)."""
        while True:
            try:
                item = self._events.get(timeout=timeout)
            except queue.Empty:
                raise TimeoutError(f"load generator: no {event!r} within {timeout} s") from None
            if item is None:
                raise RuntimeError(f"load generator exited before {event!r}: {self.stderr_tail()}")
            if item.get("event") == "error":
                raise RuntimeError(f"load generator error: {item.get('message')}")
            if item.get("event") == event:
                return item

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def stderr_tail(self) -> str:
        try:
            return self.stderr_path.read_text()[-2000:]
        except OSError:
            return ""

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._stderr.close()
