"""``roitrack health`` against a real ``grpc.aio`` health server on a free loopback port.

The client is synchronous, so every call runs in a worker thread while the event loop serves.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio

from client.health import check_health
from roitrack_cli import main as cli

REPO = Path(__file__).resolve().parents[2]
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
TOKEN = "s3cret-token"


class _RequireToken(grpc.aio.ServerInterceptor):
    """What the real server does with ``--token``: refuse calls without ``authorization: Bearer <token>``."""

    def __init__(self, token: str) -> None:
        self.token = token

    async def intercept_service(self, continuation, details):  # type: ignore[no-untyped-def]
        md = dict(details.invocation_metadata or ())
        if md.get("authorization") == f"Bearer {self.token}":
            return await continuation(details)

        async def deny(request, context):  # type: ignore[no-untyped-def]
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")

        return grpc.unary_unary_rpc_method_handler(deny)


async def _start(
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    creds: grpc.ServerCredentials | None = None,
) -> tuple[grpc.aio.Server, health_aio.HealthServicer, str]:
    server = grpc.aio.server(interceptors=list(interceptors))
    servicer = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    if creds is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        port = server.add_secure_port("127.0.0.1:0", creds)
    assert port > 0
    await server.start()
    return server, servicer, f"127.0.0.1:{port}"


@pytest.fixture
async def health_server() -> AsyncIterator[tuple[health_aio.HealthServicer, str]]:
    server, servicer, addr = await _start()
    try:
        yield servicer, addr
    finally:
        await server.stop(None)


async def _cli(argv: list[str]) -> int:
    return await asyncio.to_thread(cli.main, argv)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_serving_exits_0(health_server, capsys):
    servicer, addr = health_server
    await servicer.set("", SERVING)
    assert await _cli(["health", "--server", addr, "--timeout", "5"]) == 0
    assert capsys.readouterr().out.strip() == "SERVING"


async def test_not_serving_exits_1_with_message(health_server, capsys):
    servicer, addr = health_server
    await servicer.set("", NOT_SERVING)
    assert await _cli(["health", "--server", addr]) == 1
    err = capsys.readouterr().err
    assert "NOT_SERVING" in err and addr in err


async def test_flip_is_seen_on_the_next_check(health_server):
    servicer, addr = health_server
    await servicer.set("", NOT_SERVING)
    assert await _cli(["health", "--server", addr, "-q"]) == 1
    await servicer.set("", SERVING)
    assert await _cli(["health", "--server", addr, "-q"]) == 0
    await servicer.enter_graceful_shutdown()  # what the server does on SIGTERM
    assert await _cli(["health", "--server", addr, "-q"]) == 1


async def test_named_service_and_unknown_service(health_server, capsys):
    servicer, addr = health_server
    await servicer.set("", NOT_SERVING)
    await servicer.set("roitrack.v1.Tracking", SERVING)
    assert await _cli(["health", "--server", addr, "--service", "roitrack.v1.Tracking"]) == 0
    capsys.readouterr()
    assert await _cli(["health", "--server", addr, "--service", "no.such.Service"]) == 1
    err = capsys.readouterr().err
    assert "NOT_FOUND" in err and "no.such.Service" in err


async def test_no_server_exits_1_with_status_name(capsys):
    addr = f"127.0.0.1:{_free_port()}"
    assert await _cli(["health", "--server", addr, "--timeout", "2"]) == 1
    err = capsys.readouterr().err
    assert "UNAVAILABLE" in err or "DEADLINE_EXCEEDED" in err, err


async def test_token_is_sent_as_bearer_metadata(monkeypatch, capsys):
    server, servicer, addr = await _start(interceptors=[_RequireToken(TOKEN)])
    try:
        await servicer.set("", SERVING)
        assert await _cli(["health", "--server", addr]) == 1
        assert "UNAUTHENTICATED" in capsys.readouterr().err
        assert await _cli(["health", "--server", addr, "--token", "wrong"]) == 1
        assert await _cli(["health", "--server", addr, "--token", TOKEN]) == 0
        # Inside the container the token comes from the same variable the server reads.
        monkeypatch.setenv("ROITRACK_TOKEN", TOKEN)
        assert await _cli(["health", "--server", addr]) == 0
    finally:
        await server.stop(None)


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed; cannot make a test certificate")
    key, cert = tmp / "server.key", tmp / "server.crt"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return key, cert


async def test_tls_with_ca(tmp_path, capsys):
    key, cert = _self_signed(tmp_path)
    creds = grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())])
    server, servicer, addr = await _start(creds=creds)
    try:
        await servicer.set("", SERVING)
        assert await _cli(["health", "--server", addr, "--tls-ca", str(cert)]) == 0
        # A plaintext client cannot talk to a TLS server: a clear failure, not a hang.
        assert await _cli(["health", "--server", addr, "--timeout", "2"]) == 1
        assert "UNAVAILABLE" in capsys.readouterr().err
    finally:
        await server.stop(None)


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _ca_signed(tmp: Path) -> dict[str, Path]:
    """A private CA, a server certificate for localhost/127.0.0.1 and a client certificate, all signed by it."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed; cannot make test certificates")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    p = {
        n: tmp / n
        for n in ("ca.key", "ca.crt", "srv.key", "srv.csr", "srv.crt", "cli.key", "cli.csr", "cli.crt")
    }
    _openssl("req", "-x509", *ec, "-days", "1", "-subj", "/CN=test CA", "-keyout", str(p["ca.key"]),
             "-out", str(p["ca.crt"]))  # fmt: skip
    ext = tmp / "san.ext"
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for who, cn in (("srv", "localhost"), ("cli", "health-probe")):
        _openssl(
            "req", *ec, "-subj", f"/CN={cn}", "-keyout", str(p[f"{who}.key"]), "-out", str(p[f"{who}.csr"])
        )
        extra = ["-extfile", str(ext)] if who == "srv" else []
        _openssl("x509", "-req", "-in", str(p[f"{who}.csr"]), "-CA", str(p["ca.crt"]), "-CAkey", str(p["ca.key"]),
                 "-CAcreateserial", "-days", "1", "-out", str(p[f"{who}.crt"]), *extra)  # fmt: skip
    return p


