"""Foreground dev commands (``scripts/revad-start``, the dev stack) run until SIGTERM or Ctrl-C,
then clean up: the signal only sets a flag their main loop reads."""

from __future__ import annotations

import signal


class StopRequest:
    """``requested`` turns True on SIGTERM or SIGINT (handlers installed on construction)."""

    def __init__(self) -> None:
        self.requested = False
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, frame: object) -> None:
        self.requested = True
