"""The floor benchmark's counters: FLOPs per frame and a measured matmul rate."""

from __future__ import annotations

import pytest

from benchmarks.floor import detector_flops, matmul_rate


@pytest.fixture(scope="module")
def tiny():
    from tracker_core.detector import build_detector

    return build_detector("yolov7-tiny", fuse=True)


def test_detector_flops_grow_with_the_number_of_pixels(tiny):
    f64, f128 = detector_flops(tiny, 64), detector_flops(tiny, 128)
    assert f64 > 0
    # convolutions dominate and scale with H*W: 4x the pixels, ~4x the FLOPs
    assert f128 / f64 == pytest.approx(4.0, rel=0.05)


def test_yolov7_tiny_flops_match_its_published_size(tiny):
    # the official yolov7-tiny reports 13.2 GFLOPs at 640x640 (2 FLOPs per multiply-accumulate): 3.3 at 320
    assert detector_flops(tiny, 320) / 1e9 == pytest.approx(13.2 / 4, rel=0.1)


def test_matmul_rate_is_positive_and_names_its_size():
    import torch

    r = matmul_rate("cpu", torch.float32, seconds=0.1, sizes=(128, 256))
    assert r["flops_per_s"] > 1e7 and r["n"] in (128, 256)


def test_encoder_flops_are_linear_in_the_number_of_boxes(tiny):
    from benchmarks.floor import encoder_flops

    f10, f20 = encoder_flops(tiny, 10), encoder_flops(tiny, 20)
    assert f10 > 0 and f20 == 2 * f10
