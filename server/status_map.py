"""The one place where roitrack's named errors become gRPC status codes."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

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

# Trailing metadata on every status the server sends on purpose (an abort with a named error, the auth refusal, a
# normal end). A client that sees a status without it knows gRPC core made that status itself - a broken
# connection, a reset stream, a write that raced the call's end (grpc/grpc#36066: the Python client then reports
# INTERNAL "Internal error from Core" in place of the server's status) - and may fail over instead of giving up.
STATUS_ORIGIN_KEY = "roitrack-status-origin"
SERVER_STATUS_METADATA: tuple[tuple[str, str], ...] = ((STATUS_ORIGIN_KEY, "server"),)

REFUSE_AFTER_FIRST_MESSAGE_S = 1.0
"""A streaming call refused before it sent anything (bad token, draining, no waiting slot) is ended only after its
first message arrives, or this long: the client is then waiting for the answer instead of writing, so its write
cannot race the refusal (which gRPC's Python client reports as INTERNAL "Internal error from Core")."""


async def read_first_then(request_iterator: Any) -> None:
    """Wait for a streaming call's first message (at most :data:`REFUSE_AFTER_FIRST_MESSAGE_S`), ignoring it."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(anext(aiter(request_iterator)), REFUSE_AFTER_FIRST_MESSAGE_S)


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
