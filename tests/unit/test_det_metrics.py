"""Detection metrics: VOC matching with ignore regions and AP against slow references; pycocotools' figures with
crowd (ignore) regions; MOTChallenge ground-truth columns (MOT15 world coordinates vs MOT17 class/visibility);
YOLO ``data.yaml`` + labels."""

from __future__ import annotations

import itertools
from pathlib import Path

import cv2
import numpy as np
import pytest

from tracker_core.errors import InvalidInputError
from tracker_core.evaluation.det_eval import coco_scores, evaluate_detections, format_table
from tracker_core.evaluation.det_metrics import (
    FrameDets,
    FrameTruth,
    average_precision,
    box_iou,
    match,
    voc_scores,
    voc_scores_by_class,
)
from tracker_core.evaluation.det_truth import (
    label_path,
    read_mot_truth,
    read_yolo_data,
    read_yolo_split,
    scored_rows,
)

E = np.zeros((0, 4), np.float32)


def _box(x: float, y: float, w: float = 20, h: float = 60) -> list[float]:
    return [x, y, x + w, y + h]


def _slow_iou(a, b) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def test_box_iou_equals_slow_reference() -> None:
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 100, (7, 2))
    a = np.concatenate([a, a + rng.uniform(1, 50, (7, 2))], 1)
    b = rng.uniform(0, 100, (5, 2))
    b = np.concatenate([b, b + rng.uniform(1, 50, (5, 2))], 1)
    got = box_iou(a, b)
    for i, j in itertools.product(range(7), range(5)):
        assert got[i, j] == pytest.approx(_slow_iou(a[i], b[j]), abs=1e-12)


def _slow_voc_ap(dets, truth, thr=0.5):
    """VOCdevkit's voc_eval, written plainly: global score order, best-overlap box, difficult = ignore."""
    rows = sorted(
        ((float(s), f, k) for f, d in enumerate(dets) for k, s in enumerate(d.scores)), key=lambda r: -r[0]
    )
    taken = [[False] * len(t.boxes) for t in truth]
    npos = sum(len(t.boxes) for t in truth)
    tp, fp = [], []
    for _, f, k in rows:
        gts = [(list(b), False) for b in truth[f].boxes] + [(list(b), True) for b in truth[f].ignore]
        ovs = [_slow_iou(dets[f].boxes[k], g) for g, _ in gts]
        if not ovs or max(ovs) <= thr:
            tp.append(0)
            fp.append(1)
            continue
        j = int(np.argmax(ovs))
        if gts[j][1]:
            continue
        if not taken[f][j]:
            taken[f][j] = True
            tp.append(1)
            fp.append(0)
        else:
            tp.append(0)
            fp.append(1)
    tp_c, fp_c = np.cumsum(tp), np.cumsum(fp)
    rec = tp_c / npos
    prec = tp_c / np.maximum(tp_c + fp_c, 1e-12)
    ap = 0.0
    mrec = np.concatenate([[0.0], rec, [1.0]])
    mpre = np.concatenate([[0.0], prec, [0.0]])
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    for i in range(1, len(mrec)):
        if mrec[i] != mrec[i - 1]:
            ap += (mrec[i] - mrec[i - 1]) * mpre[i]
    return ap


def _random_case(seed: int) -> tuple[list[FrameDets], list[FrameTruth]]:
    rng = np.random.default_rng(seed)
    dets, truth = [], []
    for _ in range(6):
        gt = np.array([_box(*rng.uniform(0, 300, 2)) for _ in range(rng.integers(0, 5))], np.float32).reshape(
            -1, 4
        )
        ign = np.array(
            [_box(*rng.uniform(0, 300, 2), 40, 80) for _ in range(rng.integers(0, 2))], np.float32
        ).reshape(-1, 4)
        near = gt + rng.normal(0, 6, gt.shape).astype(np.float32)
        far = np.array(
            [_box(*rng.uniform(0, 300, 2)) for _ in range(rng.integers(0, 4))], np.float32
        ).reshape(-1, 4)
        on_ign = ign + rng.normal(0, 3, ign.shape).astype(np.float32)
        boxes = np.concatenate([near, far, on_ign]).astype(np.float32)
        dets.append(FrameDets(boxes, rng.uniform(0, 1, len(boxes)).astype(np.float32)))
        truth.append(FrameTruth(gt, ign))
    return dets, truth


