"""ROI features: equal to a slow loop reference, boxes land where they should (letterbox offsets, strides)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tracker_core.errors import ConfigError, InvalidInputError
from tracker_core.features import ROI_SIZE, FeatureSpec, RoiFeatureExtractor, parse_feature_spec, roi_features
from tracker_core.letterbox import letterbox_transform


def _bilinear(fmap: np.ndarray, y: float, x: float) -> np.ndarray:
    c, h, w = fmap.shape
    if y < -1.0 or y > h or x < -1.0 or x > w:
        return np.zeros(c)
    y, x = max(y, 0.0), max(x, 0.0)
    y0, x0 = int(y), int(x)
    if y0 >= h - 1:
        y0 = y1 = h - 1
        y = float(y0)
    else:
        y1 = y0 + 1
    if x0 >= w - 1:
        x0 = x1 = w - 1
        x = float(x0)
    else:
        x1 = x0 + 1
    ly, lx = y - y0, x - x0
    hy, hx = 1 - ly, 1 - lx
    return (
        hy * hx * fmap[:, y0, x0]
        + hy * lx * fmap[:, y0, x1]
        + ly * hx * fmap[:, y1, x0]
        + ly * lx * fmap[:, y1, x1]
    )


def _slow_roi_features(tap, boxes, transforms, stride, out=ROI_SIZE):
    """Loop reference: map each box with the letterbox by hand, then ROI Align (aligned=True) sample by sample."""
    rows = []
    for b, (frame_boxes, t) in enumerate(zip(boxes, transforms, strict=True)):
        fmap = tap[b].double().numpy()
        for x1, y1, x2, y2 in frame_boxes:
            ix1, iy1 = x1 * t.scale + t.pad_left, y1 * t.scale + t.pad_top
            ix2, iy2 = x2 * t.scale + t.pad_left, y2 * t.scale + t.pad_top
            sx, sy = ix1 / stride - 0.5, iy1 / stride - 0.5
            rw, rh = (ix2 - ix1) / stride, (iy2 - iy1) / stride
            bw, bh = rw / out, rh / out
            gw, gh = max(math.ceil(rw / out), 1), max(math.ceil(rh / out), 1)
            res = np.zeros((fmap.shape[0], out, out))
            for ph in range(out):
                for pw in range(out):
                    acc = np.zeros(fmap.shape[0])
                    for iy in range(gh):
                        yy = sy + ph * bh + (iy + 0.5) * bh / gh
                        for ix in range(gw):
                            xx = sx + pw * bw + (ix + 0.5) * bw / gw
                            acc += _bilinear(fmap, yy, xx)
                    res[:, ph, pw] = acc / (gh * gw)
            rows.append(res)
    return np.stack(rows)


@pytest.mark.parametrize("stride", [32, 16, 8])
def test_matches_slow_reference(stride):
    g = torch.Generator().manual_seed(0)
    transforms = [letterbox_transform((576, 768), (640, 640)), letterbox_transform((720, 400), (640, 640))]
    tap = torch.randn(2, 3, 640 // stride, 640 // stride, generator=g)
    boxes = [
        np.array([[10.0, 20.0, 60.0, 170.0], [700.0, 500.0, 768.0, 576.0], [0.0, 0.0, 5.0, 5.0]], np.float32),
        np.array([[100.5, 33.2, 180.7, 300.1]], np.float32),
    ]
    ours = roi_features(tap, boxes, transforms, stride=stride)
    ref = _slow_roi_features(tap, boxes, transforms, stride)
    assert ours.shape == (4, 3, ROI_SIZE, ROI_SIZE)
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-5)


def _coordinate_map(batch: int, h: int, w: int, stride: int) -> torch.Tensor:
    """Channel 0 = x of the cell centre in input px, channel 1 = y, channel 2 = frame index."""
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    m = torch.stack([(xs + 0.5) * stride, (ys + 0.5) * stride, torch.zeros(h, w)]).float()
    out = m.repeat(batch, 1, 1, 1)
    out[:, 2] = torch.arange(batch).float()[:, None, None]
    return out


@pytest.mark.parametrize("stride", [32, 16, 8])
@pytest.mark.parametrize(
    ("src_hw", "dst_hw"),
    [((576, 768), (640, 640)), ((720, 400), (640, 640)), ((576, 768), (384, 640))],
)
def test_boxes_land_where_they_should(stride, src_hw, dst_hw):
    """On a map holding its own input coordinates, each bin reads back its centre in original pixels."""
    t = letterbox_transform(src_hw, dst_hw)
    assert t.pad_left > 0 or t.pad_top > 0
    other = letterbox_transform((300, 300), dst_hw)
    h, w = src_hw
    box = np.array([[0.3 * w, 0.25 * h, 0.55 * w, 0.8 * h]], np.float32)
    tap = _coordinate_map(2, dst_hw[0] // stride, dst_hw[1] // stride, stride)
    feats = roi_features(tap, [np.zeros((0, 4), np.float32), box], [other, t], stride=stride).numpy()
    assert feats.shape == (1, 3, ROI_SIZE, ROI_SIZE)
    np.testing.assert_allclose(
        feats[0, 2], 1.0, atol=1e-5
    )  # read from frame 1, not frame 0: real batch indices
    x_orig = (feats[0, 0] - t.pad_left) / t.scale
    y_orig = (feats[0, 1] - t.pad_top) / t.scale
    bw, bh = (box[0, 2] - box[0, 0]) / ROI_SIZE, (box[0, 3] - box[0, 1]) / ROI_SIZE
    exp_x = box[0, 0] + (np.arange(ROI_SIZE) + 0.5) * bw
    exp_y = box[0, 1] + (np.arange(ROI_SIZE) + 0.5) * bh
    np.testing.assert_allclose(x_orig, np.broadcast_to(exp_x[None, :], (ROI_SIZE, ROI_SIZE)), atol=1e-3 * w)
    np.testing.assert_allclose(y_orig, np.broadcast_to(exp_y[:, None], (ROI_SIZE, ROI_SIZE)), atol=1e-3 * h)


def test_several_frames_keep_order_and_batch_index():
    t = letterbox_transform((576, 768), (640, 640))
    tap = _coordinate_map(3, 20, 20, 32)
    boxes = [
        np.array([[100, 100, 200, 300]], np.float32),
        np.zeros((0, 4), np.float32),
        np.array([[300, 100, 400, 300], [10, 10, 50, 50]], np.float32),
    ]
    f = roi_features(tap, boxes, [t, t, t], stride=32)
    assert f.shape[0] == 3
    np.testing.assert_allclose(f[:, 2].mean(dim=(1, 2)).numpy(), [0.0, 2.0, 2.0], atol=1e-5)


def test_extractor_concatenates_spec_taps_in_order():
    t = letterbox_transform((576, 768), (640, 640))
    taps = {32: torch.rand(1, 4, 20, 20), 8: torch.rand(1, 2, 80, 80), 1: torch.rand(1, 3, 640, 640)}
    ex = RoiFeatureExtractor(parse_feature_spec("pixels+spp+s8"))
    boxes = [np.array([[100, 100, 200, 300]], np.float32)]
    out = ex(taps, boxes, [t])
    assert out.shape == (1, 9, ROI_SIZE, ROI_SIZE)
    torch.testing.assert_close(out[:, 4:6], roi_features(taps[8], boxes, [t], stride=8))
    torch.testing.assert_close(out[:, 6:], roi_features(taps[1], boxes, [t], stride=1))
    with pytest.raises(InvalidInputError):
        RoiFeatureExtractor(parse_feature_spec("spp+s16"))(taps, boxes, [t])


def test_bad_input_is_a_clear_error():
    t = letterbox_transform((576, 768), (640, 640))
    tap = torch.rand(1, 2, 20, 20)
    with pytest.raises(InvalidInputError):
        roi_features(tap, [np.array([[10, 10, 5, 50]], np.float32)], [t], stride=32)
    with pytest.raises(InvalidInputError):
        roi_features(tap, [np.array([[10, 10, np.nan, 50]], np.float32)], [t], stride=32)
    with pytest.raises(InvalidInputError):
        roi_features(tap, [np.zeros((0, 4)), np.zeros((0, 4))], [t, t], stride=32)
    with pytest.raises(ConfigError):
        parse_feature_spec("spp+fancy")
    with pytest.raises(ConfigError):
        FeatureSpec((32, 16, 8))


@pytest.mark.parametrize(
    "box",
    [
        (0.0, -40.0, 20971520.0, 20971480.0),  # overflowed torchvision's CPU kernel's bin grid: SIGSEGV
        (10.0, 10.0, 1e5, 1e5),
        (10.0, 10.0, 1e9, 1e9),
        (-1e9, -1e9, 1e9, 1e9),
        (500.0, 500.0, 900.0, 900.0),  # wholly outside: an empty box at the corner, zero features
    ],
)
def test_boxes_beyond_the_frame_are_clipped_before_roi_align(box):
    """The op clips each box to its frame, so any finite box costs what the frame-sized box costs (torchvision's
    adaptive sampling grid grows with the box: unclipped, these ran for seconds or crashed the process)."""
    import time

    t = letterbox_transform((240, 320), (160, 160))
    g = torch.Generator().manual_seed(0)
    for stride, channels in ((32, 8), (1, 3)):  # the SPP tap and the pixels "tap"
        tap = torch.randn(1, channels, 160 // stride, 160 // stride, generator=g)
        b = np.array([box], np.float32)
        clipped = b.copy()
        clipped[:, [0, 2]] = clipped[:, [0, 2]].clip(0, 320)
        clipped[:, [1, 3]] = clipped[:, [1, 3]].clip(0, 240)
        t0 = time.perf_counter()
        roi_features(tap, [clipped], [t], stride=stride)
        frame_box_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        got = roi_features(tap, [b], [t], stride=stride)
        # a ratio to the frame-sized box measured here (unclipped, these took seconds); 0.5 s of slack for a
        # neighbour's load on a shared machine, far below what the unclipped boxes cost
        assert time.perf_counter() - t0 < 20 * frame_box_s + 0.5
        want = _slow_roi_features(tap, [clipped], [t], stride) if stride == 32 else None
        assert got.shape == (1, channels, ROI_SIZE, ROI_SIZE) and torch.isfinite(got).all()
        if box[0] >= 320:
            assert (got == 0).all()
        elif want is not None:
            np.testing.assert_allclose(got.numpy(), want, atol=1e-5)


def test_rois_never_reach_outside_the_map():
    """Even a transform that places a box outside the input (a caller's bug) cannot push the op off its map."""
    from tracker_core.letterbox import LetterboxTransform

    lying = LetterboxTransform(scale=1e6, pad_left=0, pad_top=0, src_w=320, src_h=240, dst_w=160, dst_h=160)
    tap = torch.ones(1, 2, 5, 5)
    got = roi_features(tap, [np.array([[1.0, 1.0, 300.0, 200.0]], np.float32)], [lying], stride=32)
    assert got.shape == (1, 2, ROI_SIZE, ROI_SIZE) and torch.isfinite(got).all()
