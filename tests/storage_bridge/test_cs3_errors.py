"""CS3 status / gRPC / HTTP failures map to the typed storage errors, keeping the message.

The (code, message) pairs below are what reva v2.27.7 actually answered in
tests/storage_bridge/test_cs3.py and test_cs3_contract.py.
"""

from __future__ import annotations

import grpc
import pytest
from cs3.rpc.v1beta1 import code_pb2

from storage_bridge.cs3 import errors as cs3_errors
from storage_bridge.cs3.errors import Op, download_error, http_error, rpc_error, status_error
from storage_bridge.errors import (
    AlreadyExists,
    InvalidArgument,
    Locked,
    NotFound,
    PermissionDenied,
    PreconditionFailed,
    StorageError,
    Unauthenticated,
    Unavailable,
)


def test_code_constants_match_the_stubs() -> None:
    for name, value in code_pb2.Code.items():
        assert getattr(cs3_errors, name) == value, name


@pytest.mark.parametrize(
    ("code", "message", "op", "if_match", "expected"),
    [
        (code_pb2.CODE_NOT_FOUND, "stat: error: not found: x", Op.GENERIC, False, NotFound),
        (code_pb2.CODE_PERMISSION_DENIED, "permission denied", Op.GENERIC, False, PermissionDenied),
        (code_pb2.CODE_UNAUTHENTICATED, "error dismantling token", Op.GENERIC, False,
         Unauthenticated),
        (code_pb2.CODE_LOCKED, "locked", Op.UPLOAD, False, Locked),
        (code_pb2.CODE_LOCKED, "delete: error: locked by L1", Op.GENERIC, False, Locked),
        (code_pb2.CODE_ABORTED, "delete: error: aborted: mismatching lock", Op.GENERIC, False,
         Locked),
        (code_pb2.CODE_FAILED_PRECONDITION, "set lock: error: precondition failed: already locked",
         Op.LOCK, False, Locked),
        (code_pb2.CODE_FAILED_PRECONDITION, "etag mismatch", Op.UPLOAD, True, PreconditionFailed),
        (code_pb2.CODE_FAILED_PRECONDITION, "etag mismatch", Op.UPLOAD, False, PreconditionFailed),
        (code_pb2.CODE_FAILED_PRECONDITION, "failed precondition", Op.UPLOAD, True,
         PreconditionFailed),
        (code_pb2.CODE_FAILED_PRECONDITION, "failed precondition", Op.UPLOAD, False, Locked),
        (code_pb2.CODE_FAILED_PRECONDITION, "create container: error: precondition failed: nodir",
         Op.MKDIR, False, NotFound),
        (code_pb2.CODE_ALREADY_EXISTS, "already exists", Op.UPLOAD, False, AlreadyExists),
        (code_pb2.CODE_INVALID_ARGUMENT, "bad", Op.GENERIC, False, InvalidArgument),
        (code_pb2.CODE_UNAVAILABLE, "down", Op.GENERIC, False, Unavailable),
        (code_pb2.CODE_DEADLINE_EXCEEDED, "slow", Op.GENERIC, False, Unavailable),
        (code_pb2.CODE_INTERNAL, "error getting upload id: error: aborted: mismatching lock",
         Op.UPLOAD, False, Locked),
        (code_pb2.CODE_INTERNAL, "error getting upload id: error: aborted: not locked",
         Op.UPLOAD, False, Locked),
        (code_pb2.CODE_INTERNAL, "list container:readdirent x: not a directory", Op.GENERIC,
         False, StorageError),
        (code_pb2.CODE_PERMISSION_DENIED,
         "refresh lock: error: permission denied: app names of the locks are mismatching",
         Op.LOCK, False, Locked),
        (code_pb2.CODE_PERMISSION_DENIED,
         "refresh lock: error: permission denied: users of the locks are mismatching",
         Op.LOCK, False, Locked),
        (code_pb2.CODE_PERMISSION_DENIED, "set lock: error: permission denied: x/y", Op.LOCK,
         False, PermissionDenied),
        (code_pb2.CODE_UNIMPLEMENTED, "not supported", Op.GENERIC, False, StorageError),
    ],
)  # fmt: skip
def test_status_mapping(
    code: int, message: str, op: Op, if_match: bool, expected: type[StorageError]
) -> None:
    err = status_error(code, message, call="Call", op=op, if_match=if_match)
    assert type(err) is expected
    assert message in err.message
    assert err.message.startswith("Call: ")
    assert code_pb2.Code.Name(code) in err.message


