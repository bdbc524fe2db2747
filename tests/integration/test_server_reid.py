"""A stream chooses its appearance embedding (roi, reid, off) in its open message; the server reports what it
uses, refuses what it cannot serve, batches ReID crops across streams and exports their cost."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import numpy as np
import pytest

from roitrack_api.roitrack.v1 import tracking_pb2 as pb
from server.model_runner import ModelRunner
from tests.integration.server_harness import (
    INPUT_SIZE,
    Lockstep,
    channel,
    gt_frame_req,
    running_server,
    scene_jpeg,
    stub,
    tiny_runner,
)
from tests.reid_models import colour_model

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def reid_model(tmp_path_factory: pytest.TempPathFactory):
    from tracker_core.reid import load_reid_model

    return load_reid_model(colour_model(tmp_path_factory.mktemp("reid") / "colour.onnx"))


def _runner(reid_model, encoder: bool = True) -> ModelRunner:
    base = tiny_runner(encoder)
    return ModelRunner(
        base.detector, base.embedder, base.info.encoder_sha256, input_size=INPUT_SIZE, reid=reid_model
    )


def _metadata(md) -> dict[str, str]:
    return {k: v for k, v in (md or ())}


async def test_each_stream_gets_the_embedding_it_chose(reid_model):
    async with running_server(runner=_runner(reid_model)) as srv, channel(srv) as ch:
        info = await stub(ch).GetInfo(pb.GetInfoRequest())
        assert list(info.embeddings) == [pb.EMBEDDING_OFF, pb.EMBEDDING_ROI, pb.EMBEDDING_REID]
        assert info.default_embedding == pb.EMBEDDING_ROI and info.reid_model_sha256 == reid_model.sha256
        choices = {"r": pb.EMBEDDING_REID, "o": pb.EMBEDDING_ROI, "x": pb.EMBEDDING_OFF, "d": None}
        calls = {k: Lockstep(stub(ch)) for k in choices}
        for k, c in choices.items():
            opts = pb.StreamOptions() if c is None else pb.StreamOptions(embedding=c)
            await calls[k].send(pb.TrackRequest(open=pb.OpenStream(stream_id=f"s-{k}", options=opts)))
        used = {k: _metadata(await c.call.initial_metadata())["roitrack-embedding"] for k, c in calls.items()}
        assert used == {"r": "reid", "o": "roi", "x": "off", "d": "roi"}
        frames = 6
        for i in range(1, frames + 1):  # every stream's frame i goes out together: one batch, mixed choices
            await asyncio.gather(*(c.send(gt_frame_req(i)) for c in calls.values()))
            resps = {k: await c.recv() for k, c in calls.items()}
            assert all(not r.HasField("error") for r in resps.values())
            want = {
                "r": pb.EMBEDDING_REID,
                "o": pb.EMBEDDING_ROI,
                "x": pb.EMBEDDING_OFF,
                "d": pb.EMBEDDING_ROI,
            }
            assert {k: r.embedding for k, r in resps.items()} == want
        for c in calls.values():
            assert await c.finish() == grpc.StatusCode.OK
    reg = srv.metrics.registry
    # only the reid stream's frames went through the ReID model: 2 boxes (crops) each
    assert reg.get_sample_value("roitrack_reid_crops_per_frame_count") == frames
    assert reg.get_sample_value("roitrack_reid_crops_per_frame_sum") == 2 * frames
    assert reg.get_sample_value("roitrack_reid_crop_seconds_count") == frames
    assert reg.get_sample_value("roitrack_reid_crop_seconds_sum") > 0
    # the per-stage figure is a batch's share per frame, as for every batched stage
    assert reg.get_sample_value("roitrack_stage_latency_seconds_count", {"stage": "reid"}) >= frames
    assert (
        reg.get_sample_value(
            "roitrack_model_info",
            {
                "arch": "yolov7-tiny",
                "weights_sha256": srv.runner.info.weights_sha256,
                "encoder_sha256": srv.runner.info.encoder_sha256,
                "device": "cpu",
                "input_size": str(INPUT_SIZE),
                "reid_sha256": reid_model.sha256,
                "backend": "torch",  # the runner built here: the torch fp32 reference
                "precision": "fp32",
            },
        )
        == 1
    )


async def test_choices_the_server_cannot_serve_are_refused(reid_model):
    async with running_server(runner=tiny_runner(True)) as srv, channel(srv) as ch:  # no ReID model
        call = Lockstep(stub(ch))
        await call.send(
            pb.TrackRequest(
                open=pb.OpenStream(stream_id="a", options=pb.StreamOptions(embedding=pb.EMBEDDING_REID))
            )
        )
        code, details = await call.status()
        assert code == grpc.StatusCode.FAILED_PRECONDITION and "--reid-model" in details
        # contradicting the legacy `appearance` flag
        call = Lockstep(stub(ch))
        opts = pb.StreamOptions(appearance=False, embedding=pb.EMBEDDING_ROI)
        await call.send(pb.TrackRequest(open=pb.OpenStream(stream_id="b", options=opts)))
        code, details = await call.status()
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "contradict" in details
        # the legacy flag alone still works: appearance false = off
        call = Lockstep(stub(ch))
        await call.send(
            pb.TrackRequest(open=pb.OpenStream(stream_id="c", options=pb.StreamOptions(appearance=False)))
        )
        assert (await call.step(gt_frame_req(1))).embedding == pb.EMBEDDING_OFF
        assert await call.finish() == grpc.StatusCode.OK
    async with running_server(runner=_runner(reid_model, encoder=False)) as srv, channel(srv) as ch:
        info = await stub(ch).GetInfo(pb.GetInfoRequest())
        assert info.default_embedding == pb.EMBEDDING_REID  # auto: no encoder, a ReID model
        call = Lockstep(stub(ch))
        await call.send(
            pb.TrackRequest(
                open=pb.OpenStream(stream_id="a", options=pb.StreamOptions(embedding=pb.EMBEDDING_ROI))
            )
        )
        code, details = await call.status()
        assert code == grpc.StatusCode.FAILED_PRECONDITION and "--encoder" in details
        # a stream keeps its embedding: resuming with another one is refused, the same one resumes
        call = Lockstep(stub(ch))
        await call.send(pb.TrackRequest(open=pb.OpenStream(stream_id="k")))
        assert (await call.step(gt_frame_req(1))).embedding == pb.EMBEDDING_REID
        assert await call.finish() == grpc.StatusCode.OK
        call = Lockstep(stub(ch))
        opts = pb.StreamOptions(embedding=pb.EMBEDDING_OFF)
        await call.send(pb.TrackRequest(open=pb.OpenStream(stream_id="k", resume=True, options=opts)))
        code, details = await call.status()
        assert code == grpc.StatusCode.FAILED_PRECONDITION and "resume it with the same" in details
        call = Lockstep(stub(ch))
        await call.send(pb.TrackRequest(open=pb.OpenStream(stream_id="k", resume=True)))
        assert _metadata(await call.call.initial_metadata())["roitrack-resumed"] == "true"
        assert (await call.step(gt_frame_req(2))).embedding == pb.EMBEDDING_REID
        assert await call.finish() == grpc.StatusCode.OK


def test_runner_reid_frames_skip_the_detector_and_batch_their_crops(reid_model):
    from server.frames import ClientDetections, EncodedImage, FrameInput
    from tests.integration.server_harness import scene

    runner = _runner(reid_model)

    def inp(i: int, embedding: str, n: int = 2) -> FrameInput:
        boxes = scene(i, n)[1]
        dets = ClientDetections(boxes, np.full(len(boxes), 0.9, np.float32), np.zeros(len(boxes), np.int64))
        return FrameInput(EncodedImage(scene_jpeg(i, n)), dets, embedding=embedding)

    (alone,) = runner.run([inp(1, "reid")])
    assert alone.embedding == "reid" and alone.reid_crops == 2 and alone.embeddings.shape == (2, 4)
    assert "inference" not in alone.stage_s and alone.stage_s["reid"] > 0  # client boxes: no detector forward
    outs = runner.run([inp(1, "roi"), inp(2, "reid", 3), inp(1, "reid")])
    assert [o.embedding for o in outs] == ["roi", "reid", "reid"]
    assert outs[0].embeddings.shape[1] == runner.embedder.encoder.embed_dim and "inference" in outs[0].stage_s
    assert [o.reid_crops for o in outs] == [0, 3, 2]
    np.testing.assert_array_equal(
        outs[2].embeddings, alone.embeddings
    )  # batched with another frame: the same
    assert outs[1].reid_s_per_crop == outs[2].reid_s_per_crop > 0


async def test_stream_cli_embedding_flag(reid_model, tmp_path: Path, capsys):
    import cv2

    from roitrack_cli.main import main
    from tests.integration.server_harness import scene

    src = tmp_path / "frames"
    src.mkdir()
    for i in range(1, 4):
        cv2.imwrite(str(src / f"{i:06d}.jpg"), scene(i)[0])
    async with running_server(runner=tiny_runner(True)) as srv:
        args = ["stream", "--server", f"127.0.0.1:{srv.port}", "--source", str(src), "--quiet"]
        assert await asyncio.to_thread(main, [*args, "--embedding", "reid", "--stream-id", "a"]) == 2
        err = capsys.readouterr().err
        assert "FAILED_PRECONDITION" in err and "--reid-model" in err
        assert await asyncio.to_thread(main, [*args, "--embedding", "off", "--stream-id", "b"]) == 0
        assert '"embedding": "off"' in capsys.readouterr().out
        assert await asyncio.to_thread(main, [*args, "--embedding", "roi", "--no-appearance"]) == 2
