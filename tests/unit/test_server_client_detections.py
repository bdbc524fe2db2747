"""Client detections in the model runner (issue 19): boxes wholly outside the frame are dropped and counted, the
client's indices of the kept ones travel with them, malformed boxes are refused before the frame is decoded, and
a stored error holds no traceback. Both decode paths: OpenCV (CPU) and the device path (forced here on the CPU)."""

from __future__ import annotations

import functools

import cv2
import numpy as np
import pytest

from server.frames import ClientDetections, EncodedImage, FrameInput
from server.model_runner import ModelRunner


@functools.lru_cache(maxsize=1)
def _runner() -> ModelRunner:
    from server.loading import random_appearance
    from tracker_core.detector import build_detector

    det = build_detector("yolov7-tiny", fuse=True, seed=0)
    return ModelRunner(det, random_appearance(det), input_size=64)


def _jpeg(w: int = 160, h: int = 120) -> bytes:
    img = np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)
    return cv2.imencode(".jpg", img)[1].tobytes()


def _dets(
    boxes: list[tuple[float, float, float, float]], classes: list[int] | None = None
) -> ClientDetections:
    n = len(boxes)
    cls = np.asarray(classes if classes is not None else [0] * n, np.int64)
    return ClientDetections(np.asarray(boxes, np.float32).reshape(n, 4), np.full(n, 0.9, np.float32), cls)


@pytest.fixture(params=[False, True], ids=["opencv", "device-path"])
def runner(request: pytest.FixtureRequest) -> ModelRunner:
    r = _runner()
    r.tensor_preprocess = request.param
    return r


def test_boxes_wholly_outside_are_dropped_and_the_rest_keep_their_client_index(runner: ModelRunner) -> None:
    boxes = [
        (10, 10, 40, 60),  # 0 inside
        (170, 10, 200, 60),  # 1 right of the 160x120 frame
        (150, 100, 190, 140),  # 2 reaching past the corner: kept
        (-50, -50, -1, -1),  # 3 above-left
        (20, 30, 60, 90),  # 4 inside, class 1 (filtered out below)
        (30, 20, 70, 80),  # 5 inside
    ]
    dets = _dets(boxes, [0, 0, 0, 0, 1, 0])
    (out,) = runner.run([FrameInput(EncodedImage(_jpeg()), dets, classes=(0,))])
    assert out.error is None
    assert out.dropped_detections == 2  # boxes 1 and 3; box 4 is a class filter, not a drop
    assert out.det_source is not None and out.det_source.tolist() == [0, 2, 5]
    np.testing.assert_array_equal(out.boxes, np.asarray([boxes[k] for k in (0, 2, 5)], np.float32))
    assert out.embeddings is not None and out.embeddings.shape[0] == 3


def test_malformed_boxes_are_refused_before_decoding(runner: ModelRunner) -> None:
    """The image is not even decodable: the detections' error wins because they are checked first."""
    garbage = EncodedImage(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    nan = _dets([(float("nan"), 0, 10, 10)])
    flat = _dets([(10, 10, 10, 20)])
    outs = runner.run([FrameInput(garbage, nan), FrameInput(garbage, flat), FrameInput(garbage)])
    assert [o.error_reason for o in outs] == ["invalid_detections", "invalid_detections", "invalid_image"]
    for o in outs:
        assert o.error is not None and o.error.__traceback__ is None and o.error.__context__ is None


def test_a_frame_of_only_outside_boxes_is_tracked_with_none(runner: ModelRunner) -> None:
    (out,) = runner.run([FrameInput(EncodedImage(_jpeg()), _dets([(500, 500, 600, 600)]))])
    assert out.error is None and out.dropped_detections == 1 and len(out.boxes) == 0
    assert out.det_source is not None and out.det_source.size == 0
