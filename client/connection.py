"""An asyncio gRPC channel to a roitrack server (plaintext, TLS, or mutual TLS) and the auth metadata."""

from __future__ import annotations

from pathlib import Path

import grpc

from client.health import validate_target
from tracker_core.errors import ConfigError

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
KEEPALIVE_S = 10.0
KEEPALIVE_TIMEOUT_S = 5.0


def _read(path: str | Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc


def aio_channel(
    target: str,
    *,
    tls_ca: str | Path | None = None,
    tls_cert: str | Path | None = None,
    tls_key: str | Path | None = None,
    tls_server_name: str | None = None,
    keepalive_s: float = KEEPALIVE_S,
    keepalive_timeout_s: float = KEEPALIVE_TIMEOUT_S,
) -> grpc.aio.Channel:
    """Plaintext channel, or TLS when ``tls_ca`` is given (mutual TLS with ``tls_cert`` + ``tls_key``).

    The channel pings the server every ``keepalive_s`` (with or without data in flight) and drops the connection
    when a ping is not answered within ``keepalive_timeout_s``: a network path that silently stops forwarding
    ends the call with UNAVAILABLE within ~15 s, and ``roitrack stream`` reconnects and resumes. The server
    accepts pings every 5 s or slower (``keepalive_min_client_interval_s``)."""
    validate_target(target)
    if (tls_cert is None) != (tls_key is None):
        raise ConfigError("--tls-cert and --tls-key go together (mutual TLS needs both)")
    options: list[tuple[str, int | str]] = [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.keepalive_time_ms", int(keepalive_s * 1000)),
        ("grpc.keepalive_timeout_ms", int(keepalive_timeout_s * 1000)),
        (
            "grpc.http2.ping_timeout_ms",
            int(keepalive_timeout_s * 1000),
        ),  # bounds every ping's ack (default 60 s)
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
    ]
    if tls_ca is None:
        if tls_cert is not None or tls_server_name is not None:
            raise ConfigError("--tls-cert/--tls-key/--tls-server-name need --tls-ca")
        return grpc.aio.insecure_channel(target, options=options)
    creds = grpc.ssl_channel_credentials(
        root_certificates=_read(tls_ca, "CA certificate"),
        private_key=_read(tls_key, "client key") if tls_key is not None else None,
        certificate_chain=_read(tls_cert, "client certificate") if tls_cert is not None else None,
    )
    if tls_server_name:
        options.append(("grpc.ssl_target_name_override", tls_server_name))
    return grpc.aio.secure_channel(target, creds, options=options)


STREAM_ID_HEADER = "x-roitrack-stream-id"


def auth_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),) if token else ()


def stream_metadata(token: str | None, stream_id: str) -> tuple[tuple[str, str], ...]:
    """Auth plus the stream id header a gRPC-aware load balancer hashes on (stream affinity, deploy/nginx)."""
    return (*auth_metadata(token), (STREAM_ID_HEADER, stream_id))
