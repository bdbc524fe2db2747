"""Real server on loopback: concurrent streams, per-frame errors, backpressure (latest frame wins)."""

from __future__ import annotations

import asyncio

import cv2
import grpc
import numpy as np
import pytest

from roitrack_api.roitrack.v1 import tracking_pb2 as pb
from tests.integration.server_harness import (
    Lockstep,
    channel,
    frame_req,
    gt_frame_req,
    open_req,
    running_server,
    scene,
    scene_jpeg,
    stub,
)

pytestmark = pytest.mark.timeout(120)


async def test_concurrent_streams_get_every_frame_in_order_and_share_batches() -> None:
    n_streams, n_frames = 4, 12
    async with running_server(max_batch=8, max_wait_ms=30.0) as srv, channel(srv) as ch:
        s = stub(ch)

        async def one(k: int) -> list[pb.TrackResponse]:
            call = Lockstep(s)
            await call.send(open_req(f"cam-{k}", conf_threshold=0.6))
            out = []
            for i in range(1, n_frames + 1):
                req = frame_req(i) if k % 2 == 0 else gt_frame_req(i)  # detector path and client boxes
                out.append(await call.step(req))
            assert await call.finish() == grpc.StatusCode.OK
            return out

        results = await asyncio.gather(*(one(k) for k in range(n_streams)))
    batch_sizes = []
    for k, responses in enumerate(results):
        assert [r.frame_id for r in responses] == list(range(1, n_frames + 1))
        assert all(not r.HasField("error") for r in responses), [r.error.message for r in responses]
        assert all(r.dropped_frames == 0 for r in responses)
        assert all(r.timings.total_ms > 0 and r.timings.inference_ms > 0 for r in responses)
        batch_sizes += [r.timings.batch_size for r in responses]
        if k % 2 == 1:  # client boxes of two well-separated moving objects: two stable confirmed IDs
            ids = [sorted(t.track_id for t in r.tracks) for r in responses[2:]]
            assert all(x == ids[0] for x in ids) and len(ids[0]) == 2
            for r in responses[2:]:
                assert all(
                    t.state == pb.TRACK_STATE_CONFIRMED and t.detection_index in (0, 1) for t in r.tracks
                )
    assert max(batch_sizes) >= 2, f"frames of concurrent streams were never batched together: {batch_sizes}"