def test_preconditionfailed_is_a_kind_of_locked() -> None:
    err = status_error(code_pb2.CODE_FAILED_PRECONDITION, "etag mismatch", call="X", op=Op.UPLOAD)
    assert isinstance(err, Locked)


def test_unknown_code_keeps_message() -> None:
    err = status_error(999, "strange", call="Stat")
    assert type(err) is StorageError
    assert "strange" in err.message
    assert "CODE_999" in err.message


class FakeCall(grpc.RpcError, grpc.Call):  # type: ignore[misc]
    """The shape of a grpc.aio.AioRpcError: an RpcError that is also a Call."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def initial_metadata(self) -> None:  # pragma: no cover - unused
        return None

    def trailing_metadata(self) -> None:  # pragma: no cover - unused
        return None

    def is_active(self) -> bool:  # pragma: no cover - unused
        return False

    def time_remaining(self) -> None:  # pragma: no cover - unused
        return None

    def cancel(self) -> bool:  # pragma: no cover - unused
        return False

    def add_callback(self, callback: object) -> bool:  # pragma: no cover - unused
        return False


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (grpc.StatusCode.UNAVAILABLE, Unavailable),
        (grpc.StatusCode.DEADLINE_EXCEEDED, Unavailable),
        (grpc.StatusCode.UNAUTHENTICATED, Unauthenticated),
        (grpc.StatusCode.PERMISSION_DENIED, PermissionDenied),
        (grpc.StatusCode.NOT_FOUND, NotFound),
        (grpc.StatusCode.INVALID_ARGUMENT, InvalidArgument),
        (grpc.StatusCode.INTERNAL, StorageError),
    ],
)
def test_grpc_transport_mapping(code: grpc.StatusCode, expected: type[StorageError]) -> None:
    err = rpc_error(FakeCall(code, "connection refused"), call="Stat")
    assert type(err) is expected
    assert "connection refused" in err.message
    assert code.name in err.message


def test_grpc_error_without_call_details() -> None:
    err = rpc_error(grpc.RpcError(), call="Stat")
    assert type(err) is StorageError


def test_grpc_aio_error() -> None:
    # AioRpcError is an RpcError with code()/details() but not a grpc.Call.
    exc = grpc.aio.AioRpcError(
        grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "refused"
    )
    err = rpc_error(exc, call="WhoAmI")
    assert type(err) is Unavailable
    assert "refused" in err.message


@pytest.mark.parametrize(
    ("status", "if_match", "expected"),
    [
        (401, False, Unauthenticated),
        (403, False, PermissionDenied),
        (404, False, NotFound),
        (409, False, Locked),
        (423, False, Locked),
        (412, True, PreconditionFailed),
        (412, False, Locked),
        (400, False, InvalidArgument),
        (503, False, Unavailable),
        (500, False, StorageError),
    ],
)
def test_http_mapping(status: int, if_match: bool, expected: type[StorageError]) -> None:
    err = http_error(status, " body text ", call="PUT upload", if_match=if_match)
    assert type(err) is expected
    assert f"HTTP {status}" in err.message
    assert "body text" in err.message


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (500, Unavailable),
        (503, Unavailable),
        (404, NotFound),
        (403, PermissionDenied),
        (501, StorageError),
    ],
)
def test_download_mapping(status: int, expected: type[StorageError]) -> None:
    # a GET's 500 is worth another try (reva: a read racing a write); an upload's 500 is not
    err = download_error(status, " body text ")
    assert type(err) is expected
    assert "GET download" in err.message and f"HTTP {status}" in err.message
    assert "body text" in err.message
