"""Helpers for the server integration tests: a real randomly initialised yolov7-tiny (+ a random ROI encoder)
at a small input size, a real server on a free loopback port, real JPEG frames of a moving scene."""

from __future__ import annotations

import contextlib
import functools
import socket
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import cv2
import grpc
import numpy as np

from roitrack_api.roitrack.v1 import tracking_pb2 as pb
from roitrack_api.roitrack.v1 import tracking_pb2_grpc as pbg
from server.app import TrackingServer
from server.config import ServerConfig, validate
from server.loading import tracker_factory
from server.model_runner import ModelRunner

INPUT_SIZE = 160
W, H = 320, 240


@functools.lru_cache(maxsize=2)
def tiny_runner(with_encoder: bool = True) -> ModelRunner:
    """A random yolov7-tiny at 160 px with (optionally) a randomly initialised ROI encoder on its SPP tap."""
    from tracker_core.detector import build_detector
    from tracker_core.encoder import Appearance, EncoderMeta, build_encoder

    det = build_detector("yolov7-tiny", fuse=True)
    app = None
    if with_encoder:
        meta = EncoderMeta(
            detector_arch=det.arch,
            detector_sha256=det.weights_sha256,
            features="spp",
            tap_channels={"32": int(det.tap_channels)},
            width=32,
            hidden=64,
        )
        app = Appearance(build_encoder(meta), meta.spec, {32: int(det.tap_channels)})
    return ModelRunner(det, app, encoder_sha256="0" * 64 if app else "", input_size=INPUT_SIZE)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def config(**overrides: Any) -> ServerConfig:
    base = ServerConfig(
        host="127.0.0.1",
        port=0,
        metrics_port=0,
        random_weights=True,
        input_size=INPUT_SIZE,
        check_port=False,
        max_wait_ms=20.0,
        drain_timeout_s=5.0,
    )
    cfg = replace(base, **overrides)
    validate(cfg)
    return cfg


@contextlib.asynccontextmanager
async def running_server(
    runner: ModelRunner | None = None, wait_ready: bool = True, **overrides: Any
) -> AsyncIterator[TrackingServer]:
    srv = TrackingServer(config(**overrides), runner or tiny_runner(), tracker_factory())
    await srv.start(warmup_in_background=not wait_ready)
    try:
        yield srv
    finally:
        await srv.shutdown(drain_timeout_s=2.0)


def channel(srv: TrackingServer) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(f"127.0.0.1:{srv.port}")


def stub(ch: grpc.aio.Channel) -> pbg.TrackingStub:
    return pbg.TrackingStub(ch)


def scene(i: int, n_objects: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Frame ``i`` (BGR, 320x240) of a scene with moving rectangles, and their boxes ``[n,4]`` xyxy."""
    img = np.full((H, W, 3), (90, 110, 100), np.uint8)
    boxes = []
    for k in range(n_objects):
        x = 20 + 60 * k + 3 * i
        y = 40 + 70 * k
        box = (x, y, x + 30, y + 60)
        color = ((40 + 90 * k) % 255, (200 - 60 * k) % 255, (120 + 50 * k) % 255)
        cv2.rectangle(img, box[:2], box[2:], color, -1)
        boxes.append(box)
    return img, np.array(boxes, np.float32)


@functools.lru_cache(maxsize=256)
def scene_jpeg(i: int, n_objects: int = 2) -> bytes:
    img, _ = scene(i, n_objects)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return buf.tobytes()


def open_req(stream_id: str, resume: bool = False, **opts: Any) -> pb.TrackRequest:
    return pb.TrackRequest(
        open=pb.OpenStream(stream_id=stream_id, resume=resume, options=pb.StreamOptions(**opts))
    )


def frame_req(
    i: int, client_boxes: np.ndarray | None = None, encoded: bytes | None = None
) -> pb.TrackRequest:
    f = pb.Frame(frame_id=i, timestamp=0.1 * i, encoded=scene_jpeg(i) if encoded is None else encoded)
    if client_boxes is not None:
        f.use_client_detections = True
        for b in client_boxes.tolist():
            f.detections.add(box=pb.Box(x1=b[0], y1=b[1], x2=b[2], y2=b[3]), score=0.9, class_id=0)
    return pb.TrackRequest(frame=f)


def gt_frame_req(i: int) -> pb.TrackRequest:
    """Frame ``i`` with the scene's true boxes sent as client detections."""
    return frame_req(i, scene(i)[1])


class Lockstep:
    """A Track call driven one frame at a time: ``send`` a request, ``recv`` its response."""

    def __init__(self, stub_: pbg.TrackingStub, metadata: tuple[tuple[str, str], ...] = ()) -> None:
        self.call = stub_.Track(metadata=metadata)

    async def send(self, req: pb.TrackRequest) -> None:
        await self.call.write(req)

    async def recv(self) -> pb.TrackResponse:
        resp = await self.call.read()
        assert resp is not grpc.aio.EOF, "call ended"
        return resp

    async def step(self, req: pb.TrackRequest) -> pb.TrackResponse:
        await self.send(req)
        return await self.recv()

    async def status(self) -> tuple[grpc.StatusCode, str]:
        """Read until the call ends (without half-closing); its final status code and details."""
        try:
            while await self.call.read() is not grpc.aio.EOF:
                pass
        except grpc.aio.AioRpcError as exc:
            return exc.code(), exc.details() or ""
        return await self.call.code(), await self.call.details()

    async def finish(self) -> grpc.StatusCode:
        await self.call.done_writing()
        while await self.call.read() is not grpc.aio.EOF:
            pass
        return await self.call.code()


async def status_of(call: Any) -> tuple[grpc.StatusCode, str]:
    """Drain a call; its final status code and details."""
    try:
        async for _ in call:
            pass
    except grpc.aio.AioRpcError as exc:
        return exc.code(), exc.details() or ""
    return await call.code(), await call.details()
