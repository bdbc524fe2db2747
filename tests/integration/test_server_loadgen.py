"""``roitrack loadgen`` against a real server: per-stream and aggregate figures add up."""

from __future__ import annotations

import pytest

from client.loadgen import run_loadgen
from client.sources import SourceFrame
from client.stream import StreamConfig
from tests.integration.server_harness import running_server, scene, scene_jpeg

pytestmark = pytest.mark.timeout(90)


async def test_loadgen_three_streams() -> None:
    frames = [SourceFrame(i, 0.1 * i, scene(i)[0], scene_jpeg(i)) for i in range(1, 9)]
    async with running_server(max_streams=2) as srv:
        base = StreamConfig(server=f"127.0.0.1:{srv.port}", stream_id="x", conf_threshold=0.6)
        result = await run_loadgen(base, 3, frames, duration_s=2.0)
    assert result["streams"] == 3 and len(result["per_stream"]) == 3
    assert result["failed_streams"] == 1  # the stream limit is 2: one stream is refused, the others run
    failed = [r for r in result["per_stream"] if "failure" in r]
    assert failed[0]["failure"].startswith("RESOURCE_EXHAUSTED")
    ok = [r for r in result["per_stream"] if "failure" not in r]
    assert all(r["answered"] > 3 and r["errors"] == 0 for r in ok)
    assert result["answered"] == sum(r["answered"] for r in result["per_stream"])
    assert result["aggregate_fps"] > 0 and result["p50_ms"] <= result["p95_ms"] <= result["p99_ms"]
