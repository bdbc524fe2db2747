"""Named error types shared by every package.

Each type carries a user-facing message. The server maps them to gRPC status codes in one place
(``server/status_map.py``); the CLI maps any of them to exit code 2 and prints the message.
Nothing here imports grpc or torch.
"""

from __future__ import annotations


class RoitrackError(Exception):
    """Base class of every error roitrack raises on purpose (bad input, bad files, limits)."""


class InvalidInputError(RoitrackError, ValueError):
    """Malformed input: a bad box, image, option value or protocol message."""


class WeightsError(RoitrackError):
    """A weights/checkpoint file is missing, corrupt, truncated, foreign or does not match."""


class UnsafePickleError(WeightsError):
    """A checkpoint names a pickle global that is not on the allow-list."""


class ConfigError(RoitrackError):
    """A configuration file, environment variable or flag is invalid."""


class NotFoundError(RoitrackError):
    """A named resource (stream, file, sequence) does not exist."""


class AlreadyExistsError(RoitrackError):
    """A resource with that name is already live (e.g. a stream id)."""


class ResourceExhaustedError(RoitrackError):
    """A configured limit was reached (streams, frame size, queue)."""


class UnauthenticatedError(RoitrackError):
    """Missing or wrong credentials."""


class UnavailableError(RoitrackError):
    """The service is not ready (warming up) or is draining."""


class SnapshotError(RoitrackError):
    """A stored stream snapshot is corrupt, foreign, from an incompatible version, or not this caller's."""
