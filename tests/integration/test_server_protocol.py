"""Protocol misuse ends the call with INVALID_ARGUMENT and a message; the server and other calls go on."""

from __future__ import annotations

import grpc
import pytest

from roitrack_api.roitrack.v1 import tracking_pb2 as pb
from tests.integration.server_harness import (
    Lockstep,
    channel,
    frame_req,
    open_req,
    running_server,
    status_of,
    stub,
)

pytestmark = pytest.mark.timeout(60)


async def _call(s: object, reqs: list[pb.TrackRequest]) -> tuple[grpc.StatusCode, str]:
    async def gen():  # type: ignore[no-untyped-def]
        for r in reqs:
            yield r

    return await status_of(s.Track(gen()))  # type: ignore[attr-defined]


async def test_protocol_misuse_is_invalid_argument() -> None:
    bad_format = pb.TrackRequest(
        frame=pb.Frame(frame_id=2, raw=pb.RawImage(width=2, height=2, format=99, data=b"\0" * 12))
    )
    cases = {
        "no open message": ([], "before its `open` message"),
        "frame first": ([frame_req(1)], "first message of a Track call must be `open`"),
        "second open": (
            [open_req("p2"), frame_req(1), open_req("p2")],
            "one `open` message, then only frames",
        ),
        "unknown pixel format": ([open_req("p3"), frame_req(1), bad_format], "unknown raw pixel format 99"),
        "bad stream id": ([open_req("no spaces allowed")], "stream_id must be"),
        "empty stream id": ([open_req("")], "stream_id must be"),
        "conf out of range": ([open_req("p4", conf_threshold=5.0)], "conf_threshold must be in"),
        "iou out of range": ([open_req("p5", iou_threshold=0.0)], "iou_threshold must be in"),
    }
    async with running_server() as srv, channel(srv) as ch:
        s = stub(ch)
        healthy = Lockstep(s)  # a well-behaved stream alive across all the misuse
        await healthy.send(open_req("healthy"))
        for i, (name, (reqs, needle)) in enumerate(cases.items(), start=1):
            code, details = await _call(s, reqs)
            assert code == grpc.StatusCode.INVALID_ARGUMENT, name
            assert needle in details, (name, details)
            r = await healthy.step(frame_req(i))
            assert r.frame_id == i and not r.HasField("error")
        assert await healthy.finish() == grpc.StatusCode.OK
        # misused streams never stay live: their ids can be opened again at once
        again = Lockstep(s)
        await again.send(open_req("p2"))
        assert (await again.step(frame_req(1))).frame_id == 1
        assert await again.finish() == grpc.StatusCode.OK


async def test_oversized_message_is_refused_by_grpc_limit() -> None:
    async with running_server(max_message_bytes=64 * 1024) as srv, channel(srv) as ch:
        code, _ = await _call(
            stub(ch), [open_req("big"), frame_req(1, encoded=b"\xff\xd8" + b"\0" * 200_000)]
        )
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_reflection_lists_the_services() -> None:
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    async with running_server() as srv, channel(srv) as ch:
        call = reflection_pb2_grpc.ServerReflectionStub(ch).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
        names = [s.name async for r in call for s in r.list_services_response.service]
    assert {"roitrack.v1.Tracking", "grpc.health.v1.Health"} <= set(names)
