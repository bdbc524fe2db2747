"""Post-processing: confidence filter + class-aware NMS against a slow pure-Python reference, edge cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tracker_core.detector.postprocess import nms_one, postprocess
from tracker_core.errors import InvalidInputError
from tracker_core.letterbox import letterbox_transform


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def slow_reference(pred: np.ndarray, conf, iou, max_det, classes=None):
    """Greedy per-class NMS, one box at a time, in plain Python."""
    cands = []
    for row in pred:
        obj = float(row[4])
        if obj <= conf:
            continue
        probs = row[5:] * obj
        c = int(np.argmax(probs))
        s = float(probs[c])
        if s <= conf or (classes is not None and c not in classes):
            continue
        x, y, w, h = (float(v) for v in row[:4])
        cands.append(((x - w / 2, y - h / 2, x + w / 2, y + h / 2), s, c))
    cands.sort(key=lambda t: -t[1])
    kept: list = []
    for box, s, c in cands:
        if all(kc != c or _iou(box, kb) <= iou for kb, _, kc in kept):
            kept.append((box, s, c))
    return kept[:max_det]


def _random_pred(n: int, nc: int, seed: int) -> torch.Tensor:
    g = np.random.default_rng(seed)
    xy = g.uniform(20, 300, (n, 2))
    wh = g.uniform(10, 80, (n, 2))
    obj = g.uniform(0, 1, (n, 1))
    cls = g.uniform(0, 1, (n, nc))
    return torch.tensor(np.concatenate([xy, wh, obj, cls], 1), dtype=torch.float32)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("classes", [None, [1, 3]])
def test_matches_slow_reference(seed, classes):
    pred = _random_pred(400, 5, seed)
    boxes, scores, labels = nms_one(pred, conf=0.3, iou=0.45, max_det=300, classes=classes)
    ref = slow_reference(pred.numpy(), 0.3, 0.45, 300, classes)
    assert len(ref) > 5
    assert len(boxes) == len(ref)
    np.testing.assert_allclose(boxes.numpy(), np.array([r[0] for r in ref]), atol=1e-4)
    np.testing.assert_allclose(scores.numpy(), np.array([r[1] for r in ref]), atol=1e-6)
    assert labels.tolist() == [r[2] for r in ref]
    if classes is not None:
        assert set(labels.tolist()) <= set(classes)


def test_no_boxes_above_threshold():
    pred = _random_pred(50, 3, 0)
    pred[:, 4] = 0.1
    boxes, scores, labels = nms_one(pred, conf=0.25)
    assert boxes.shape == (0, 4) and scores.shape == (0,) and labels.shape == (0,)
    out = postprocess(pred[None], [letterbox_transform((100, 100), (320, 320))])
    b, s, c = out[0]
    assert b.shape == (0, 4) and b.dtype == np.float32 and s.dtype == np.float32 and c.dtype == np.int64


def test_empty_prediction_tensor():
    boxes, _, _ = nms_one(torch.zeros(0, 85))
    assert boxes.shape == (0, 4)


def test_all_one_class_overlapping_boxes_collapse_to_one():
    pred = torch.zeros(10, 85)
    pred[:, 0:4] = torch.tensor([100.0, 100.0, 50.0, 50.0])
    pred[:, 0] += torch.arange(10, dtype=torch.float32)  # shifted by up to 9 px: IoU > 0.45 with the best
    pred[:, 4] = torch.linspace(0.5, 0.95, 10)
    pred[:, 5 + 7] = 1.0
    boxes, scores, labels = nms_one(pred, conf=0.25, iou=0.45)
    assert len(boxes) == 1
    assert labels.tolist() == [7]
    assert scores.item() == pytest.approx(0.95)


def test_nms_is_class_aware():
    pred = torch.zeros(2, 85)
    pred[:, 0:4] = torch.tensor([100.0, 100.0, 50.0, 50.0])  # identical boxes
    pred[:, 4] = 0.9
    pred[0, 5 + 0] = 1.0
    pred[1, 5 + 1] = 1.0
    _, _, labels = nms_one(pred, conf=0.25, iou=0.45)
    assert sorted(labels.tolist()) == [0, 1]


def test_max_detections_keeps_the_best():
    pred = torch.zeros(50, 85)
    for i in range(50):  # 50 disjoint boxes
        pred[i, 0:4] = torch.tensor([20.0 * i + 10, 10.0, 8.0, 8.0])
    pred[:, 4] = torch.linspace(0.3, 0.99, 50)
    pred[:, 5] = 1.0
    boxes, scores, _ = nms_one(pred, conf=0.25, max_det=7)
    assert len(boxes) == 7
    np.testing.assert_allclose(scores.numpy(), pred[:, 4].numpy()[::-1][:7], rtol=1e-6)


def test_single_class_model_uses_objectness():
    pred = torch.tensor([[50.0, 50.0, 20.0, 20.0, 0.8, 0.5]])
    _, scores, labels = nms_one(pred, conf=0.25)
    assert scores.tolist() == [pytest.approx(0.8)] and labels.tolist() == [0]


def test_boxes_map_back_to_original_pixels():
    t = letterbox_transform((480, 640), (320, 320))  # scale 0.5, pad_top 40
    pred = torch.zeros(1, 1, 85)
    pred[0, 0, :4] = torch.tensor([160.0, 160.0, 100.0, 50.0])  # xyxy input 110,135,210,185
    pred[0, 0, 4] = 0.9
    pred[0, 0, 5] = 1.0
    ((b, s, c),) = postprocess(pred, [t])
    assert s.tolist() == [pytest.approx(0.9)] and c.tolist() == [0]
    np.testing.assert_allclose(b, [[220.0, 190.0, 420.0, 290.0]], atol=1e-4)


@pytest.mark.parametrize(
    "kwargs", [{"conf": 1.5}, {"conf": -0.1}, {"iou": 2.0}, {"max_det": 0}, {"classes": [-1]}]
)
def test_bad_arguments_are_clear_errors(kwargs):
    with pytest.raises(InvalidInputError):
        nms_one(torch.zeros(3, 85), **kwargs)


def test_batch_and_transform_count_must_agree():
    with pytest.raises(InvalidInputError, match="2 predictions but 1"):
        postprocess(torch.zeros(2, 3, 85), [letterbox_transform((10, 10), (32, 32))])
