"""Ask a server's standard ``grpc.health.v1`` health service (what ``roitrack health`` and Docker's HEALTHCHECK use).

No torch, no server imports: this runs every few seconds inside the container and must start fast.

Channel options mirror the server's security settings: a bearer token is sent as ``authorization: Bearer <token>``
metadata; ``tls_ca`` switches to TLS (server certificate checked against that CA), and ``tls_cert`` + ``tls_key`` add a
client certificate for mutual TLS.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tracker_core.errors import ConfigError, InvalidInputError

DEFAULT_SERVER = "localhost:50051"
DEFAULT_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class HealthResult:
    """Outcome of one health check.

    ``status`` is the serving status name (``SERVING``, ``NOT_SERVING``, ``SERVICE_UNKNOWN``, ``UNKNOWN``) when the
    server answered, else the gRPC status code name of the failed call (``UNAVAILABLE``, ``DEADLINE_EXCEEDED``,
    ``UNAUTHENTICATED``, ``NOT_FOUND``...). ``answered`` tells which of the two it is.
    """

    target: str
    service: str
    status: str
    answered: bool
    detail: str = ""

    @property
    def serving(self) -> bool:
        return self.answered and self.status == "SERVING"

    def describe(self) -> str:
        what = f"service {self.service!r}" if self.service else "server"
        if self.answered:
            return f"{what} at {self.target} is {self.status}"
        return f"{what} at {self.target}: {self.status}: {self.detail}".rstrip(": ")


def validate_target(target: str) -> str:
    """Check ``HOST:PORT`` (or a gRPC URI such as ``unix:/path`` / ``dns:///host:port``); return it unchanged."""
    if not target or any(c.isspace() for c in target):
        raise InvalidInputError(f"--server must be HOST:PORT, got {target!r}")
    if target.startswith(("unix:", "dns:", "ipv4:", "ipv6:")):
        return target
    host, sep, port = target.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidInputError(f"--server must be HOST:PORT with a port in 1..65535, got {target!r}")
    return target


def _read(path: str | Path, what: str) -> bytes:
    p = Path(path)
    try:
        return p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {p}: {exc.strerror or exc}") from exc


def make_channel(
    target: str,
    *,
    tls_ca: str | Path | None = None,
    tls_cert: str | Path | None = None,
    tls_key: str | Path | None = None,
    tls_server_name: str | None = None,
) -> grpc.Channel:
    """A plaintext channel, or a TLS one when ``tls_ca`` is given (mutual TLS with ``tls_cert`` + ``tls_key``)."""
    validate_target(target)
    if (tls_cert is None) != (tls_key is None):
        raise ConfigError("--tls-cert and --tls-key go together (mutual TLS needs both)")
    if tls_ca is None:
        if tls_cert is not None:
            raise ConfigError(
                "--tls-cert/--tls-key need --tls-ca (the CA that signed the server's certificate)"
            )
        if tls_server_name is not None:
            raise ConfigError("--tls-server-name needs --tls-ca")
        return grpc.insecure_channel(target)
    creds = grpc.ssl_channel_credentials(
        root_certificates=_read(tls_ca, "CA certificate"),
        private_key=_read(tls_key, "client key") if tls_key is not None else None,
        certificate_chain=_read(tls_cert, "client certificate") if tls_cert is not None else None,
    )
    options = [("grpc.ssl_target_name_override", tls_server_name)] if tls_server_name else []
    return grpc.secure_channel(target, creds, options=options)


def check_health(
    target: str = DEFAULT_SERVER,
    service: str = "",
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    token: str | None = None,
    tls_ca: str | Path | None = None,
    tls_cert: str | Path | None = None,
    tls_key: str | Path | None = None,
    tls_server_name: str | None = None,
    metadata: Sequence[tuple[str, str]] = (),
) -> HealthResult:
    """One ``grpc.health.v1.Health/Check`` call. ``service=""`` asks about the whole server.

    Never raises for an unreachable or refusing server (that is a result with ``answered=False``); raises
    ``InvalidInputError`` / ``ConfigError`` for bad arguments (bad target, unreadable certificate files).
    """
    if not timeout > 0:
        raise InvalidInputError(f"--timeout must be > 0 seconds, got {timeout}")
    md = list(metadata)
    if token:
        md.append(("authorization", f"Bearer {token}"))
    channel = make_channel(
        target, tls_ca=tls_ca, tls_cert=tls_cert, tls_key=tls_key, tls_server_name=tls_server_name
    )
    with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout, metadata=md)
        except grpc.RpcError as exc:
            code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
            details = exc.details() if hasattr(exc, "details") else str(exc)
            return HealthResult(target, service, code.name, answered=False, detail=details or "")
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    return HealthResult(target, service, status, answered=True)
