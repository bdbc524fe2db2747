"""Detection metrics in NumPy: VOC-style matching with ignore regions, average precision, P/R at a threshold.

The PASCAL VOC protocol (``VOCdevkit``'s ``voc_eval``): detections of all frames sorted by score; each is
matched to the ground-truth box of its frame it overlaps most; IoU above the threshold with a scored box not yet
taken is a true positive, with one already taken a false positive, with an ignore box ("difficult" in VOC;
MOTChallenge rows that are not scored) neither (the detection is dropped); below the threshold a false
positive. Ignore boxes do not count in the number of positives. AP is the area under the precision envelope at
every recall point (VOC 2010+), or the 11-point mean (VOC 2007) on request.

Boxes are ``[N,4]`` float ``xyxy`` pixels. COCO-style figures (pycocotools) live in
:mod:`tracker_core.evaluation.det_eval`; this module is what training reads every epoch (no extra dependency).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from tracker_core.errors import InvalidInputError

IOU_THRESHOLDS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))


@dataclass(frozen=True)
class FrameTruth:
    """Ground truth of one frame: ``boxes`` ``[N,4]`` scored objects, ``ignore`` ``[M,4]`` regions not scored
    (of any class), ``classes`` ``[N]`` (None: one class)."""

    boxes: NDArray[np.float32]
    ignore: NDArray[np.float32]
    classes: NDArray[np.int64] | None = None


@dataclass(frozen=True)
class FrameDets:
    """Detections of one frame: ``boxes`` ``[K,4]`` xyxy, ``scores`` ``[K]``, ``classes`` ``[K]`` (None: one
    class)."""

    boxes: NDArray[np.float32]
    scores: NDArray[np.float32]
    classes: NDArray[np.int64] | None = None


def box_iou(a: NDArray[np.floating], b: NDArray[np.floating]) -> NDArray[np.float64]:
    """``[N,4]`` x ``[M,4]`` xyxy -> ``[N,M]`` IoU (0 where a box has no area)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


@dataclass(frozen=True)
class Matched:
    """Every kept detection of a set of frames, best score first: ``scores``, ``tp`` ``[T, K]`` (one row per IoU
    threshold), ``npos`` scored ground-truth boxes. Detections on ignore regions are already dropped, per
    threshold (``kept`` ``[T, K]``)."""

    scores: NDArray[np.float64]
    tp: NDArray[np.bool_]
    kept: NDArray[np.bool_]
    npos: int
    thresholds: tuple[float, ...]


def match(
    dets: Sequence[FrameDets],
    truth: Sequence[FrameTruth],
    thresholds: Sequence[float] = (0.5,),
    strict: bool = True,
) -> Matched:
    """VOC matching of ``dets`` against ``truth`` (same frames, same order) at every IoU threshold.

    ``strict``: a match needs IoU ``>`` the threshold (VOC); else ``>=`` (COCO)."""
    if len(dets) != len(truth):
        raise InvalidInputError(f"{len(dets)} frames of detections but {len(truth)} of ground truth")
    th = tuple(float(t) for t in thresholds)
    frame_of, det_idx, all_scores = [], [], []
    for f, d in enumerate(dets):
        s = np.asarray(d.scores, np.float64).reshape(-1)
        if len(s) != len(np.asarray(d.boxes).reshape(-1, 4)):
            raise InvalidInputError(f"frame {f}: {len(s)} scores for {len(d.boxes)} boxes")
        frame_of.append(np.full(len(s), f))
        det_idx.append(np.arange(len(s)))
        all_scores.append(s)
    scores = np.concatenate(all_scores) if all_scores else np.zeros(0)
    frames = np.concatenate(frame_of).astype(np.int64) if frame_of else np.zeros(0, np.int64)
    idx = np.concatenate(det_idx).astype(np.int64) if det_idx else np.zeros(0, np.int64)
    order = np.argsort(-scores, kind="stable")
    scores, frames, idx = scores[order], frames[order], idx[order]
    # per frame: IoU of its detections with its boxes (scored first, then ignore regions)
    ious: list[NDArray[np.float64]] = []
    n_scored: list[int] = []
    for d, t in zip(dets, truth, strict=True):
        gt = np.concatenate(
            [np.asarray(t.boxes, np.float64).reshape(-1, 4), np.asarray(t.ignore, np.float64).reshape(-1, 4)]
        )
        ious.append(box_iou(np.asarray(d.boxes).reshape(-1, 4), gt))
        n_scored.append(len(np.asarray(t.boxes).reshape(-1, 4)))
    npos = int(sum(n_scored))
    tp = np.zeros((len(th), len(scores)), bool)
    kept = np.ones((len(th), len(scores)), bool)
    for k, thr in enumerate(th):
        taken = [np.zeros(n, bool) for n in n_scored]
        for r in range(len(scores)):
            f, j = int(frames[r]), int(idx[r])
            row = ious[f][j] if ious[f].shape[1] else np.zeros(0)
            if not len(row):
                continue
            best = int(np.argmax(row))
            ok = row[best] > thr if strict else row[best] >= thr
            if not ok:
                continue
            if best >= n_scored[f]:
                kept[k, r] = False  # on an ignore region: neither true nor false positive
            elif not taken[f][best]:
                taken[f][best] = True
                tp[k, r] = True
    return Matched(scores=scores, tp=tp, kept=kept, npos=npos, thresholds=th)


