"""Real weight files: an official-format checkpoint converted to safetensors, plus an encoder saved for it,
served end to end; the demo's detector mode."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from roitrack_api.roitrack.v1 import tracking_pb2 as pb
from server.app import TrackingServer
from server.config import load_config
from server.loading import build_runner, file_sha256, tracker_factory
from tests.integration.server_harness import Lockstep, frame_req, open_req, stub

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]


@pytest.fixture(scope="module")
def tiny_weights(yolov7_reference: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tracker_core.detector import convert_weights

    out = tmp_path_factory.mktemp("weights") / "yolov7-tiny.safetensors"
    convert_weights(yolov7_reference / "yolov7-tiny-random-official-format.pt", out)
    return out


async def test_serve_converted_weights_with_encoder(tiny_weights: Path, tmp_path: Path) -> None:
    from tracker_core.detector import load_detector
    from tracker_core.encoder import EncoderMeta, build_encoder, save_encoder

    det = load_detector(tiny_weights)
    meta = EncoderMeta(
        detector_arch=det.arch,
        detector_sha256=det.weights_sha256,
        features="spp",
        tap_channels={"32": int(det.tap_channels)},
        width=16,
        hidden=32,
    )
    enc = tmp_path / "encoder.safetensors"
    save_encoder(enc, build_encoder(meta), meta)
    cfg = load_config(
        environ={},
        flags={
            "weights": str(tiny_weights),
            "encoder": str(enc),
            "input_size": 160,
            "host": "127.0.0.1",
            "port": 0,
            "metrics_port": 0,
            "device": "cpu",
        },
    )
    srv = TrackingServer(cfg, build_runner(cfg), tracker_factory())
    await srv.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{srv.port}") as ch:
            info = await stub(ch).GetInfo(pb.GetInfoRequest())
            assert info.weights_sha256 == det.weights_sha256 and info.detector_arch == "yolov7-tiny"
            assert info.encoder_sha256 == file_sha256(enc) and info.appearance_available
            call = Lockstep(stub(ch))
            await call.send(open_req("w", conf_threshold=0.5))
            for i in range(1, 6):
                r = await call.step(frame_req(i))
                assert not r.HasField("error") and r.timings.inference_ms > 0
            assert await call.finish() == grpc.StatusCode.OK
    finally:
        await srv.shutdown()


def test_demo_detector_mode(tiny_weights: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "roitrack_cli.main", "demo", "--out-dir", str(tmp_path / "out"),
         "--weights", str(tiny_weights), "--max-frames", "12", "--no-video", "--size", "160"],
        capture_output=True, text=True, timeout=200,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "OFFLINE DEMO" not in proc.stdout
    assert f"roitrack demo: detector {tiny_weights}" in proc.stdout and "frames answered 12/12" in proc.stdout
