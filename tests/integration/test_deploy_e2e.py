"""The container's run path without a container: the real ``roitrack serve`` started with the deployment's config file
(deploy/config/roitrack.toml, CPU and a random tiny detector instead of the GPU and mounted weights), probed with the
Dockerfile's exact HEALTHCHECK command, scraped on the metrics port, then stopped with SIGTERM as ``docker stop``
does."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.integration.test_deploy_docker import healthcheck_cmd, parse_dockerfile

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "deploy" / "config" / "roitrack.toml"
TOKEN = "deploy-e2e-token"


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def _healthcheck_argv() -> list[str]:
    instrs = parse_dockerfile((REPO / "Dockerfile").read_text())
    (hc,) = [i for i in instrs if i.keyword == "HEALTHCHECK"]
    argv = healthcheck_cmd(hc.args)
    script = Path(sys.executable).parent / argv[0]
    assert script.exists(), script
    return [str(script), *argv[1:]]


@pytest.mark.slow
def test_serve_with_deploy_config_turns_healthy_and_drains(tmp_path):
    port, metrics_port = _free_ports(2)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROITRACK_")}
    env.update(
        ROITRACK_WEIGHTS="",  # the config names /weights/yolov7.safetensors (mounted in the container): unset it
        ROITRACK_TOKEN=TOKEN,  # what compose passes; the health method must not need it
        ROITRACK_HEALTH_SERVER=f"127.0.0.1:{port}",  # where the HEALTHCHECK looks
    )
    serve = [
        str(Path(sys.executable).parent / "roitrack"), "serve", "--config", str(CONFIG),
        "--random-weights", "--arch", "yolov7-tiny", "--device", "cpu", "--input-size", "128",
        "--host", "127.0.0.1", "--port", str(port), "--metrics-port", str(metrics_port),
    ]  # fmt: skip
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(serve, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    health = _healthcheck_argv()
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            res = subprocess.run(health, env=env, capture_output=True, text=True, timeout=30)
            if res.returncode == 0:
                break
            assert res.returncode == 1, res.stderr  # never 2 (bad arguments) for a well-formed HEALTHCHECK
            assert time.monotonic() < deadline, (
                f"never healthy: {res.stderr}\n{(tmp_path / 'serve.log').read_text()}"
            )
            time.sleep(0.5)
        body = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
        assert "roitrack_serving 1.0" in body
        assert 'roitrack_model_info{arch="yolov7-tiny"' in body
        # --backend auto (the default) chose one of the installed backends, and says which
        info = next(line for line in body.splitlines() if line.startswith("roitrack_model_info{"))
        assert re.search(r'backend="(torch|openvino|onnxruntime)"', info), info
        assert re.search(r'precision="(fp32|bf16)"', info), info

        proc.send_signal(signal.SIGTERM)  # docker stop
        assert proc.wait(timeout=30) == 0, (tmp_path / "serve.log").read_text()
        res = subprocess.run(health, env=env, capture_output=True, text=True, timeout=30)
        assert res.returncode == 1 and "UNAVAILABLE" in res.stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        log.close()