async def test_mutual_tls_client_certificate_from_flags_or_env(tmp_path, monkeypatch, capsys):
    p = _ca_signed(tmp_path)
    creds = grpc.ssl_server_credentials(
        [(p["srv.key"].read_bytes(), p["srv.crt"].read_bytes())],
        root_certificates=p["ca.crt"].read_bytes(),
        require_client_auth=True,
    )
    server, servicer, addr = await _start(creds=creds)
    try:
        await servicer.set("", SERVING)
        # TLS but no client certificate: the server refuses the handshake
        assert await _cli(["health", "--server", addr, "--tls-ca", str(p["ca.crt"]), "--timeout", "1"]) == 1
        assert "UNAVAILABLE" in capsys.readouterr().err
        flags = [
            "--tls-ca",
            str(p["ca.crt"]),
            "--tls-cert",
            str(p["cli.crt"]),
            "--tls-key",
            str(p["cli.key"]),
        ]
        assert await _cli(["health", "--server", addr, *flags]) == 0
        # the container's HEALTHCHECK passes no flags: everything from the environment
        monkeypatch.setenv("ROITRACK_HEALTH_SERVER", addr)
        monkeypatch.setenv("ROITRACK_TLS_CA", str(p["ca.crt"]))
        monkeypatch.setenv("ROITRACK_HEALTH_TLS_CERT", str(p["cli.crt"]))
        monkeypatch.setenv("ROITRACK_HEALTH_TLS_KEY", str(p["cli.key"]))
        assert await _cli(["health", "-q"]) == 0
        # a certificate for another name is refused unless the expected name is given
        other = f"localhost:{addr.rsplit(':', 1)[1]}"
        assert await _cli(["health", "--server", other, "-q"]) == 0
        monkeypatch.setenv("ROITRACK_HEALTH_TLS_SERVER_NAME", "not-the-server")
        assert await _cli(["health", "-q", "--timeout", "1"]) == 1
    finally:
        await server.stop(None)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--server", "no-port-here"], "HOST:PORT"),
        (["--server", "localhost:99999"], "HOST:PORT"),
        (["--timeout", "0"], "--timeout"),
        (["--tls-ca", "/nonexistent/ca.pem"], "cannot read CA certificate"),
        (["--tls-ca", "/nonexistent/ca.pem", "--tls-cert", "/x.pem"], "--tls-key"),
    ],
)
def test_bad_arguments_exit_2_with_message(argv, needle, capsys):
    assert cli.main(["health", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("roitrack health: error:") and needle in err


async def test_installed_console_script_and_no_torch(health_server):
    """The HEALTHCHECK runs the ``roitrack`` console script; the check must not import torch (start-up cost)."""
    servicer, addr = health_server
    await servicer.set("", SERVING)
    script = Path(sys.executable).parent / "roitrack"
    assert script.exists(), f"console script {script} is not installed (pip install -e .)"
    proc = await asyncio.create_subprocess_exec(
        str(script), "health", "--server", addr,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert out.decode().strip() == "SERVING"
    probe = (
        "import sys; from roitrack_cli.main import main; rc = main(sys.argv[1:]); "
        "assert 'torch' not in sys.modules and 'server' not in sys.modules, 'heavy import'; sys.exit(rc)"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", probe, "health", "--server", addr, "-q",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=str(REPO),
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()


def test_check_health_result_api() -> None:
    addr = f"127.0.0.1:{_free_port()}"
    res = check_health(addr, timeout=1.0)
    assert not res.answered and not res.serving
    assert res.status in {"UNAVAILABLE", "DEADLINE_EXCEEDED"}
    assert addr in res.describe()
