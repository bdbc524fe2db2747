"""Issue 19 (2): failover must survive every status gRPC core makes for a broken connection, not only UNAVAILABLE.

Two real servers share a real Redis. The client streams to A through :class:`ResetProxy`, which - after 15
answered frames, with none in flight - cuts the Track call mid-request: half the next request reaches A, the
client gets an HTTP/2 ``RST_STREAM(INTERNAL_ERROR)``, A's connection drops. The client's gRPC core then ends the
call with ``INTERNAL`` and no server marker (the same kind of status as the "Internal error from Core" that
killed a failover during a drain, grpc/grpc#36066). The client must treat it as a broken connection, fail over
to B, resume there from A's call-end snapshot and finish, every frame answered exactly once.

Before the fix the client retried only UNAVAILABLE and CANCELLED: it gave up with ``INTERNAL: Received
RST_STREAM with error code 2``.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import numpy as np
import pytest

from client.sources import SourceFrame
from client.stream import StreamClient, StreamConfig
from roitrack_api.roitrack.v1 import tracking_pb2 as pb
from tests.integration.h2_proxy import ResetProxy
from tests.integration.redis_harness import redis_server
from tests.integration.server_harness import running_server, scene, scene_jpeg

pytestmark = [pytest.mark.timeout(180)]

N = 40
CUT_AFTER = 15


def _frames() -> list[SourceFrame]:
    scores, classes = np.full(2, 0.9, np.float32), np.zeros(2, np.int64)
    return [
        SourceFrame(i, 0.1 * i, scene(i)[0], scene_jpeg(i), (scene(i)[1], scores, classes))
        for i in range(1, N + 1)
    ]


async def test_a_core_made_internal_mid_stream_fails_over_and_every_frame_is_answered_once() -> None:
    with redis_server() as r:
        common = dict(state_store=r.url, snapshot_interval_s=0.5, state_lease_s=3.0, resume_window_s=30.0)
        async with (
            running_server(replica_id="replica-a", **common) as a,
            running_server(replica_id="replica-b", **common) as b,
        ):
            proxy = ResetProxy(a.port, after=CUT_AFTER)
            await proxy.start()
            answers: Counter[int] = Counter()
            ids: dict[int, list[int]] = {}

            def on_result(frame: SourceFrame, resp: pb.TrackResponse, latency_ms: float) -> None:
                answers[frame.index] += 1
                ids[frame.index] = sorted(t.track_id for t in resp.tracks)

            cfg = StreamConfig(
                server=f"127.0.0.1:{proxy.port},127.0.0.1:{b.port}",
                stream_id="cam-reset",
                send_detections=True,
                max_in_flight=1,  # lock-step: the proxy cuts when nothing is in flight
                backoff_s=0.1,
            )
            client = StreamClient(cfg, on_result=on_result)
            try:
                stats = await asyncio.wait_for(client.run(iter(_frames())), 120)
            finally:
                await proxy.stop()
            resumes_b = b.metrics.registry.get_sample_value(
                "roitrack_stream_resumes_total", {"origin": "other_replica"}
            )
            processed_a = a.metrics.registry.get_sample_value(
                "roitrack_frames_processed_total", {"stream": "all"}
            )
            processed_b = b.metrics.registry.get_sample_value(
                "roitrack_frames_processed_total", {"stream": "all"}
            )
    assert proxy.cut_done.is_set() and proxy.cut_stream is not None
    # the client met a core-made INTERNAL (no server marker) and took it for a broken connection
    assert any(r.startswith("INTERNAL") for r in stats.reconnect_reasons), stats.reconnect_reasons
    # every frame answered exactly once, none lost or failed, by A up to the cut and B after it
    assert sorted(answers) == list(range(1, N + 1)) and set(answers.values()) == {1}, answers
    assert stats.answered == N and stats.lost == 0 and stats.errors == 0 and stats.sent == N, stats.summary()
    assert processed_a == CUT_AFTER and processed_b == N - CUT_AFTER, (processed_a, processed_b)
    assert resumes_b == 1 and stats.resumed and stats.id_restarts == 0
    # B continued A's tracks: the two objects keep their IDs across the switch
    assert ids[CUT_AFTER] == ids[CUT_AFTER + 1] == ids[N] == [1, 2], (
        ids[CUT_AFTER],
        ids[CUT_AFTER + 1],
        ids[N],
    )


async def test_a_drain_tells_the_client_first_so_no_write_races_the_end_of_the_call() -> None:
    """The source of the INTERNAL: the drain ended calls while their clients were still writing frames; a write
    that races the call's end fails inside gRPC core, and gRPC's Python client then reports INTERNAL "Internal
    error from Core" in place of the server's UNAVAILABLE (1 drain in 30 here before the fix). Now the server
    sends a `draining` notice, the client stops writing and half-closes, and only then does the call end: every
    switch below is the server's own UNAVAILABLE (marked), and every frame is answered exactly once."""
    drains = 6
    async with running_server() as b:
        for k in range(drains):
            async with running_server() as a:
                answers: Counter[int] = Counter()
                started = asyncio.Event()

                def on_result(
                    frame: SourceFrame,
                    resp: pb.TrackResponse,
                    latency_ms: float,
                    answers: Counter[int] = answers,
                    started: asyncio.Event = started,
                ) -> None:
                    answers[frame.index] += 1
                    if len(answers) == 8:
                        started.set()

                cfg = StreamConfig(
                    server=f"127.0.0.1:{a.port},127.0.0.1:{b.port}",
                    stream_id=f"drain-{k}",
                    send_detections=True,
                    max_in_flight=2,
                )
                client = StreamClient(cfg, on_result=on_result)
                run = asyncio.get_running_loop().create_task(client.run(iter(_frames())))
                await asyncio.wait_for(started.wait(), 60)
                await a.shutdown(drain_timeout_s=5.0)
                stats = await asyncio.wait_for(run, 60)
            assert stats.reconnect_reasons == [
                "UNAVAILABLE: the server is shutting down; reconnect and resume (server)"
            ], stats.reconnect_reasons
            assert sorted(answers) == list(range(1, N + 1)) and set(answers.values()) == {1}, answers
            assert stats.lost == 0 and stats.answered == N
