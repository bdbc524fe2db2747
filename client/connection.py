"""An asyncio gRPC channel to a roitrack server (plaintext, TLS, or mutual TLS) and the auth metadata."""

from __future__ import annotations

from pathlib import Path

import grpc

from client.health import validate_target
from tracker_core.errors import ConfigError

MAX_MESSAGE_BYTES = 64 * 1024 * 1024


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
) -> grpc.aio.Channel:
    """Plaintext channel, or TLS when ``tls_ca`` is given (mutual TLS with ``tls_cert`` + ``tls_key``)."""
    validate_target(target)
    if (tls_cert is None) != (tls_key is None):
        raise ConfigError("--tls-cert and --tls-key go together (mutual TLS needs both)")
    options: list[tuple[str, int | str]] = [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
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
