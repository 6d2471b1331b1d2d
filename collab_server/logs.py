"""Structured logs with stdlib logging: ``key=value`` pairs for room, user and friends."""

from __future__ import annotations

import logging
import sys
from typing import Any

_FIELDS = (
    "task", "room", "user", "client", "code", "reason", "etag", "seconds", "error", "path",
)  # fmt: skip


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        base = f"{self.formatTime(record)} {record.levelname} {record.name}: {record.getMessage()}"
        extras = [f"{k}={getattr(record, k)!r}" for k in _FIELDS if hasattr(record, k)]
        line = " ".join([base, *extras])
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter())
    root = logging.getLogger("cs3collab")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(f"cs3collab.{name}")


def kv(**fields: Any) -> dict[str, Any]:
    """``extra=`` payload for a log call."""
    return fields
