"""``roitrack serve`` as a real process: becomes SERVING, answers frames, serves /metrics, drains on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from roitrack_api.roitrack.v1 import tracking_pb2 as pb
from tests.integration.server_harness import Lockstep, frame_req, free_port, open_req, stub

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]


async def test_serve_process_sigterm_drains_and_exits_zero() -> None:
    port, mport = free_port(), free_port()
    env = {**os.environ, "ROITRACK_MAX_STREAMS": "3"}
    cmd = [sys.executable, "-m", "roitrack_cli.main", "serve", "--random-weights", "--arch", "yolov7-tiny"]
    cmd += ["--input-size", "160", "--host", "127.0.0.1", "--port", str(port), "--metrics-port", str(mport)]
    proc = await asyncio.create_subprocess_exec(
        *cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            health = health_pb2_grpc.HealthStub(ch)
            deadline = time.monotonic() + 90
            status = None
            while time.monotonic() < deadline:
                try:
                    status = (await health.Check(health_pb2.HealthCheckRequest(), timeout=2)).status
                except grpc.aio.AioRpcError:
                    status = None
                if status == health_pb2.HealthCheckResponse.SERVING:
                    break
                await asyncio.sleep(0.2)
            assert status == health_pb2.HealthCheckResponse.SERVING
            info = await stub(ch).GetInfo(pb.GetInfoRequest())
            assert info.limits.max_streams == 3 and info.input_size == 160 and info.weights_sha256 == "random"
            call = Lockstep(stub(ch))
            await call.send(open_req("proc"))
            assert (await call.step(frame_req(1))).frame_id == 1
            metrics = await asyncio.to_thread(
                lambda: urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=5).read().decode()
            )
            assert 'roitrack_frames_processed_total{stream="all"} 1.0' in metrics
            proc.send_signal(signal.SIGTERM)
            code, details = await asyncio.wait_for(call.status(), 20)
            assert code == grpc.StatusCode.UNAVAILABLE and "shutting down" in details
        rc = await asyncio.wait_for(proc.wait(), 30)
        out = (await proc.stdout.read()).decode() if proc.stdout else ""
        assert rc == 0, out
        assert "listening on 127.0.0.1" in out and "server stopped" in out
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