@pytest.mark.parametrize("seed", range(8))
def test_voc_ap_equals_slow_voc_eval_with_ignore_regions(seed: int) -> None:
    dets, truth = _random_case(seed)
    if sum(len(t.boxes) for t in truth) == 0:
        pytest.skip("no positives drawn")
    got = voc_scores(dets, truth, conf=0.0)
    assert got.ap50 == pytest.approx(_slow_voc_ap(dets, truth), abs=1e-12)


def test_ignore_regions_drop_detections_and_positives() -> None:
    truth = [FrameTruth(np.array([_box(0, 0)], np.float32), np.array([_box(100, 0)], np.float32))]
    hit = np.array(_box(0, 0), np.float32)
    on_ignore = np.array(_box(101, 1), np.float32)
    with_ign = voc_scores(
        [FrameDets(np.stack([on_ignore, hit]), np.array([0.9, 0.8], np.float32))], truth, 0.5
    )
    assert with_ign.ap50 == 1.0 and with_ign.fp == 0 and with_ign.npos == 1
    no_ign = [FrameTruth(truth[0].boxes, E)]
    without = voc_scores(
        [FrameDets(np.stack([on_ignore, hit]), np.array([0.9, 0.8], np.float32))], no_ign, 0.5
    )
    assert (
        without.ap50 == pytest.approx(0.5) and without.fp == 1
    )  # the same detection is now a false positive


def test_average_precision_hand_examples() -> None:
    # two positives; ranked TP, FP, TP: precision 1, 1/2, 2/3 at recall 0.5, 0.5, 1
    assert average_precision(np.array([True, False, True]), 2) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert average_precision(np.array([True, False, True]), 2, "11") == pytest.approx(
        (6 * 1 + 5 * 2 / 3) / 11
    )
    assert average_precision(np.array([], bool), 3) == 0.0
    assert average_precision(np.array([True]), 0) == 0.0
    with pytest.raises(InvalidInputError):
        average_precision(np.array([True]), 1, "101")


def test_duplicates_are_false_positives_and_strict_threshold() -> None:
    gt = [FrameTruth(np.array([[0, 0, 10, 10]], np.float32), E)]
    d = [
        FrameDets(
            np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 5]], np.float32),
            np.array([0.9, 0.8, 0.7], np.float32),
        )
    ]
    m = match(d, gt, (0.5,))
    assert m.tp[0].tolist() == [True, False, False]
    strict = match(d, gt, (0.5,), strict=True)
    loose = match(d, gt, (0.5,), strict=False)
    assert strict.tp[0].sum() == loose.tp[0].sum() == 1
    half = [FrameDets(np.array([[0, 0, 10, 5]], np.float32), np.array([1.0], np.float32))]  # IoU exactly 0.5
    assert not match(half, gt, (0.5,), strict=True).tp[0].any()
    assert match(half, gt, (0.5,), strict=False).tp[0].all()


def test_coco_scores_perfect_and_ignore_regions() -> None:
    truth = [
        FrameTruth(
            np.array([_box(10, 10), _box(100, 20, 40, 120)], np.float32),
            np.array([_box(200, 10, 50, 100)], np.float32),
        )
    ]
    perfect = [FrameDets(truth[0].boxes.copy(), np.array([0.9, 0.8], np.float32))]
    c = coco_scores(perfect, truth, [(320, 240)])
    assert c["ap50"] == pytest.approx(1.0) and c["ap50_95"] == pytest.approx(1.0)
    assert c["ap_small"] == -1.0  # 20x60 = 1200 px^2 and 40x120: medium only
    with_false = [
        FrameDets(
            np.concatenate([truth[0].boxes, [_box(202, 12, 46, 94)]]).astype(np.float32),
            np.array([0.9, 0.8, 0.95], np.float32),
        )
    ]
    assert coco_scores(with_false, truth, [(320, 240)])["ap50"] == pytest.approx(1.0)  # on the ignore region
    no_ignore = [FrameTruth(truth[0].boxes, E)]
    assert coco_scores(with_false, no_ignore, [(320, 240)])["ap50"] < 0.9
    rep = evaluate_detections("x", with_false, truth, [(320, 240)], 0.5)
    assert rep.voc["ap50"] == 1.0 and rep.ignore_regions == 1 and rep.detections == 3
    table = format_table([rep]).splitlines()
    assert len(table) == 3 and table[2].startswith("| x | 1 | 2 | 3 | 1.000 |") and "**1.000**" in table[2]


