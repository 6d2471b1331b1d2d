"""The gateway connection of the ``cs3`` backend: one gRPC channel and one HTTP client.

- gRPC: the ``cs3apis`` stubs (pinned to the server's API date) on a ``grpc.aio`` channel; the
  user's token travels as ``x-access-token`` metadata on every call.
- Idempotent calls are retried with exponential backoff on ``Unavailable``; the caller says
  which calls are idempotent (writes, moves, deletes and lock changes never are).
- Both the channel and the HTTP client belong to one event loop; they are (re)opened lazily on
  the loop of the call.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
import grpc.aio
import httpx
from cs3.gateway.v1beta1 import gateway_api_pb2_grpc as gw_grpc
from cs3.storage.provider.v1beta1 import provider_api_pb2 as sp_pb

from storage_bridge.cs3.conversions import to_reference
from storage_bridge.cs3.errors import CODE_OK, Op, rpc_error, status_error
from storage_bridge.cs3.settings import CS3Settings
from storage_bridge.errors import StorageError, Unavailable
from storage_bridge.types import Ref

log = logging.getLogger("storage_bridge.cs3")

T = TypeVar("T")


class Gateway:
    """Calls to one CS3 gateway, as whichever user's token is passed."""

    def __init__(self, settings: CS3Settings) -> None:
        self.settings = settings
        self._channel: grpc.aio.Channel | None = None
        self._stub: Any = None
        self._http: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    @property
    def http(self) -> httpx.AsyncClient:
        """The data-transfer client (open after any call on this loop)."""
        self._ensure_open()
        assert self._http is not None
        return self._http

    def _ensure_open(self) -> None:
        if self._closed:
            raise StorageError("storage is closed")
        loop = asyncio.get_running_loop()
        if self._stub is not None and self._loop is loop:
            return
        # grpc.aio channels and httpx clients belong to one event loop; (re)open on this one.
        s = self.settings
        options = [
            ("grpc.max_receive_message_length", s.max_message_bytes),
            ("grpc.max_send_message_length", s.max_message_bytes),
            ("grpc.keepalive_time_ms", 30_000),
            # gRPC's default reconnect backoff grows to 120 s after a few refused connects, so
            # a gateway back from a restart would stay unused for minutes: cap it at 2 s.
            ("grpc.initial_reconnect_backoff_ms", 200),
            ("grpc.min_reconnect_backoff_ms", 200),
            ("grpc.max_reconnect_backoff_ms", 2_000),
        ]
        if s.tls:
            root = None
            if s.ca_file:
                with open(s.ca_file, "rb") as f:
                    root = f.read()
            creds = grpc.ssl_channel_credentials(root_certificates=root)
            self._channel = grpc.aio.secure_channel(s.gateway, creds, options=options)
        else:
            self._channel = grpc.aio.insecure_channel(s.gateway, options=options)
        self._stub = gw_grpc.GatewayAPIStub(self._channel)
        verify: str | bool = s.ca_file if s.ca_file else True
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(s.transfer_timeout, connect=s.connect_timeout),
            verify=verify,
            follow_redirects=False,
        )
        self._loop = loop

    async def aclose(self) -> None:
        self._closed = True
        channel, http = self._channel, self._http
        self._channel, self._stub, self._http, self._loop = None, None, None, None
        if http is not None:
            await http.aclose()
        if channel is not None:
            await channel.close(grace=None)

    async def call(self, method: str, request: Any, token: str | None) -> Any:
        """One gateway RPC; transport failures become typed errors. Status is not checked."""
        self._ensure_open()
        metadata = (("x-access-token", token),) if token else None
        try:
            return await getattr(self._stub, method)(
                request, metadata=metadata, timeout=self.settings.timeout
            )
        except grpc.RpcError as exc:
            raise rpc_error(exc, call=method) from exc

    async def retrying(self, what: str, attempt: Callable[[], Awaitable[T]]) -> T:
        """Run an idempotent ``attempt``; retry on ``Unavailable`` with exponential backoff."""
        s = self.settings
        delay = s.backoff
        for n in range(s.retries + 1):
            try:
                return await attempt()
            except Unavailable as exc:
                if n >= s.retries:
                    raise
                log.info("%s unavailable (%s); retry %d in %.2fs", what, exc, n + 1, delay)
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, s.max_backoff)
        raise AssertionError("unreachable")

    async def checked(
        self,
        method: str,
        request: Any,
        token: str | None,
        *,
        idempotent: bool = False,
        op: Op = Op.GENERIC,
        if_match: bool = False,
    ) -> Any:
        """An RPC whose CS3 status must be OK (else the typed error)."""

        async def attempt() -> Any:
            resp = await self.call(method, request, token)
            if resp.status.code != CODE_OK:
                raise status_error(
                    resp.status.code, resp.status.message, call=method, op=op, if_match=if_match
                )
            return resp

        if idempotent:
            return await self.retrying(method, attempt)
        return await attempt()

    async def stat_info(self, token: str, ref: Ref) -> Any:
        """The raw ResourceInfo of ``ref`` (idempotent, retried)."""
        resp = await self.checked(
            "Stat", sp_pb.StatRequest(ref=to_reference(ref)), token, idempotent=True
        )
        return resp.info
