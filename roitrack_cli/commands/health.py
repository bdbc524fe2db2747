"""``roitrack health``: ask a server's gRPC health service; exit 0 when SERVING, 1 otherwise.

Used by the Docker image's HEALTHCHECK (Docker reads 0 as healthy, anything else as unhealthy), by compose and by
operators. Connection failures print the gRPC status name (``UNAVAILABLE``, ``DEADLINE_EXCEEDED``,
``UNAUTHENTICATED``...) and exit 1; bad arguments (a malformed ``--server``, unreadable certificate files) exit 2.
Token and TLS settings default to the same environment variables the server reads, so inside the container the
check needs no flags.
"""

from __future__ import annotations

import argparse
import os
import sys

HELP = "ask a server's gRPC health service (exit 0 if SERVING)"

ENV_SERVER = "ROITRACK_HEALTH_SERVER"
ENV_TOKEN = "ROITRACK_TOKEN"
ENV_TLS_CA = "ROITRACK_TLS_CA"
ENV_TLS_CERT = "ROITRACK_HEALTH_TLS_CERT"
ENV_TLS_KEY = "ROITRACK_HEALTH_TLS_KEY"
ENV_TLS_SERVER_NAME = "ROITRACK_HEALTH_TLS_SERVER_NAME"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--server",
        default=os.environ.get(ENV_SERVER, "localhost:50051"),
        help=f"HOST:PORT of the gRPC server (default ${ENV_SERVER} or localhost:50051)",
    )
    parser.add_argument(
        "--service",
        default="",
        help="service name to ask about, e.g. roitrack.v1.Tracking (default: '' = the whole server)",
    )
    parser.add_argument(
        "--timeout", type=float, default=3.0, help="deadline of the call in seconds (default 3)"
    )
    parser.add_argument(
        "--token",
        default=os.environ.get(ENV_TOKEN) or None,
        help=f"bearer token, sent as 'authorization: Bearer ...' (default ${ENV_TOKEN})",
    )
    parser.add_argument(
        "--tls-ca",
        default=os.environ.get(ENV_TLS_CA) or None,
        help=f"CA certificate (PEM) to verify the server; enables TLS (default ${ENV_TLS_CA})",
    )
    parser.add_argument(
        "--tls-cert",
        default=os.environ.get(ENV_TLS_CERT) or None,
        help=f"client certificate (PEM) for mutual TLS (default ${ENV_TLS_CERT})",
    )
    parser.add_argument(
        "--tls-key",
        default=os.environ.get(ENV_TLS_KEY) or None,
        help=f"client private key (PEM) for mutual TLS (default ${ENV_TLS_KEY})",
    )
    parser.add_argument(
        "--tls-server-name",
        default=os.environ.get(ENV_TLS_SERVER_NAME) or None,
        help=f"expected name in the server certificate (default ${ENV_TLS_SERVER_NAME} or the host)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing when SERVING")


def run(args: argparse.Namespace) -> int:
    from client.health import check_health

    result = check_health(
        args.server,
        args.service,
        timeout=args.timeout,
        token=args.token,
        tls_ca=args.tls_ca,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_server_name=args.tls_server_name,
    )
    if result.serving:
        if not args.quiet:
            print(result.status)
        return 0
    print(f"roitrack health: {result.describe()}", file=sys.stderr)
    return 1