def test_multiclass_map_is_the_mean_over_classes() -> None:
    truth = [FrameTruth(np.array([_box(0, 0), _box(100, 0)], np.float32), E, np.array([0, 1]))]
    dets = [
        FrameDets(
            np.array([_box(0, 0), _box(100, 0)], np.float32),
            np.array([0.9, 0.9], np.float32),
            np.array([0, 0]),
        )
    ]
    s = voc_scores_by_class(dets, truth, 0.5)
    assert s.ap50 == pytest.approx(
        0.5
    )  # class 0 perfect (its second box is a false positive after the first), class 1 missed
    c = coco_scores(dets, truth, [(300, 300)], num_classes=2)
    assert c["ap50"] == pytest.approx(0.5, abs=0.01)


def test_scored_rows_mot15_world_columns_are_not_class_or_visibility() -> None:
    mot15 = np.array(
        [
            [1, 1, 0, 0, 10, 20, 1, -4.2, -7.1, 0],  # world coordinates in 8-10: scored
            [1, 2, 0, 0, 10, 20, 0, 3.0, 0.1, 0],  # flag 0: ignore
        ]
    )
    assert scored_rows(mot15).tolist() == [True, False]
    mot17 = np.array(
        [
            [1, 1, 0, 0, 10, 20, 1, 1, 0.9],
            [1, 2, 0, 0, 10, 20, 1, 7, 1.0],  # static person: not scored
            [1, 3, 0, 0, 10, 20, 1, 1, 0.1],  # barely visible
            [1, 4, 0, 0, 10, 20, 0, 1, 1.0],  # flag 0
        ]
    )
    assert scored_rows(mot17).tolist() == [True, False, True, False]
    assert scored_rows(mot17, min_visibility=0.25).tolist() == [True, False, False, False]
    assert scored_rows(mot15, "mot15").tolist() == [True, False]
    with pytest.raises(InvalidInputError):
        scored_rows(mot15[:, :8], "mot17")


def test_read_mot_truth_pets_ignore_rows(pets_sequence: Path) -> None:
    items = read_mot_truth(pets_sequence)
    assert len(items) == 400
    gt = np.loadtxt(pets_sequence / "gt" / "gt.txt", delimiter=",")
    assert sum(len(it.boxes) for it in items) == int((gt[:, 6] == 1).sum())
    assert sum(len(it.ignore) for it in items) == int((gt[:, 6] == 0).sum()) > 0
    f1 = gt[(gt[:, 0] == 1) & (gt[:, 6] == 1)]
    assert items[0].boxes[0].tolist() == pytest.approx(
        [f1[0, 2], f1[0, 3], f1[0, 2] + f1[0, 4], f1[0, 3] + f1[0, 5]]
    )


def _yolo_dataset(root: Path) -> Path:
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for k in range(3):
            cv2.imwrite(str(root / "images" / split / f"{k}.jpg"), np.full((100, 200, 3), 90, np.uint8))
            if k < 2:
                (root / "labels" / split / f"{k}.txt").write_text("1 0.5 0.5 0.2 0.4\n0 0.1 0.1 0.1 0.1\n")
    (root / "data.yaml").write_text(
        "path: .\ntrain: images/train\nval: images/val\nnames:\n  0: car\n  1: person\n"
    )
    return root / "data.yaml"


def test_yolo_dataset_reading(tmp_path: Path) -> None:
    d = read_yolo_data(_yolo_dataset(tmp_path / "ds"))
    assert d.names == ["car", "person"] and len(d.splits["train"]) == 3 and len(d.splits["val"]) == 3
    items = read_yolo_split(d, "val")
    assert [len(i.boxes) for i in items] == [2, 2, 0]  # no label file: no objects
    assert items[0].classes.tolist() == [1, 0]
    assert items[0].boxes[0].tolist() == pytest.approx([80, 30, 120, 70])
    assert label_path(Path("/a/images/b/x.jpg")) == Path("/a/labels/b/x.txt")
    (tmp_path / "ds" / "labels" / "val" / "0.txt").write_text("5 0.5 0.5 0.2 0.2\n")
    with pytest.raises(InvalidInputError, match="class ids"):
        read_yolo_split(d, "val")
    with pytest.raises(InvalidInputError, match="no 'test' split"):
        read_yolo_split(d, "test")