def average_precision(tp: NDArray[np.bool_], npos: int, method: str = "all") -> float:
    """AP of detections already sorted by score (``tp`` flags). ``method``: ``"all"`` (area under the precision
    envelope, VOC 2010+) or ``"11"`` (11-point mean, VOC 2007). 0 when there are no positives."""
    if npos <= 0:
        return 0.0
    tp = np.asarray(tp, bool)
    ctp = np.cumsum(tp)
    cfp = np.cumsum(~tp)
    rec = ctp / npos
    prec = ctp / np.maximum(ctp + cfp, np.finfo(np.float64).eps)
    if method == "11":
        return float(
            np.mean([prec[rec >= t].max() if (rec >= t).any() else 0.0 for t in np.linspace(0, 1, 11)])
        )
    if method != "all":
        raise InvalidInputError(f"AP method must be 'all' or '11', got {method!r}")
    mrec = np.concatenate([[0.0], rec, [1.0]])
    mpre = np.concatenate([[0.0], prec, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    i = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


@dataclass(frozen=True)
class DetScores:
    """VOC-style summary: ``ap50``, ``ap50_95`` (mean over IoU 0.50:0.05:0.95), ``ap50_11pt``, and at the
    operating threshold ``conf``: ``precision``, ``recall``, ``tp``, ``fp``, ``npos``."""

    ap50: float
    ap50_95: float
    ap50_11pt: float
    conf: float
    precision: float
    recall: float
    tp: int
    fp: int
    npos: int

    def to_dict(self) -> dict[str, float | int]:
        return dict(self.__dict__)

    @property
    def fitness(self) -> float:
        """The official YOLOv7 model-selection score, ``0.1 AP50 + 0.9 AP50:95``."""
        return 0.1 * self.ap50 + 0.9 * self.ap50_95


def voc_scores(dets: Sequence[FrameDets], truth: Sequence[FrameTruth], conf: float = 0.25) -> DetScores:
    """AP50 (VOC, IoU > 0.5), AP50:95 and precision / recall of the detections scoring ``>= conf``."""
    m = match(dets, truth, IOU_THRESHOLDS)
    aps = []
    for k in range(len(m.thresholds)):
        aps.append(average_precision(m.tp[k][m.kept[k]], m.npos))
    k50 = 0
    tp50 = m.tp[k50][m.kept[k50]]
    sc50 = m.scores[m.kept[k50]]
    above = sc50 >= conf
    ntp, nfp = int(tp50[above].sum()), int((~tp50[above]).sum())
    return DetScores(
        ap50=aps[0],
        ap50_95=float(np.mean(aps)),
        ap50_11pt=average_precision(tp50, m.npos, "11"),
        conf=float(conf),
        precision=ntp / max(1, ntp + nfp),
        recall=ntp / max(1, m.npos),
        tp=ntp,
        fp=nfp,
        npos=m.npos,
    )


def _of_class(items: Sequence[FrameDets] | Sequence[FrameTruth], c: int) -> list:
    out: list = []
    for it in items:
        cls = it.classes
        keep = np.ones(len(it.boxes), bool) if cls is None else np.asarray(cls) == c
        if isinstance(it, FrameTruth):
            out.append(FrameTruth(np.asarray(it.boxes)[keep], it.ignore))
        else:
            out.append(FrameDets(np.asarray(it.boxes)[keep], np.asarray(it.scores)[keep]))
    return out


def voc_scores_by_class(
    dets: Sequence[FrameDets], truth: Sequence[FrameTruth], conf: float = 0.25
) -> DetScores:
    """:func:`voc_scores` per class present in the ground truth: APs averaged over classes (the mAP), true and
    false positives summed. Without class labels (one class) the same as :func:`voc_scores`."""
    labelled = [t.classes for t in truth if t.classes is not None and len(t.classes)]
    classes = sorted(set(np.concatenate(labelled).tolist())) if labelled else []
    if len(classes) <= 1 and all(
        d.classes is None or len(set(np.asarray(d.classes).tolist())) <= 1 for d in dets
    ):
        return voc_scores(dets, truth, conf)
    per = [voc_scores(_of_class(dets, c), _of_class(truth, c), conf) for c in classes]
    ntp, nfp, npos = sum(p.tp for p in per), sum(p.fp for p in per), sum(p.npos for p in per)
    return DetScores(
        ap50=float(np.mean([p.ap50 for p in per])),
        ap50_95=float(np.mean([p.ap50_95 for p in per])),
        ap50_11pt=float(np.mean([p.ap50_11pt for p in per])),
        conf=float(conf),
        precision=ntp / max(1, ntp + nfp),
        recall=ntp / max(1, npos),
        tp=ntp,
        fp=nfp,
        npos=npos,
    )
