"""The in-process Pipeline and the gRPC server give the same tracks for the same frames."""

from __future__ import annotations

import numpy as np
import pytest

from server.loading import tracker_factory
from server.pipeline import Pipeline
from tests.integration.server_harness import (
    Lockstep,
    channel,
    frame_req,
    open_req,
    running_server,
    scene,
    scene_jpeg,
    stub,
    tiny_runner,
)
from tracker_core.errors import InvalidInputError

pytestmark = pytest.mark.timeout(90)


async def test_pipeline_matches_grpc_path() -> None:
    n = 10
    pipe = Pipeline(tiny_runner(), tracker_factory(), conf_threshold=0.6)
    local = []
    try:
        for i in range(1, n + 1):
            dets = (scene(i)[1], np.full(2, 0.9, np.float32), np.zeros(2, np.int64)) if i % 2 else None
            r = pipe.process(scene_jpeg(i), 0.1 * i, detections=dets)
            assert set(r.stage_ms) >= {"decode", "letterbox", "inference", "roi_align", "encoder", "tracking"}
            local.append(
                sorted(
                    (t.track_id, tuple(np.round(np.asarray(t.box, np.float64), 2)))
                    for t in r.tracks
                    if t.state == "confirmed"
                )
            )
        with pytest.raises(InvalidInputError, match="could not be decoded"):
            pipe.process(scene_jpeg(1)[:400] + b"\x13" * 500, 99.0)
    finally:
        pipe.close()
    async with running_server() as srv, channel(srv) as ch:
        call = Lockstep(stub(ch))
        await call.send(open_req("same", conf_threshold=0.6))
        remote = []
        for i in range(1, n + 1):
            resp = await call.step(frame_req(i, client_boxes=scene(i)[1] if i % 2 else None))
            remote.append(
                sorted(
                    (t.track_id, tuple(np.round([t.box.x1, t.box.y1, t.box.x2, t.box.y2], 2)))
                    for t in resp.tracks
                    if t.state == 1
                )
            )
        await call.finish()
    assert local == remote
    assert any(local)
