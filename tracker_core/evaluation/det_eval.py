"""``roitrack eval-det``: score detections (a detector's or any ``det.txt``) against ground truth, one code path.

COCO-style figures come from pycocotools (``COCOeval``, bbox): AP50, AP50:95, AP75, AP by box size (small <
32^2, medium < 96^2, large px^2 of the ground-truth box) and AR@100. Ignore regions are COCO "crowd" boxes
(``iscrowd = 1``): a detection lying on one (its intersection over its own area at the IoU threshold) is
neither a true nor a false positive, and they count as no positive. VOC-style AP50 (all-point interpolation,
IoU > 0.5, ignore regions as VOC's "difficult") and precision / recall at the operating threshold come from
:mod:`tracker_core.evaluation.det_metrics` on the same detections.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tracker_core.errors import ConfigError
from tracker_core.evaluation.det_metrics import FrameDets, FrameTruth, voc_scores_by_class

COCO_KEYS = (
    "ap50_95",
    "ap50",
    "ap75",
    "ap_small",
    "ap_medium",
    "ap_large",
    "ar1",
    "ar10",
    "ar100",
    "ar_small",
    "ar_medium",
    "ar_large",
)


def _xywh(b: np.ndarray) -> list[list[float]]:
    b = np.asarray(b, np.float64).reshape(-1, 4)
    return np.stack([b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], 1).tolist()


def coco_scores(
    dets: Sequence[FrameDets],
    truth: Sequence[FrameTruth],
    sizes: Sequence[tuple[int, int]],
    num_classes: int = 1,
) -> dict[str, float]:
    """pycocotools' twelve bbox figures (``COCO_KEYS``; -1 where a size has no ground truth). ``sizes``: ``(w,
    h)`` of each frame; class ids ``0..num_classes-1`` (None = class 0)."""
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        raise ConfigError(
            "eval-det needs pycocotools: pip install 'roitrack[dev]' (or pycocotools)"
        ) from None
    images, anns, results = [], [], []
    aid = 0
    for i, (d, t, (w, h)) in enumerate(zip(dets, truth, sizes, strict=True)):
        images.append({"id": i + 1, "width": int(w), "height": int(h)})
        cls = np.zeros(len(t.boxes), np.int64) if t.classes is None else np.asarray(t.classes)
        for box, c in zip(_xywh(t.boxes), cls.tolist(), strict=True):
            aid += 1
            anns.append(
                {
                    "id": aid,
                    "image_id": i + 1,
                    "category_id": int(c) + 1,
                    "bbox": box,
                    "area": box[2] * box[3],
                    "iscrowd": 0,
                }
            )
        for box in _xywh(t.ignore):
            for c in range(num_classes):  # an ignore region is no object of any class
                aid += 1
                anns.append(
                    {
                        "id": aid,
                        "image_id": i + 1,
                        "category_id": c + 1,
                        "bbox": box,
                        "area": box[2] * box[3],
                        "iscrowd": 1,
                    }
                )
        dcls = np.zeros(len(d.boxes), np.int64) if d.classes is None else np.asarray(d.classes)
        for box, s, c in zip(_xywh(d.boxes), np.asarray(d.scores).tolist(), dcls.tolist(), strict=True):
            results.append({"image_id": i + 1, "category_id": int(c) + 1, "bbox": box, "score": float(s)})
    gt_json: dict[str, Any] = {
        "images": images,
        "annotations": anns,
        "categories": [{"id": c + 1, "name": str(c)} for c in range(num_classes)],
    }
    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet):
        gt = COCO()
        gt.dataset = gt_json
        gt.createIndex()
        if not results:
            return dict.fromkeys(COCO_KEYS, 0.0)
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, iouType="bbox")
        ev.params.maxDets = [1, 10, 100]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {k: float(v) for k, v in zip(COCO_KEYS, ev.stats, strict=True)}


@dataclass(frozen=True)
class DetReport:
    """One row of ``eval-det``: which detections, how many, COCO and VOC figures."""

    name: str
    frames: int
    gt_boxes: int
    ignore_regions: int
    detections: int
    operating_threshold: float
    coco: dict[str, float]
    voc: dict[str, float | int]

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def evaluate_detections(
    name: str,
    dets: Sequence[FrameDets],
    truth: Sequence[FrameTruth],
    sizes: Sequence[tuple[int, int]],
    operating_threshold: float,
    num_classes: int = 1,
) -> DetReport:
    """Every figure of one set of detections (see the module doc)."""
    voc = voc_scores_by_class(dets, truth, operating_threshold)
    return DetReport(
        name=name,
        frames=len(truth),
        gt_boxes=int(sum(len(t.boxes) for t in truth)),
        ignore_regions=int(sum(len(t.ignore) for t in truth)),
        detections=int(sum(len(d.boxes) for d in dets)),
        operating_threshold=float(operating_threshold),
        coco=coco_scores(dets, truth, sizes, num_classes),
        voc=voc.to_dict(),
    )


def format_table(rows: Sequence[DetReport]) -> str:
    """The ``eval-det`` table (COCO AP by size: -1 = no ground-truth box of that size)."""
    head = (
        "| detections | frames | gt | dets | AP50 (COCO) | AP50:95 | AP75 | AP small | AP medium | AP large | AR@100 "
        "| VOC AP50 | P @thr | R @thr | thr |"
    )
    lines = [head, "|" + "---|" * 15]
    for r in rows:
        c, v = r.coco, r.voc
        lines.append(
            f"| {r.name} | {r.frames} | {r.gt_boxes} | {r.detections} | {c['ap50']:.3f} | {c['ap50_95']:.3f} | "
            f"{c['ap75']:.3f} | {c['ap_small']:.3f} | {c['ap_medium']:.3f} | {c['ap_large']:.3f} | {c['ar100']:.3f} | "
            f"**{float(v['ap50']):.3f}** | {float(v['precision']):.3f} | {float(v['recall']):.3f} | {r.operating_threshold:g} |"
        )
    return "\n".join(lines)
