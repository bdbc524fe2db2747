"""Stream life cycle on a real server: limits, ALREADY_EXISTS, resume keeps IDs, CloseStream, idle timeout,
health around warm-up and shutdown, in-flight frames answered on shutdown."""

from __future__ import annotations

import asyncio
import threading

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from roitrack_api.roitrack.v1 import tracking_pb2 as pb
from server.model_runner import ModelRunner
from tests.integration.server_harness import (
    Lockstep,
    channel,
    frame_req,
    gt_frame_req,
    open_req,
    running_server,
    status_of,
    stub,
    tiny_runner,
)

pytestmark = pytest.mark.timeout(90)


async def test_stream_limit_and_already_live_id() -> None:
    async with running_server(max_streams=2) as srv, channel(srv) as ch:
        s = stub(ch)
        a, b = Lockstep(s), Lockstep(s)
        await a.send(open_req("a"))
        await b.send(open_req("b"))
        assert (await a.step(frame_req(1))).frame_id == 1
        assert (await b.step(frame_req(1))).frame_id == 1
        code, details = await status_of(s.Track(iter([open_req("c")])))
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "limit of 2 live streams" in details
        code, details = await status_of(s.Track(iter([open_req("a")])))
        assert code == grpc.StatusCode.ALREADY_EXISTS and "'a' is already live" in details
        # the live streams were not disturbed
        assert (await a.step(frame_req(2))).frame_id == 2
        assert await b.finish() == grpc.StatusCode.OK
        # b's slot is free again (its detached state is evicted to make room)
        c = Lockstep(s)
        await c.send(open_req("c"))
        assert (await c.step(frame_req(1))).frame_id == 1
        assert await c.finish() == grpc.StatusCode.OK
        assert await a.finish() == grpc.StatusCode.OK


async def test_disconnect_and_resume_keeps_track_ids() -> None:
    async with running_server(resume_window_s=30.0) as srv, channel(srv) as ch:
        s = stub(ch)
        first = s.Track()
        await first.write(open_req("cam"))
        ids_before = set()
        for i in range(1, 9):
            await first.write(gt_frame_req(i))
            r = await first.read()
            ids_before = {t.track_id for t in r.tracks}
        assert len(ids_before) == 2
        assert dict(await first.initial_metadata())["roitrack-resumed"] == "false"
        first.cancel()  # the client vanishes mid-stream
        for _ in range(100):
            listed = (await s.ListStreams(pb.ListStreamsRequest())).streams
            if listed and not listed[0].live:
                break
            await asyncio.sleep(0.02)
        assert [(x.stream_id, x.live, x.frames_processed) for x in listed] == [("cam", False, 8)]

        second = Lockstep(s)
        await second.send(open_req("cam", resume=True))
        resumed = [await second.step(gt_frame_req(i)) for i in range(9, 14)]
        assert dict(await second.call.initial_metadata())["roitrack-resumed"] == "true"
        assert all({t.track_id for t in r.tracks} == ids_before for r in resumed)
        assert await second.finish() == grpc.StatusCode.OK

        # without resume the same id starts over: fresh tracker, IDs from 1
        fresh = Lockstep(s)
        await fresh.send(open_req("cam", resume=False))
        rs = [await fresh.step(gt_frame_req(i)) for i in range(20, 24)]
        assert dict(await fresh.call.initial_metadata())["roitrack-resumed"] == "false"
        assert {t.track_id for t in rs[-1].tracks} == {1, 2}
        assert await fresh.finish() == grpc.StatusCode.OK

        # CloseStream forgets it: resume then starts fresh; an unknown id is NOT_FOUND
        assert (await s.CloseStream(pb.CloseStreamRequest(stream_id="cam"))).was_live is False
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await s.CloseStream(pb.CloseStreamRequest(stream_id="cam"))
        assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_close_stream_ends_live_call_and_idle_timeout() -> None:
    async with running_server(idle_timeout_s=0.6) as srv, channel(srv) as ch:
        s = stub(ch)
        live = Lockstep(s)
        await live.send(open_req("closing"))
        await live.step(frame_req(1))
        assert (await s.CloseStream(pb.CloseStreamRequest(stream_id="closing"))).was_live is True
        code, details = await live.status()
        assert code == grpc.StatusCode.ABORTED and "closed by CloseStream" in details

        idle = Lockstep(s)
        await idle.send(open_req("idle"))
        await idle.step(frame_req(1))
        code, details = await asyncio.wait_for(idle.status(), 10)  # housekeeping runs every second
        assert code == grpc.StatusCode.DEADLINE_EXCEEDED and "sent no frame for 0.6 s" in details


class GatedWarmup(ModelRunner):
    """The real tiny runner whose warm-up waits for the test to let it finish."""

    def __init__(self, base: ModelRunner) -> None:
        self.__dict__.update(base.__dict__)
        self.gate = threading.Event()

    def warmup(self, iterations: int = 2, batch: int = 1) -> None:
        assert self.gate.wait(30)
        super().warmup(iterations, batch)


async def test_health_flips_around_warmup_and_shutdown() -> None:
    runner = GatedWarmup(tiny_runner())
    async with running_server(runner, wait_ready=False) as srv, channel(srv) as ch:
        h = health_pb2_grpc.HealthStub(ch)
        for service in ("", "roitrack.v1.Tracking"):
            r = await h.Check(health_pb2.HealthCheckRequest(service=service))
            assert r.status == health_pb2.HealthCheckResponse.NOT_SERVING
        watch = h.Watch(health_pb2.HealthCheckRequest(service=""))
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING
        runner.gate.set()
        assert (await asyncio.wait_for(watch.read(), 30)).status == health_pb2.HealthCheckResponse.SERVING
        await srv.wait_ready()
        assert srv.metrics.registry.get_sample_value("roitrack_serving") == 1

        # a stream with frames in flight when shutdown starts: they are answered, then UNAVAILABLE
        call = stub(ch).Track()
        await call.write(open_req("inflight"))
        for i in range(1, 6):
            await call.write(frame_req(i))
        first = await call.read()
        stopping = asyncio.get_running_loop().create_task(srv.shutdown(drain_timeout_s=5.0))
        assert (await asyncio.wait_for(watch.read(), 10)).status == health_pb2.HealthCheckResponse.NOT_SERVING
        rest = []
        with pytest.raises(grpc.aio.AioRpcError) as err:
            while (r := await call.read()) is not grpc.aio.EOF:
                rest.append(r)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE and "shutting down" in (
            err.value.details() or ""
        )
        # the last message is the draining notice (no frame): the client stops writing and half-closes
        assert rest and rest[-1].draining and rest[-1].frame_id == 0 and not rest[-1].tracks
        answered = [first, *rest[:-1]]
        assert not any(r.draining for r in answered)
        assert [r.frame_id for r in answered] == sorted(r.frame_id for r in answered)
        assert len(answered) + sum(r.dropped_frames for r in answered) == 5
        await stopping
        assert srv.metrics.registry.get_sample_value("roitrack_serving") == 0
