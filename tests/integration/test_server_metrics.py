"""The metrics port serves the Prometheus families with sensible values, and nothing but /metrics."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.server_harness import (
    Lockstep,
    channel,
    frame_req,
    free_port,
    open_req,
    running_server,
    stub,
)

pytestmark = pytest.mark.timeout(90)


def _get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, "", exc.read().decode()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_metrics_families_and_values() -> None:
    port = free_port()
    async with running_server(metrics_port=port) as srv, channel(srv) as ch:
        assert srv.metrics_port == port
        sha = srv.runner.info.weights_sha256
        s = stub(ch)
        a = Lockstep(s)
        await a.send(open_req("m0", conf_threshold=0.6))
        for i in range(1, 11):
            await a.step(frame_req(i))
        await a.step(frame_req(11, encoded=b"\x89PNG\r\n\x1a\nnot really"))
        status, ctype, live_text = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/metrics")
        assert await a.finish() == grpc.StatusCode.OK
        _, _, text = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/metrics")
        other = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/")
        other2 = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/debug/pprof")
    assert status == 200 and ctype.startswith("text/plain")
    assert other[0] == 404 and other2[0] == 404 and "only /metrics" in other[2]
    live = _samples(live_text)
    assert live[("roitrack_active_streams", ())] == 1
    m = _samples(text)
    assert m[("roitrack_frame_latency_seconds_count", ())] == 11  # error responses are answered too
    # stream ids are not label values unless metrics_stream_labels opts in (test_server_tenants.py)
    assert m[("roitrack_frames_processed_total", (("stream", "all"),))] == 10
    assert "m0" not in text
    assert m[("roitrack_frames_failed_total", (("reason", "invalid_image"),))] == 1
    assert m[("roitrack_frames_failed_total", (("reason", "invalid_detections"),))] == 0
    assert ("roitrack_active_tracks", (("stream", "all"),)) in m
    for stage in (
        "queue",
        "decode",
        "letterbox",
        "inference",
        "nms",
        "roi_align",
        "encoder",
        "tracking",
        "serialize",
    ):
        key = ("roitrack_stage_latency_seconds_count", (("stage", stage),))
        assert m[key] >= 10, stage
    mean = {
        st: m[("roitrack_stage_latency_seconds_sum", (("stage", st),))]
        / m[("roitrack_stage_latency_seconds_count", (("stage", st),))]
        for st in ("inference", "decode", "tracking")
    }
    e2e = m[("roitrack_frame_latency_seconds_sum", ())] / m[("roitrack_frame_latency_seconds_count", ())]
    assert 0 < mean["decode"] < mean["inference"] and 0 < e2e < 5.0, (mean, e2e)
    # Every frame's end-to-end time contains its own inference share (the error frame has none), so the totals
    # are ordered even though the means need not be (the error frame pulls the end-to-end mean down).
    inference_total = m[("roitrack_stage_latency_seconds_sum", (("stage", "inference"),))]
    assert inference_total < m[("roitrack_frame_latency_seconds_sum", ())], (mean, e2e)
    assert m[("roitrack_batch_size_frames_count", ())] >= 11
    assert m[("roitrack_batch_size_frames_sum", ())] >= m[("roitrack_batch_size_frames_count", ())]
    assert m[("roitrack_serving", ())] == 1
    info = [k for k in m if k[0] == "roitrack_model_info"]
    assert len(info) == 1 and ("arch", "yolov7-tiny") in info[0][1] and ("weights_sha256", sha) in info[0][1]
    # the inference backend and precision running the models (a ModelRunner built directly: the torch reference)
    assert ("backend", "torch") in info[0][1] and ("precision", "fp32") in info[0][1]
    families = {f.name for f in text_string_to_metric_families(text)}
    for name in (
        "roitrack_frames_dropped",
        "roitrack_queue_depth_frames",
        "roitrack_gpu_memory_allocated_bytes",
        "roitrack_gpu_memory_reserved_bytes",
        "roitrack_gpu_memory_total_bytes",
        "roitrack_gpu_memory_used_bytes",
    ):
        assert name in families, name
