"""Device-side decode + letterbox (the GPU path) checked on the CPU against the OpenCV path."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from server.frames import ClientDetections, EncodedImage, FrameInput, RawImageData
from server.tensor_preprocess import decode_to_device, letterbox_batch, letterbox_tensor
from tracker_core.letterbox import letterbox

CPU = torch.device("cpu")


def smooth_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    return cv2.GaussianBlur(img, (9, 9), 4)


def test_letterbox_tensor_matches_opencv() -> None:
    for h, w, dst in (
        (240, 320, (160, 160)),
        (100, 50, (128, 96)),
        (64, 64, (64, 64)),
        (90, 200, (320, 320)),
    ):
        rgb = smooth_image(h, w)
        ref, t_ref = letterbox(rgb, dst)
        x, t = letterbox_tensor(torch.from_numpy(rgb).permute(2, 0, 1), dst)
        assert t == t_ref
        got = (x * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        diff = np.abs(got.astype(int) - ref.astype(int))
        assert diff.max() <= 3 and diff.mean() < 0.5, (h, w, dst, diff.max(), diff.mean())


def test_letterbox_batch_shapes_and_dtype() -> None:
    imgs = [torch.from_numpy(smooth_image(48, 64, k)).permute(2, 0, 1) for k in range(3)]
    x, ts = letterbox_batch(imgs, (64, 64), torch.float32, channels_last=False)
    assert x.shape == (3, 3, 64, 64) and x.dtype == torch.float32 and len(ts) == 3
    assert float(x.min()) >= 0 and float(x.max()) <= 1
    assert torch.allclose(x[:, :, 0, 0], torch.full((3, 3), 114 / 255))  # padding


def test_decode_to_device_mixed_batch() -> None:
    rgb = smooth_image(48, 64)
    bgr = rgb[:, :, ::-1].copy()
    jpg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
    png = cv2.imencode(".png", bgr)[1].tobytes()
    nan = ClientDetections(
        np.array([[np.nan, 0, 1, 1]], np.float32), np.ones(1, np.float32), np.zeros(1, np.int64)
    )
    inputs = [
        FrameInput(EncodedImage(jpg)),
        FrameInput(EncodedImage(jpg[:300] + b"\x13" * 400)),
        FrameInput(EncodedImage(png)),
        FrameInput(RawImageData(64, 48, 2, bgr.tobytes())),
        FrameInput(RawImageData(64, 48, 2, b"\0" * 10)),
        FrameInput(EncodedImage(jpg)),
        FrameInput(EncodedImage(jpg), client_detections=nan),
    ]
    out = decode_to_device(inputs, CPU, max_pixels=10**6)
    reasons = [r for _, _, r in out]
    assert reasons == ["", "invalid_image", "", "", "invalid_image", "", "invalid_detections"]
    for k in (0, 2, 3, 5):
        img = out[k][0]
        assert img is not None and img.shape == (3, 48, 64) and img.dtype == torch.uint8
        assert np.abs(img.permute(1, 2, 0).numpy().astype(int) - rgb.astype(int)).mean() < 3
    assert "could not be decoded" in str(out[1][1])
    big = decode_to_device([FrameInput(EncodedImage(jpg))], CPU, max_pixels=1000)
    assert big[0][2] == "image_too_large"


def test_runner_tensor_path_equals_opencv_path() -> None:
    """The same frames through both preprocessing paths of the runner give the same detections layout."""
    from server.loading import random_appearance
    from server.model_runner import ModelRunner
    from tracker_core.detector import build_detector

    det = build_detector("yolov7-tiny", fuse=True)
    runner = ModelRunner(det, random_appearance(det, width=16, hidden=32), input_size=96)
    jpgs = [cv2.imencode(".jpg", smooth_image(60, 80, k))[1].tobytes() for k in range(3)]
    boxes = ClientDetections(
        np.array([[5, 5, 30, 40], [40, 10, 70, 50]], np.float32),
        np.array([0.9, 0.8], np.float32),
        np.zeros(2, np.int64),
    )
    inputs = [FrameInput(EncodedImage(j), client_detections=boxes) for j in jpgs] + [
        FrameInput(EncodedImage(b"xx"))
    ]
    ref = runner.run(inputs)
    runner.tensor_preprocess = True
    got = runner.run(inputs)
    assert [o.error_reason for o in got] == [o.error_reason for o in ref] == ["", "", "", "invalid_image"]
    for a, b in zip(ref[:3], got[:3], strict=True):
        assert a.image_hw == b.image_hw == (60, 80)
        np.testing.assert_array_equal(a.boxes, b.boxes)
        assert (
            a.embeddings is not None and b.embeddings is not None and a.embeddings.shape == b.embeddings.shape
        )
        cos = (a.embeddings * b.embeddings).sum(axis=1)
        assert (cos > 0.99).all(), cos  # ROI features of nearly identical inputs
