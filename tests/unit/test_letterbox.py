"""Letterbox: equal to the official one (shared parity vectors) and box mapping both ways."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tracker_core.errors import InvalidInputError
from tracker_core.letterbox import letterbox, letterbox_transform

FRAMES = {"f0": 100, "f1": 300}


@pytest.mark.parametrize("arch", ["yolov7", "yolov7-tiny"])
@pytest.mark.parametrize("shape", ["640x640", "384x640"])
@pytest.mark.parametrize("frame", ["f0", "f1"])
def test_letterbox_matches_official(yolov7_reference, pets_sequence, arch, shape, frame):
    ref = np.load(yolov7_reference / f"{arch}-parity.npz")[f"{frame}_{shape}_input_u8"]
    bgr = cv2.imread(str(pets_sequence / "img1" / f"{FRAMES[frame]:06d}.jpg"))
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    h, w = (int(v) for v in shape.split("x"))
    out, _ = letterbox(rgb, (h, w))
    ours = out.transpose(2, 0, 1)
    assert ours.shape == ref.shape
    diff = np.abs(ours.astype(np.int16) - ref.astype(np.int16))
    assert diff.max() <= 1
    assert (diff > 0).mean() <= 0.001


def test_box_roundtrip_and_offsets():
    t = letterbox_transform((576, 768), (640, 640))
    assert t.scale == pytest.approx(640 / 768)
    assert (t.pad_left, t.pad_top) == (0, (640 - 480) // 2)
    boxes = np.array([[10, 20, 110, 220], [0, 0, 768, 576]], dtype=np.float32)
    inp = t.to_input(boxes)
    np.testing.assert_allclose(inp[1], [0, 80, 640, 560], atol=1e-4)
    np.testing.assert_allclose(t.to_original(inp), boxes, atol=1e-3)


def test_bad_input_is_a_clear_error():
    with pytest.raises(InvalidInputError, match="HxWx3 uint8"):
        letterbox(np.zeros((10, 10), dtype=np.uint8), (32, 32))
    with pytest.raises(InvalidInputError, match="positive"):
        letterbox_transform((0, 10), (32, 32))


@pytest.mark.parametrize(("h", "w"), [(1000, 1), (1, 1000), (700, 1), (1, 1)])
def test_extreme_aspect_frames_keep_a_one_pixel_side(h, w):
    """A side that rounds to 0 px (it made cv2.resize raise and failed the whole batch) is kept at 1 px."""
    img = np.full((h, w, 3), 200, np.uint8)
    out, t = letterbox(img, (160, 160))
    assert out.shape == (160, 160, 3)
    nw, nh = t.resized_wh
    assert nw >= 1 and nh >= 1 and max(nw, nh) == 160
    assert (out[t.pad_top : t.pad_top + nh, t.pad_left : t.pad_left + nw] == 200).all()
