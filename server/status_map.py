"""The one place where roitrack's named errors become gRPC status codes."""

from __future__ import annotations

import grpc

from server.registry import IdleTimeoutError, OpenTimeoutError, StreamClosedError
from tracker_core.errors import (
    AlreadyExistsError,
    ConfigError,
    InvalidInputError,
    NotFoundError,
    ResourceExhaustedError,
    RoitrackError,
    SnapshotError,
    UnauthenticatedError,
    UnavailableError,
    WeightsError,
)

# Most specific first: UnsafePickleError is a WeightsError, so subclasses resolve through the MRO below.
_CODES: dict[type[RoitrackError], grpc.StatusCode] = {
    IdleTimeoutError: grpc.StatusCode.DEADLINE_EXCEEDED,
    OpenTimeoutError: grpc.StatusCode.DEADLINE_EXCEEDED,
    StreamClosedError: grpc.StatusCode.ABORTED,
    InvalidInputError: grpc.StatusCode.INVALID_ARGUMENT,
    NotFoundError: grpc.StatusCode.NOT_FOUND,
    AlreadyExistsError: grpc.StatusCode.ALREADY_EXISTS,
    ResourceExhaustedError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    UnauthenticatedError: grpc.StatusCode.UNAUTHENTICATED,
    UnavailableError: grpc.StatusCode.UNAVAILABLE,
    ConfigError: grpc.StatusCode.FAILED_PRECONDITION,
    SnapshotError: grpc.StatusCode.FAILED_PRECONDITION,
    WeightsError: grpc.StatusCode.FAILED_PRECONDITION,
}


def status_code(exc: BaseException) -> grpc.StatusCode:
    """gRPC code for ``exc``: its named error type's code, ``INTERNAL`` for anything unexpected."""
    for cls in type(exc).__mro__:
        code = _CODES.get(cls)  # type: ignore[call-overload]
        if code is not None:
            return code
    if isinstance(exc, RoitrackError):
        return grpc.StatusCode.UNKNOWN
    return grpc.StatusCode.INTERNAL


def status_message(exc: BaseException) -> str:
    """The message sent with the status: the error's own text, or a generic one for unexpected errors."""
    if isinstance(exc, RoitrackError):
        return str(exc)
    return f"internal error: {type(exc).__name__}"
