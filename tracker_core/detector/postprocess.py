"""Decoded YOLOv7 predictions -> final detections: confidence filter and class-aware NMS.

Follows the official ``non_max_suppression`` (single label per box): keep anchors with objectness above
``conf``; score = objectness x class probability (objectness alone when ``nc == 1``); best class per box;
keep score above ``conf``; optional class filter; at most ``max_candidates`` highest scores go to
``torchvision.ops.batched_nms`` (per-class NMS at ``iou``); at most ``max_det`` boxes remain, best first.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torchvision.ops import batched_nms

from tracker_core.errors import InvalidInputError
from tracker_core.letterbox import LetterboxTransform

MAX_CANDIDATES = 30000


def xywh_to_xyxy(b: torch.Tensor) -> torch.Tensor:
    """``[N,4]`` centre x, y, width, height -> ``[N,4]`` x1, y1, x2, y2 (same units)."""
    half = b[:, 2:4] / 2
    return torch.cat((b[:, 0:2] - half, b[:, 0:2] + half), 1)


def check_nms_args(conf: float, iou: float, max_det: int, classes: Sequence[int] | None) -> None:
    if not 0.0 <= conf <= 1.0:
        raise InvalidInputError(f"conf must be in [0, 1], got {conf}")
    if not 0.0 <= iou <= 1.0:
        raise InvalidInputError(f"iou must be in [0, 1], got {iou}")
    if int(max_det) < 1:
        raise InvalidInputError(f"max_det must be >= 1, got {max_det}")
    if classes is not None and any(int(c) < 0 for c in classes):
        raise InvalidInputError(f"class ids must be >= 0, got {list(classes)}")


def nms_one(
    pred: torch.Tensor,
    conf: float = 0.25,
    iou: float = 0.45,
    max_det: int = 300,
    classes: Sequence[int] | None = None,
    max_candidates: int = MAX_CANDIDATES,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One image: ``pred`` ``[A,5+nc]`` -> (``boxes`` ``[N,4]`` xyxy input px float32, ``scores`` ``[N]``,
    ``classes`` ``[N]`` int64), sorted by score, ``N <= max_det``."""
    if pred.ndim != 2 or pred.shape[1] < 6:
        raise InvalidInputError(f"predictions must be [A, 5+nc], got {list(pred.shape)}")
    check_nms_args(conf, iou, max_det, classes)
    p = pred.float()
    nc = p.shape[1] - 5
    p = p[p[:, 4] > conf]
    cls_scores = p[:, 4:5] if nc == 1 else p[:, 5:] * p[:, 4:5]
    scores, labels = cls_scores.max(1) if p.shape[0] else (p.new_zeros(0), p.new_zeros(0, dtype=torch.long))
    keep = scores > conf
    if classes is not None:
        wanted = torch.tensor([int(c) for c in classes], device=p.device, dtype=torch.long)
        keep &= (labels.view(-1, 1) == wanted.view(1, -1)).any(1)
    boxes = xywh_to_xyxy(p[keep, :4])
    scores, labels = scores[keep], labels[keep]
    if scores.numel() > max_candidates:
        top = scores.argsort(descending=True)[:max_candidates]
        boxes, scores, labels = boxes[top], scores[top], labels[top]
    idx = batched_nms(boxes, scores, labels, iou)[: int(max_det)]
    return boxes[idx], scores[idx], labels[idx]


def postprocess(
    pred: torch.Tensor,
    transforms: Sequence[LetterboxTransform],
    conf: float = 0.25,
    iou: float = 0.45,
    max_det: int = 300,
    classes: Sequence[int] | None = None,
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Batch: ``pred`` ``[B,A,5+nc]`` + one transform per image -> per image
    (``boxes`` ``[N,4]`` float32 xyxy **original-frame** pixels (clipped), ``scores`` ``[N]`` float32,
    ``classes`` ``[N]`` int64)."""
    if pred.ndim != 3:
        raise InvalidInputError(f"predictions must be [B, A, 5+nc], got {list(pred.shape)}")
    if len(transforms) != pred.shape[0]:
        raise InvalidInputError(f"{pred.shape[0]} predictions but {len(transforms)} letterbox transforms")
    out = []
    for i, t in enumerate(transforms):
        boxes, scores, labels = nms_one(pred[i], conf, iou, max_det, classes)
        b = t.to_original(boxes.cpu().numpy().astype(np.float32))
        out.append(
            (
                b.astype(np.float32),
                scores.cpu().numpy().astype(np.float32),
                labels.cpu().numpy().astype(np.int64),
            )
        )
    return out
