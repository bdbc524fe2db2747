"""Named errors -> gRPC status codes, in one place; the bearer-token check."""

from __future__ import annotations

import grpc
import pytest

from server.auth import BearerTokenInterceptor
from server.registry import IdleTimeoutError, StreamClosedError
from server.status_map import status_code, status_message
from tracker_core import errors as e


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (e.InvalidInputError("x"), grpc.StatusCode.INVALID_ARGUMENT),
        (e.NotFoundError("x"), grpc.StatusCode.NOT_FOUND),
        (e.AlreadyExistsError("x"), grpc.StatusCode.ALREADY_EXISTS),
        (e.ResourceExhaustedError("x"), grpc.StatusCode.RESOURCE_EXHAUSTED),
        (e.UnauthenticatedError("x"), grpc.StatusCode.UNAUTHENTICATED),
        (e.UnavailableError("x"), grpc.StatusCode.UNAVAILABLE),
        (e.ConfigError("x"), grpc.StatusCode.FAILED_PRECONDITION),
        (e.WeightsError("x"), grpc.StatusCode.FAILED_PRECONDITION),
        (e.UnsafePickleError("x"), grpc.StatusCode.FAILED_PRECONDITION),
        (e.SnapshotError("x"), grpc.StatusCode.FAILED_PRECONDITION),
        (IdleTimeoutError("x"), grpc.StatusCode.DEADLINE_EXCEEDED),
        (StreamClosedError("x"), grpc.StatusCode.ABORTED),
        (e.RoitrackError("x"), grpc.StatusCode.UNKNOWN),
        (KeyError("secret internals"), grpc.StatusCode.INTERNAL),
    ],
)
def test_codes(exc: BaseException, code: grpc.StatusCode) -> None:
    assert status_code(exc) == code


def test_messages_hide_internals() -> None:
    assert status_message(e.InvalidInputError("bad box 3")) == "bad box 3"
    assert status_message(KeyError("/etc/secret")) == "internal error: KeyError"


def test_every_named_error_has_a_code() -> None:
    for cls in (getattr(e, n) for n in dir(e)):
        if isinstance(cls, type) and issubclass(cls, e.RoitrackError) and cls is not e.RoitrackError:
            assert status_code(cls("x")) != grpc.StatusCode.UNKNOWN, cls


def test_bearer_check() -> None:
    auth = BearerTokenInterceptor("correct-horse-battery")
    assert auth.check((("authorization", "Bearer correct-horse-battery"),)) is None
    assert auth.check((("authorization", b"Bearer correct-horse-battery"),)) is None
    assert auth.check(()) is not None and "missing" in (auth.check(None) or "")
    assert auth.check((("authorization", "Bearer wrong"),)) == "invalid bearer token"
    assert auth.check((("authorization", "correct-horse-battery"),)) == "invalid bearer token"
    with pytest.raises(ValueError):
        BearerTokenInterceptor("")