async def test_bad_frames_get_per_frame_errors_while_streams_go_on() -> None:
    good = scene_jpeg(1)
    corrupt = good[:300] + bytes(range(256)) * 8  # valid JPEG header, garbage entropy data
    _, boxes = scene(2)
    nan_boxes = boxes.copy()
    nan_boxes[0, 0] = np.nan
    big = cv2.imencode(".png", np.zeros((600, 800, 3), np.uint8))[1].tobytes()
    raw_bad = pb.TrackRequest(
        frame=pb.Frame(
            frame_id=3, raw=pb.RawImage(width=320, height=240, format=pb.PIXEL_FORMAT_RGB8, data=b"x" * 100)
        )
    )
    raw_good = pb.TrackRequest(
        frame=pb.Frame(
            frame_id=7,
            timestamp=0.7,
            raw=pb.RawImage(width=320, height=240, format=pb.PIXEL_FORMAT_BGR8, data=scene(7)[0].tobytes()),
        )
    )
    async with running_server(max_pixels=400 * 300) as srv:
        async with channel(srv) as ch:
            s = stub(ch)

            async def bad_stream() -> list[pb.TrackResponse]:
                call = Lockstep(s)
                await call.send(open_req("bad"))
                reqs = [
                    frame_req(1),
                    frame_req(2, encoded=corrupt),
                    raw_bad,
                    frame_req(4, client_boxes=nan_boxes),
                    frame_req(5, encoded=big),
                    frame_req(6, encoded=b""),
                    raw_good,
                    frame_req(8),
                    pb.TrackRequest(frame=pb.Frame(frame_id=9, timestamp=0.05, encoded=scene_jpeg(9))),
                    frame_req(10),
                ]
                out = [await call.step(r) for r in reqs]
                await call.finish()
                return out

            async def good_stream() -> list[pb.TrackResponse]:
                call = Lockstep(s)
                await call.send(open_req("good"))
                out = [await call.step(gt_frame_req(i)) for i in range(1, 11)]
                await call.finish()
                return out

            bad, ok = await asyncio.gather(bad_stream(), good_stream())
            listed = {x.stream_id: x for x in (await s.ListStreams(pb.ListStreamsRequest())).streams}
        text = srv.metrics.registry.get_sample_value
        assert text("roitrack_frames_failed_total", {"reason": "invalid_image"}) == 3
        assert text("roitrack_frames_failed_total", {"reason": "invalid_detections"}) == 1
        assert text("roitrack_frames_failed_total", {"reason": "image_too_large"}) == 1
    codes = [r.error.code for r in bad]
    assert [r.frame_id for r in bad] == list(range(1, 11))
    assert codes == [
        pb.FRAME_ERROR_CODE_UNSPECIFIED,
        pb.FRAME_ERROR_CODE_INVALID_IMAGE,
        pb.FRAME_ERROR_CODE_INVALID_IMAGE,
        pb.FRAME_ERROR_CODE_INVALID_DETECTIONS,
        pb.FRAME_ERROR_CODE_IMAGE_TOO_LARGE,
        pb.FRAME_ERROR_CODE_INVALID_IMAGE,
        pb.FRAME_ERROR_CODE_UNSPECIFIED,
        pb.FRAME_ERROR_CODE_UNSPECIFIED,
        pb.FRAME_ERROR_CODE_INVALID_TIMESTAMP,
        pb.FRAME_ERROR_CODE_UNSPECIFIED,
    ]
    assert "could not be decoded" in bad[1].error.message
    assert "needs 230400 bytes, got 100" in bad[2].error.message
    assert "NaN" in bad[3].error.message
    assert "exceeds the limit" in bad[4].error.message
    assert all(not r.HasField("error") for r in ok) and [r.frame_id for r in ok] == list(range(1, 11))
    assert len(ok[-1].tracks) == 2
    assert "earlier than the stream's previous" in bad[8].error.message
    assert listed["bad"].frames_failed == 6 and listed["bad"].frames_processed == 4
    assert listed["good"].frames_processed == 10 and listed["good"].frames_failed == 0


async def test_fast_sender_sees_drops_and_bounded_latency() -> None:
    n = 80
    async with running_server(queue_size=2, max_batch=4) as srv:
        async with channel(srv) as ch:
            call = stub(ch).Track()
            await call.write(open_req("fast"))
            for i in range(1, n + 1):  # as fast as gRPC takes them, no waiting for responses
                await call.write(frame_req(i))
            await call.done_writing()
            responses = [r async for r in call]
        dropped_metric = srv.metrics.registry.get_sample_value(
            "roitrack_frames_dropped_total", {"stream": "all"}
        )
    dropped = sum(r.dropped_frames for r in responses)
    ids = [r.frame_id for r in responses]
    assert ids == sorted(ids) and ids[-1] == n  # in order; the latest frame always wins
    assert dropped > 0 and len(responses) + dropped == n  # every frame is answered or reported dropped
    assert dropped_metric == dropped
    infer_max = max(r.timings.inference_ms for r in responses)
    infer_med = float(np.median([r.timings.inference_ms for r in responses]))
    worst = max(r.timings.total_ms for r in responses)
    # A frame waits behind at most queue_size frames of its stream plus the batch in flight; without the bound
    # the last frame would wait for all ~n frames sent before it.
    assert worst <= (2 + 2) * infer_max + 500.0, (worst, infer_max)
    assert worst < 0.5 * n * infer_med, (worst, infer_med)
    first, last = responses[: len(responses) // 3], responses[-(len(responses) // 3) :]
    assert (
        np.median([r.timings.total_ms for r in last])
        <= 3 * np.median([r.timings.total_ms for r in first]) + 100
    )
