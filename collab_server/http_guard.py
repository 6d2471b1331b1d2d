"""uvicorn's HTTP protocol with two limits it lacks: header bytes and a header deadline.

uvicorn (httptools) buffers a request's URL and headers without bound and waits for them
without a deadline. Measured before this module: 50 upgrade requests with a header line over
8 KiB held 52 MB and were never answered; a client sending one header byte at a time
(slowloris) kept its socket forever. Here the request line plus headers of each request are
capped at ``max_header_bytes`` (answered 431, then closed) and must be complete within
``handshake_timeout`` of the connection or of the previous response (answered 408, closed).
The websocket upgrade happens after the headers, so this covers the handshake too;
``wsprotocol`` answers the requests that websockets' own parser refuses.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from collab_server.wsprotocol import http_error


class GuardedHttpProtocol(HttpToolsProtocol):
    max_header_bytes = 16 * 1024
    handshake_timeout = 10.0
    on_refused: Callable[[str], None] | None = None  # reason -> metrics

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_bytes = 0
        self._deadline: asyncio.TimerHandle | None = None
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(self.handshake_timeout, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        self._refuse(408, b"request headers not received in time", "header_timeout")

    def _refuse(self, status: int, body: bytes, reason: str) -> None:
        if self._refused or self.transport.is_closing():
            return
        self._refused = True
        self.transport.write(http_error(status, body))
        self.transport.close()
        if self.on_refused is not None:
            self.on_refused(reason)

    # Once refused, nothing of the request reaches the app: every parser callback stops here.

    def data_received(self, data: bytes) -> None:
        if not self._refused:
            super().data_received(data)

    def handle_websocket_upgrade(self) -> None:
        if not self._refused:
            super().handle_websocket_upgrade()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        self._arm()

    def _count(self, size: int) -> bool:
        self._header_bytes += size
        if self._header_bytes > self.max_header_bytes:
            self._refuse(431, b"request header fields too large", "header_size")
        return not self._refused

    def on_url(self, url: bytes) -> None:
        if self._count(len(url)):
            super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._count(len(name) + len(value) + 4):
            super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._disarm()
        if not self._refused:
            super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self._refused:
            super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()  # the next request on a kept-alive connection gets a deadline too


def guarded_http_protocol(
    *, max_header_bytes: int, handshake_timeout: float, on_refused: Callable[[str], None]
) -> type[GuardedHttpProtocol]:
    """A protocol class with these limits (uvicorn instantiates the class itself)."""
    return type(
        "GuardedHttpProtocol",
        (GuardedHttpProtocol,),
        {
            "max_header_bytes": max_header_bytes,
            "handshake_timeout": handshake_timeout,
            "on_refused": staticmethod(on_refused),
        },
    )
