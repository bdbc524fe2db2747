"""Association costs as pure functions ``(tracks, detections) -> [T,N] matrix``. Inputs are never mutated.

Boxes are ``xyxy`` float pixels. Costs are in ``[0, 1]`` (``inf`` = forbidden pair).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]


def iou_matrix(a: NDArray[np.floating], b: NDArray[np.floating]) -> F64:
    """Pairwise IoU ``[T,N]`` of boxes ``a [T,4]`` and ``b [N,4]`` (xyxy). Empty sides give empty matrices."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    if a.shape[0] == 0 or b.shape[0] == 0:
        return np.zeros((a.shape[0], b.shape[0]))
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.maximum(rb - lt, 0.0)
    inter = wh[..., 0] * wh[..., 1]
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def _centre_boxes(tracks: NDArray[np.floating], dets: NDArray[np.floating]) -> tuple[F64, F64]:
    return (
        np.asarray(tracks, dtype=np.float64).reshape(-1, 4),
        np.asarray(dets, dtype=np.float64).reshape(-1, 4),
    )


def axis_overlap(t: F64, d: F64, axis: int, shrink: F64) -> F64:
    """Overlap ``[T,N]`` along one axis (0: x, 1: y) of centre-form boxes ``t [T,4]``, ``d [N,4]`` whose centre
    offsets are scaled by ``shrink`` (scalar or ``[T]``, see :func:`buffered_iou_cxcywh`). One contiguous
    ``[T,N]`` buffer, operated on in place: the busy-scene cost of every IoU the tracker computes."""
    tc, dc = t[:, axis, None], d[None, :, axis]
    tw, dw = t[:, axis + 2, None], d[None, :, axis + 2]
    ov = np.subtract(tc, dc)
    np.abs(ov, out=ov)
    if shrink.ndim:
        ov *= shrink[:, None]
    elif shrink != 1.0:
        ov *= shrink
    half_sum = np.add(tw, dw)
    half_sum *= 0.5
    np.subtract(half_sum, ov, out=ov)
    np.maximum(ov, 0.0, out=ov)
    np.minimum(ov, np.minimum(tw, dw), out=ov)
    return ov


def _shrink(buffer: NDArray[np.floating] | float) -> F64:
    return np.asarray(1.0 / (1.0 + np.asarray(buffer, dtype=np.float64)))


def _iou_from_overlaps(t: F64, d: F64, ox: F64, oy: F64) -> F64:
    inter = np.multiply(ox, oy)
    union = (t[:, 2] * t[:, 3])[:, None] + (d[:, 2] * d[:, 3])[None, :]
    union -= inter
    np.maximum(union, 1e-12, out=union)
    return np.divide(inter, union, out=inter)


def _height_iou_from_overlap(t: F64, d: F64, oy: F64) -> F64:
    union = t[:, 3, None] + d[None, :, 3]
    union -= oy
    np.maximum(union, 1e-12, out=union)
    return np.divide(oy, union, out=union)


def buffered_iou_cxcywh(
    tracks: NDArray[np.floating], dets: NDArray[np.floating], buffer: NDArray[np.floating] | float = 0.0
) -> F64:
    """Pairwise (buffered) IoU ``[T,N]`` of boxes in centre form ``(cx, cy, w, h)``: ``tracks [T,4]``, ``dets [N,4]``.

    With ``buffer`` (scalar or ``[T]``) both boxes of a pair are enlarged about their centres by that fraction of
    their size (the track's buffer), i.e. the IoU of ``expand_boxes(track, b)`` and ``expand_boxes(det, b)``.
    Scaling both boxes by ``1 + b`` scales every area alike, so that equals the plain IoU with the centre offset
    shrunk by ``1 / (1 + b)``, which is what is computed (no box is built).
    """
    t, d = _centre_boxes(tracks, dets)
    if t.shape[0] == 0 or d.shape[0] == 0:
        return np.zeros((t.shape[0], d.shape[0]))
    shrink = _shrink(buffer)
    return _iou_from_overlaps(t, d, axis_overlap(t, d, 0, shrink), axis_overlap(t, d, 1, shrink))


def height_modulated_iou_cxcywh(
    tracks: NDArray[np.floating], dets: NDArray[np.floating], buffer: NDArray[np.floating] | float = 0.0
) -> F64:
    """``buffered_iou_cxcywh(...) * height_iou_cxcywh(...)`` (the same values), sharing the vertical overlap."""
    t, d = _centre_boxes(tracks, dets)
    if t.shape[0] == 0 or d.shape[0] == 0:
        return np.zeros((t.shape[0], d.shape[0]))
    shrink = _shrink(buffer)
    oy = axis_overlap(t, d, 1, shrink)
    iou = _iou_from_overlaps(t, d, axis_overlap(t, d, 0, shrink), oy)
    iou *= _height_iou_from_overlap(t, d, oy)
    return iou


def expand_boxes(boxes: NDArray[np.floating], ratio: NDArray[np.floating] | float) -> F64:
    """Boxes ``[T,4]`` enlarged about their centre by ``ratio`` (per box or scalar) of their width/height."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    r = np.broadcast_to(np.asarray(ratio, dtype=np.float64), (b.shape[0],))[:, None]
    half = (b[:, 2:] - b[:, :2]) * 0.5 * r
    return np.concatenate([b[:, :2] - half, b[:, 2:] + half], axis=1)


def _cxcywh(boxes: NDArray[np.floating]) -> F64:
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([(b[:, :2] + b[:, 2:]) * 0.5, b[:, 2:] - b[:, :2]], axis=1)


def iou_distance(
    track_boxes: NDArray[np.floating],
    det_boxes: NDArray[np.floating],
    buffer: NDArray[np.floating] | float = 0.0,
) -> F64:
    """``1 - IoU`` ``[T,N]`` of xyxy boxes; with ``buffer`` > 0 (scalar or ``[T]``) the buffered IoU."""
    if not np.any(np.asarray(buffer) > 0):
        return 1.0 - iou_matrix(track_boxes, det_boxes)
    return 1.0 - buffered_iou_cxcywh(_cxcywh(track_boxes), _cxcywh(det_boxes), buffer)


def gate(cost: NDArray[np.floating], forbidden: NDArray[np.bool_]) -> F64:
    """A copy of ``cost`` with ``inf`` where ``forbidden`` ``[T,N]`` is true."""
    out = np.array(cost, dtype=np.float64, copy=True)
    out[forbidden] = np.inf
    return out


def mahalanobis_gate(maha_sq: NDArray[np.floating], threshold: float) -> NDArray[np.bool_]:
    """Forbidden mask ``[T,N]``: squared Mahalanobis distance above ``threshold`` (``threshold <= 0``: none)."""
    m = np.asarray(maha_sq)
    if threshold <= 0:
        return np.zeros(m.shape, dtype=bool)
    return m > threshold


def class_gate(track_classes: NDArray[np.integer], det_classes: NDArray[np.integer]) -> NDArray[np.bool_]:
    """Forbidden mask ``[T,N]``: track and detection classes differ."""
    return np.asarray(track_classes)[:, None] != np.asarray(det_classes)[None, :]


def normalize(emb: NDArray[np.floating]) -> NDArray[np.float32]:
    """Row-wise L2 normalisation (zero rows stay zero)."""
    e = np.asarray(emb, dtype=np.float32)
    n = np.linalg.norm(e, axis=-1, keepdims=True)
    return e / np.maximum(n, 1e-12)


def cosine_distance(
    track_emb: NDArray[np.floating],
    det_emb: NDArray[np.floating],
    bank: NDArray[np.floating] | None = None,
    bank_valid: NDArray[np.bool_] | None = None,
) -> F64:
    """Cosine distance ``[T,N]`` in ``[0, 1]`` (``(1 - cos) / 2``) of detections to each track's memory.

    ``track_emb [T,D]`` is each track's (EMA) embedding, ``det_emb [N,D]``; both are expected L2-normalised.
    With a ``bank [T,K,D]`` of recent embeddings (``bank_valid [T,K]``), the distance is the minimum over the
    EMA and the valid bank entries.
    """
    te = np.asarray(track_emb, dtype=np.float32)
    de = np.asarray(det_emb, dtype=np.float32)
    t, n = te.shape[0], de.shape[0]
    if t == 0 or n == 0:
        return np.zeros((t, n))
    sim = te @ de.T
    if bank is not None and bank.shape[1] > 0:
        b = np.asarray(bank, dtype=np.float32)
        bsim = (b.reshape(-1, b.shape[2]) @ de.T).reshape(b.shape[0], b.shape[1], n)  # BLAS, not einsum
        if bank_valid is not None:
            bsim = np.where(np.asarray(bank_valid)[:, :, None], bsim, -np.inf)
        sim = np.maximum(sim, bsim.max(axis=1))
    return np.clip((1.0 - sim.astype(np.float64)) * 0.5, 0.0, 1.0)


def paired_cosine_distance(a: NDArray[np.floating], b: NDArray[np.floating]) -> F64:
    """Cosine distance ``[M]`` in ``[0, 1]`` (``(1 - cos) / 2``) of each row of ``a [M,D]`` to the same row of
    ``b [M,D]`` (both L2-normalised): the diagonal of :func:`cosine_distance` without the ``[M,M]`` matrix."""
    return np.clip((1.0 - np.sum(a * b, axis=1, dtype=np.float64)) * 0.5, 0.0, 1.0)


def appearance_margin(
    app_dist: NDArray[np.floating], motion_cost: NDArray[np.floating], confident: float
) -> float | None:
    """How well appearance separates objects this frame, judged on pairs motion is sure about.

    Confident pairs are mutual best motion matches with ``motion_cost <= confident``. The margin is the mean
    appearance distance from those tracks to the *other* detections minus the mean distance to their confident
    match: about 0 for constant or random (uninformative) embeddings, large for embeddings that tell objects
    apart. ``app_dist`` may hold NaN for tracks without an embedding memory. ``None`` when nothing can be judged
    (no confident pair, or no other detection to compare with).
    """
    a = np.asarray(app_dist, dtype=np.float64)
    m = np.asarray(motion_cost, dtype=np.float64)
    t, n = m.shape
    if t == 0 or n < 2:
        return None
    best_det = m.argmin(axis=1)
    best_track = m.argmin(axis=0)
    rows = np.arange(t)
    pos = a[rows, best_det]
    ok = (best_track[best_det] == rows) & (m[rows, best_det] <= confident) & np.isfinite(pos)
    if not ok.any():
        return None
    others = a[ok].copy()
    others[np.arange(others.shape[0]), best_det[ok]] = np.nan
    neg = others[np.isfinite(others)]
    if neg.size == 0:
        return None
    return float(neg.mean() - pos[ok].mean())


def appearance_weight(margin: float, max_weight: float, margin_ref: float, min_margin: float = 0.0) -> float:
    """Weight of appearance in the fused cost: 0 up to ``min_margin`` (uninformative embeddings: motion alone,
    exactly), then rising linearly to ``max_weight`` at ``margin_ref``."""
    if max_weight <= 0 or margin <= min_margin:
        return 0.0
    if margin_ref <= min_margin:
        return float(max_weight)
    return float(max_weight * min(1.0, (margin - min_margin) / (margin_ref - min_margin)))


def reliability(disagreement: float, max_disagreement: float) -> float:
    """Factor in [0, 1] on the appearance weight: 1 when embeddings never mislead on the matches motion is sure
    about, falling linearly to 0 at ``max_disagreement`` (a smoothed rate of bad evidence, e.g. the misleading
    rate of ``misleading_counts``): embeddings that are often wrong leave motion alone. ``max_disagreement <=
    0``: always 1."""
    if max_disagreement <= 0:
        return 1.0
    return float(min(1.0, max(0.0, 1.0 - disagreement / max_disagreement)))


def fused_gated(
    motion: NDArray[np.floating],
    appearance: NDArray[np.floating],
    weight: float,
    max_motion: float,
    forbidden: NDArray[np.bool_] | None = None,
) -> F64:
    """Appearance re-ranking among motion-plausible pairs: ``(1 - w) * motion + w * appearance`` where
    ``motion <= max_motion`` (and not ``forbidden``), ``inf`` elsewhere.

    Motion alone decides which pairs are possible; appearance only changes which of them wins, so it can never
    link what motion rules out. NaN appearance (a track without memory) falls back to the motion cost.
    """
    m = np.asarray(motion, dtype=np.float64)
    a = np.asarray(appearance, dtype=np.float64)
    a = np.where(np.isnan(a), m, a)
    out = (1.0 - weight) * m + weight * a if weight > 0 else m.copy()
    bad = ~(m <= max_motion)
    if forbidden is not None:
        bad |= np.asarray(forbidden, dtype=bool)
    out[bad] = np.inf
    return out


def sure_pairs(motion: NDArray[np.floating], confident: float) -> NDArray[np.bool_]:
    """Mask ``[T,N]`` of the pairs motion is sure about: mutual best matches with ``motion <= confident``."""
    m = np.asarray(motion, dtype=np.float64)
    out = np.zeros(m.shape, dtype=bool)
    if m.size == 0:
        return out
    best_det = m.argmin(axis=1)
    best_track = m.argmin(axis=0)
    rows = np.arange(m.shape[0])
    ok = (best_track[best_det] == rows) & (m[rows, best_det] <= confident)
    out[rows[ok], best_det[ok]] = True
    return out


def appearance_veto(
    appearance: NDArray[np.floating],
    motion: NDArray[np.floating],
    sure_motion: float,
    max_motion: float,
    max_dist: float,
) -> NDArray[np.bool_]:
    """Forbidden mask ``[T,N]``: pairs whose appearance distance exceeds ``max_dist``, except pairs motion is sure
    about (``motion <= sure_motion`` and no other pair within ``max_motion`` competes for that track or that
    detection): a sure motion match is never vetoed, whatever its embedding says. NaN appearance never vetoes."""
    a = np.asarray(appearance, dtype=np.float64)
    m = np.asarray(motion, dtype=np.float64)
    plausible = m <= max_motion
    lone = (plausible.sum(axis=1, keepdims=True) == 1) & (plausible.sum(axis=0, keepdims=True) == 1)
    sure = (m <= sure_motion) & lone
    return ~sure & (np.nan_to_num(a, nan=0.0) > max_dist)


def rival_agrees(appearance: NDArray[np.floating], gate: float) -> NDArray[np.bool_]:
    """``[T,N]``: for each pair, whether a *rival* agrees in appearance (distance <= ``gate``): another track with
    the pair's detection, or another detection with the pair's track. NaN agrees with nothing."""
    a = np.nan_to_num(np.asarray(appearance, dtype=np.float64), nan=np.inf) <= gate
    by_det = a.sum(axis=0, keepdims=True) - a  # other tracks that agree with each detection
    by_track = a.sum(axis=1, keepdims=True) - a  # other detections that agree with each track
    return (by_det > 0) | (by_track > 0)


class SureMatchEvidence(NamedTuple):
    """What the appearance distances say about the pairs motion is sure about (``sure_pairs``), in counts.

    ``disagree`` of ``sure``: sure pairs with an appearance distance, and those beyond the gate (an appearance
    veto would cut them). ``confused`` of ``confusion_judged``: of the sure pairs that agree and have a rival, those
    a rival looks more alike than the partner. ``misleading`` of ``misleading_judged``: of the sure pairs with a
    rival, those that disagree with the partner *and* agree with a rival."""

    disagree: int
    sure: int
    confused: int
    confusion_judged: int
    misleading: int
    misleading_judged: int


def sure_match_evidence(
    appearance: NDArray[np.floating], motion: NDArray[np.floating], confident: float, max_dist: float
) -> SureMatchEvidence:
    """Every per-frame appearance statistic of the tracker in one pass over the sure pairs: see
    ``SureMatchEvidence``, ``veto_error_rate``, ``confusion_counts`` and ``misleading_counts``. A rival is a finite
    distance to another detection of the pair's track or to another track of the pair's detection."""
    a = np.asarray(appearance, dtype=np.float64)
    pairs = sure_pairs(motion, confident) & np.isfinite(a)
    t_idx, n_idx = pairs.nonzero()
    own = a[t_idx, n_idx]
    row = a[t_idx].copy()  # other detections for the pair's track
    row[np.arange(t_idx.size), n_idx] = np.nan
    col = a[:, n_idx].T.copy()  # other tracks for the pair's detection
    col[np.arange(n_idx.size), t_idx] = np.nan
    rivals = np.concatenate([row, col], axis=1)
    closest = np.min(np.where(np.isfinite(rivals), rivals, np.inf), axis=1, initial=np.inf)
    has_rival = np.isfinite(closest)
    far = own > max_dist
    agreeing = has_rival & ~far
    return SureMatchEvidence(
        disagree=int(far.sum()),
        sure=int(own.size),
        confused=int((agreeing & (closest < own)).sum()),
        confusion_judged=int(agreeing.sum()),
        misleading=int((has_rival & far & (closest <= max_dist)).sum()),
        misleading_judged=int(has_rival.sum()),
    )


CALIBRATION_BINS = 200
"""Bins of the per-stream distance histograms (``distance_histogram``) over the cosine distance's range [0, 1]."""


def sure_pair_distances(
    appearance: NDArray[np.floating], motion: NDArray[np.floating], confident: float
) -> tuple[F64, F64]:
    """What a stream's embeddings measure between objects motion has told apart, ``(own [P], rivals [Q])``.

    ``own``: the appearance distance of each pair motion is sure about (``sure_pairs``: the same object, a moment
    apart); ``rivals``: every finite distance from such a pair's track to the other detections and from its
    detection to the other tracks (other objects, now). Their two distributions are the stream's scale of "same"
    and "different": ``distance_scale`` and ``separation`` are read from them, whatever the embedding's own
    range (a ReID model's people sit 0.2 apart where orthogonal identity vectors sit 0.5 apart)."""
    a = np.asarray(appearance, dtype=np.float64)
    pairs = sure_pairs(motion, confident) & np.isfinite(a)
    t_idx, n_idx = pairs.nonzero()
    if t_idx.size == 0:
        return np.zeros(0), np.zeros(0)
    own = a[t_idx, n_idx]
    row = a[t_idx].copy()
    row[np.arange(t_idx.size), n_idx] = np.nan
    col = a[:, n_idx].T.copy()
    col[np.arange(n_idx.size), t_idx] = np.nan
    rivals = np.concatenate([row.ravel(), col.ravel()])
    return own, rivals[np.isfinite(rivals)]


def distance_histogram(hist: NDArray[np.floating], values: NDArray[np.floating], decay: float) -> F64:
    """``decay * hist`` plus the counts of ``values`` (cosine distances in [0, 1]) in ``CALIBRATION_BINS`` equal bins:
    a discounted histogram (a new array; ``hist`` is not modified)."""
    v = np.clip(np.asarray(values, dtype=np.float64).ravel(), 0.0, 1.0)
    idx = np.minimum((v * CALIBRATION_BINS).astype(np.int64), CALIBRATION_BINS - 1)
    return decay * np.asarray(hist, dtype=np.float64) + np.bincount(idx, minlength=CALIBRATION_BINS)


def histogram_quantile(hist: NDArray[np.floating], q: float) -> float:
    """The ``q`` quantile of a ``distance_histogram`` (linear within a bin); NaN for an empty histogram."""
    h = np.asarray(hist, dtype=np.float64)
    total = float(h.sum())
    if total <= 0:
        return float("nan")
    cum = np.cumsum(h)
    target = q * total
    i = int(np.searchsorted(cum, target, side="left"))
    i = min(i, h.size - 1)
    before = cum[i] - h[i]
    frac = (target - before) / h[i] if h[i] > 0 else 0.5
    return float((i + min(max(frac, 0.0), 1.0)) / h.size)


def separation(own_hist: NDArray[np.floating], rival_hist: NDArray[np.floating], z: float) -> float:
    """How well a stream's embeddings rank objects, in ``[-1, 1]``, from its ``distance_histogram`` of sure-match
    distances (``own_hist``) and of rival distances (``rival_hist``).

    ``2 * AUC - 1``, where AUC is the probability that a rival lies farther than a sure match (ties count half):
    a rank statistic, so the same for any monotone rescaling of the distances (a ReID model's narrow range or the
    oracle's wide one). Random embeddings give ~0, constant ones exactly 0 (every distance ties), embeddings that
    always rank the sure match first 1. What is returned is a lower confidence bound: the value minus ``z``
    standard errors of it under chance (``2 / sqrt(12 n)`` for ``n`` (discounted) sure matches, Hanley and
    McNeil's AUC variance with many more rivals than matches), so a few lucky frames prove nothing."""
    p = np.asarray(own_hist, dtype=np.float64)
    r = np.asarray(rival_hist, dtype=np.float64)
    n_p, n_r = float(p.sum()), float(r.sum())
    if n_p <= 0 or n_r <= 0:
        return 0.0
    farther = n_r - np.cumsum(r)  # rivals in higher bins than each bin
    auc = float(np.sum(p * (farther + 0.5 * r))) / (n_p * n_r)
    return 2.0 * auc - 1.0 - z * 2.0 / np.sqrt(12.0 * n_p)


class DistanceScale(NamedTuple):
    """A stream's typical appearance distance of the same object (``same``) and of two different ones
    (``other``), read from its sure matches (``distance_histogram`` medians). The default is the scale of ideal
    embeddings (identical vectors 0, unrelated unit vectors 0.5), on which ``calibrate`` is the identity."""

    same: float = 0.0
    other: float = 0.5


def distance_scale(own_hist: NDArray[np.floating], rival_hist: NDArray[np.floating]) -> DistanceScale:
    """The medians of a stream's sure-match and rival distance histograms (the default scale while either is
    empty, or where they do not separate: ``other <= same``)."""
    same = histogram_quantile(own_hist, 0.5)
    other = histogram_quantile(rival_hist, 0.5)
    if not (np.isfinite(same) and np.isfinite(other)) or other <= same:
        return DistanceScale()
    return DistanceScale(same, other)


def calibrate(distance: NDArray[np.floating], scale: DistanceScale) -> F64:
    """Cosine distances ``[...]`` on the scale of ideal embeddings: ``0.5 * (d - same) / (other - same)``, clipped to
    [0, 1], so that the stream's typical same-object distance becomes 0 and its typical distance between two
    objects 0.5 (where unrelated unit vectors sit). Every appearance threshold of the tracker is read on this
    scale, so it means the same for a ReID model whose people sit 0.2 apart and for the oracle's 0.5. NaN and
    inf stay; the default ``DistanceScale()`` leaves finite distances in [0, 1] unchanged."""
    d = np.asarray(distance, dtype=np.float64)
    if scale == DistanceScale():
        return d.copy()
    spread = max(scale.other - scale.same, 1e-6)
    out = np.clip(0.5 * (d - scale.same) / spread, 0.0, 1.0)
    return np.where(np.isfinite(d), out, d)


def false_match_rate(rival_hist: NDArray[np.floating], distance: NDArray[np.floating]) -> F64:
    """``[...]``: for each cosine distance, the share of a stream's rival distances (``distance_histogram`` of
    ``sure_pair_distances``' rivals: two different objects seen at once) at or below it (linear within a bin); 1 for
    an empty histogram. How often two *different* objects on this stream look at least that alike: small for any
    distance under a good model's "different" range, large in a look-alike world (a colour histogram on people in
    dark clothes), whatever the embedding's scale."""
    h = np.asarray(rival_hist, dtype=np.float64)
    d = np.asarray(distance, dtype=np.float64)
    total = float(h.sum())
    if total <= 0:
        return np.ones(d.shape)
    cdf = np.concatenate([[0.0], np.cumsum(h) / total])  # at bin edges 0, 1/B, ..., 1
    x = np.clip(np.where(np.isfinite(d), d, 1.0), 0.0, 1.0) * h.size
    i = np.minimum(np.floor(x).astype(np.int64), h.size - 1)
    return cdf[i] + (x - i) * (cdf[i + 1] - cdf[i])


def left_view(
    last_boxes: NDArray[np.floating],
    velocity: NDArray[np.floating],
    extent: NDArray[np.floating],
    margin: float,
    min_speed: float = 0.1,
) -> NDArray[np.bool_]:
    """``[T]``: whether each object walked out of the field of view, judged from where it was last seen.

    ``last_boxes [T,4]`` xyxy; ``velocity [T,2]`` pixels per second (its Kalman velocity of the centre); ``extent
    [4]`` the smallest box (xyxy) holding every box the stream has seen: the field of view as far as the detections
    show it. An object left the view when its last box is within ``margin`` of its width of a side of the extent and
    it was moving out through that side (at least ``min_speed`` of its width per second). Such an object is gone,
    not occluded, and a new object coming in there is most often someone else."""
    b = np.asarray(last_boxes, dtype=np.float64).reshape(-1, 4)
    v = np.asarray(velocity, dtype=np.float64).reshape(-1, 2)
    e = np.asarray(extent, dtype=np.float64).reshape(4)
    if b.shape[0] == 0 or not np.isfinite(e).all():
        return np.zeros(b.shape[0], dtype=bool)
    w = np.maximum(b[:, 2] - b[:, 0], 1e-6)
    near = margin * w
    fast = min_speed * w
    return (
        ((b[:, 0] - e[0] <= near) & (v[:, 0] <= -fast))
        | ((e[2] - b[:, 2] <= near) & (v[:, 0] >= fast))
        | ((b[:, 1] - e[1] <= near) & (v[:, 1] <= -fast))
        | ((e[3] - b[:, 3] <= near) & (v[:, 1] >= fast))
    )


def veto_error_rate(
    appearance: NDArray[np.floating], motion: NDArray[np.floating], confident: float, max_dist: float
) -> float | None:
    """Fraction of the pairs motion is sure about (``sure_pairs``) that an appearance veto at ``max_dist`` would
    have forbidden: how often the veto would cut a true match on this stream. ``None`` when nothing can be
    judged (no sure pair with an appearance distance)."""
    ev = sure_match_evidence(appearance, motion, confident, max_dist)
    return ev.disagree / ev.sure if ev.sure else None


def confusion_counts(
    appearance: NDArray[np.floating], motion: NDArray[np.floating], confident: float, max_dist: float
) -> tuple[int, int]:
    """``(confused, judged)``: how often appearance would pick the wrong partner. Judged are the pairs motion is
    sure about (``sure_pairs``) whose own appearance distance agrees (``<= max_dist``; disagreeing ones, e.g. false
    detections, are ``veto_error_rate``'s) and that have at least one rival (a finite distance to another
    detection or track); confused are those where a rival looks more alike than the sure partner (rank-1
    confusion). About none confused for embeddings that tell look-alikes apart, most for random ones, and many for
    embeddings that find every pedestrian in dark clothes alike even when each object's own observations agree
    (which ``veto_error_rate`` alone cannot see)."""
    ev = sure_match_evidence(appearance, motion, confident, max_dist)
    return ev.confused, ev.confusion_judged


def misleading_counts(
    appearance: NDArray[np.floating], motion: NDArray[np.floating], confident: float, max_dist: float
) -> tuple[int, int]:
    """``(misleading, judged)``: how often an embedding names *someone else* on a match motion is sure about.

    Judged are the pairs motion is sure about (``sure_pairs``) with a finite appearance distance and at least one
    rival (a finite distance to another detection of the track or another track of the detection); misleading
    are those whose own distance exceeds ``max_dist`` while a rival is within it: the embedding disagrees with
    its partner *and* agrees with another object, which is what pulls association onto the wrong person (a wrong
    identity naming a visible rival). A false-positive or loose box whose embedding resembles nobody, noise that
    leaves every distance large, and look-alikes that agree with their partner are not misleading: spread over
    all candidates alike, they cannot pull a match anywhere (``veto_error_rate`` counts the first two, so on
    detections with many loose boxes it judges even perfect embeddings unreliable)."""
    ev = sure_match_evidence(appearance, motion, confident, max_dist)
    return ev.misleading, ev.misleading_judged


def distinct_enough(
    cost: NDArray[np.floating], others: NDArray[np.floating], gap: float
) -> NDArray[np.bool_]:
    """Allowed mask ``[C,R]`` for re-identification: candidate ``c`` may take new track ``r`` only when its
    appearance distance ``cost[c, r]`` beats, by at least ``gap``, every rival: the other candidates
    (``cost[c', r]``) and the objects visible right now (``others[r]``: the new track's smallest distance to the
    memory of any live track). A look-alike world (everyone within a small distance of everyone) re-identifies
    nobody; perfect embeddings pass easily. ``cost`` may hold ``inf``; ``others`` is ``inf`` when nothing else is
    visible."""
    c = np.asarray(cost, dtype=np.float64)
    o = np.asarray(others, dtype=np.float64).reshape(-1)
    if c.size == 0:
        return np.zeros(c.shape, dtype=bool)
    if c.shape[0] > 1:
        part = np.sort(c, axis=0)
        first, second = part[0], part[1]
        rival = np.where(c <= first[None, :], second[None, :], first[None, :])  # best other candidate
    else:
        rival = np.full(c.shape, np.inf)
    rival = np.minimum(rival, o[None, :])
    return c <= rival - gap


def motion_plausible(
    last_boxes: NDArray[np.floating],
    last_seen: NDArray[np.floating],
    boxes: NDArray[np.floating],
    now: NDArray[np.floating] | float,
    max_speed: float,
    min_radius: float,
) -> NDArray[np.bool_]:
    """Allowed mask ``[T,N]``: could object ``t`` (last seen at ``last_boxes[t]`` xyxy, time ``last_seen[t]``)
    be at ``boxes[n]`` at time ``now`` (scalar or ``[N]``)?

    The centre may have moved at most ``min_radius + max_speed * elapsed_s`` box heights (the larger height of
    the pair): a walking speed bound for re-identification after a long absence.
    """
    a = np.asarray(last_boxes, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if a.shape[0] == 0 or b.shape[0] == 0:
        return np.zeros((a.shape[0], b.shape[0]), dtype=bool)
    ca = (a[:, :2] + a[:, 2:]) * 0.5
    cb = (b[:, :2] + b[:, 2:]) * 0.5
    dist = np.linalg.norm(ca[:, None, :] - cb[None, :, :], axis=2)
    h = np.maximum((a[:, 3] - a[:, 1])[:, None], (b[:, 3] - b[:, 1])[None, :])
    elapsed = np.maximum(
        np.asarray(now, dtype=np.float64)[None] - np.asarray(last_seen, dtype=np.float64)[:, None], 0.0
    )
    if elapsed.ndim == 1:
        elapsed = elapsed[:, None]
    return dist <= (min_radius + max_speed * elapsed) * h


def worst_cosine_distance(
    query_bank: NDArray[np.floating], query_valid: NDArray[np.bool_], memory: NDArray[np.floating]
) -> F64:
    """``[M,C]``: for each query (a track's recent embeddings ``query_bank [M,K,D]``, valid ``[M,K]``), the
    *largest* cosine distance of any of its valid observations to each memory ``memory [C,D]``: every
    observation must agree for a re-identification (one wrong embedding cannot re-identify alone). Queries
    with no valid observation get 1."""
    q = np.asarray(query_bank, dtype=np.float32)
    mem = np.asarray(memory, dtype=np.float32)
    m, c = q.shape[0], mem.shape[0]
    if m == 0 or c == 0 or q.shape[1] == 0:
        return np.ones((m, c))
    sim = (q.reshape(-1, q.shape[2]) @ mem.T).reshape(m, q.shape[1], c)
    sim = np.where(np.asarray(query_valid)[:, :, None], sim, np.inf)
    worst = sim.min(axis=1)
    worst = np.where(np.isfinite(worst), worst, -1.0)
    return np.clip((1.0 - worst.astype(np.float64)) * 0.5, 0.0, 1.0)


def fuse(motion: NDArray[np.floating], appearance: NDArray[np.floating] | None, weight: float) -> F64:
    """``(1 - w) * motion + w * appearance`` (``motion`` alone when ``appearance`` is None or ``w == 0``)."""
    m = np.asarray(motion, dtype=np.float64)
    if appearance is None or weight <= 0:
        return m.copy()
    return (1.0 - weight) * m + weight * np.asarray(appearance, dtype=np.float64)


def decisive_veto(
    appearance: NDArray[np.floating],
    plausible: NDArray[np.bool_],
    accept: float,
    gap: float,
    trusted: NDArray[np.bool_] | None = None,
    motion: NDArray[np.floating] | None = None,
    motion_gap: float = np.inf,
) -> NDArray[np.bool_]:
    """Forbidden mask ``[T,N]``: per-pair appearance decisions where motion finds several candidates plausible.

    Where a detection has two or more plausible tracks (or a track two or more plausible detections), and the
    closest of them in appearance is within ``accept`` cosine distance, every other plausible candidate farther
    than that best one by more than ``gap`` is forbidden: appearance settles a crossing only when it is
    *decisive*. A lone plausible pair is never touched (a sure motion match is never vetoed), and an embedding
    that agrees with nobody (a wrong or uninformative one, distance ~0.5) decides nothing. A row or column with a
    plausible NaN distance (a track without memory) decides nothing. With ``trusted [T]``, only trusted tracks
    decide: a detection's closest track, or a track choosing among its detections, must be trusted (e.g. a
    track whose memory has proven consistent). With ``motion [T,N]``, a candidate whose motion cost is lower than
    the decided pair's by more than ``motion_gap`` is never forbidden: appearance settles what motion leaves open,
    it does not overrule what motion clearly prefers (one wrong embedding naming a nearby rival would otherwise
    swap two people). ``accept <= 0`` disables it."""
    a = np.asarray(appearance, dtype=np.float64)
    p = np.asarray(plausible, dtype=bool)
    out = np.zeros(p.shape, dtype=bool)
    if accept <= 0 or p.size == 0:
        return out
    known = np.isfinite(a)
    d = np.where(p & known, a, np.inf)
    trust = np.ones((p.shape[0], 1), bool) if trusted is None else np.asarray(trusted, bool)[:, None]
    m = None if motion is None else np.asarray(motion, dtype=np.float64)
    for axis in (0, 1):  # 0: per detection (column) over its tracks; 1: per track (row) over its detections
        count = p.sum(axis=axis, keepdims=True)
        complete = (p & ~known).sum(axis=axis, keepdims=True) == 0
        best = d.min(axis=axis, keepdims=True)
        decider = d.argmin(axis=axis)
        ok = trust[decider, 0][None, :] if axis == 0 else trust
        decides = (count >= 2) & complete & (best <= accept) & ok
        veto = decides & p & (d > best + gap)
        if m is not None:
            decided = np.take_along_axis(m, np.expand_dims(decider, axis), axis=axis)
            veto &= ~(m < decided - motion_gap)
        out |= veto
    return out


def switch_veto(
    appearance: NDArray[np.floating],
    alt_distance: NDArray[np.floating],
    suspicious: NDArray[np.bool_],
    accept: float,
    reject: float,
) -> NDArray[np.bool_]:
    """Forbidden mask ``[T,N]``: a track that has just been fed another object (``suspicious [T]``: its last
    matched observations disagreed with its proven memory and agreed with each other) may not take a detection
    that is again far from its memory (``> reject``) and again like those observations (``alt_distance <=
    accept``): it lets go of the object it switched to, whatever motion says. A wrong embedding now and then
    (a different identity each time) never builds such a streak. NaN never vetoes."""
    a = np.nan_to_num(np.asarray(appearance, dtype=np.float64), nan=0.0)
    alt = np.nan_to_num(np.asarray(alt_distance, dtype=np.float64), nan=np.inf)
    return np.asarray(suspicious, bool)[:, None] & (a > reject) & (alt <= accept)


def height_iou_cxcywh(
    tracks: NDArray[np.floating], dets: NDArray[np.floating], buffer: NDArray[np.floating] | float = 0.0
) -> F64:
    """Pairwise overlap of the vertical extents ``[T,N]`` (intersection / union of ``[y1, y2]``) of boxes in centre
    form, with the same ``buffer`` as ``buffered_iou_cxcywh``. Multiplying the IoU by it gives Hybrid-SORT's
    height-modulated IoU: two people overlapping in the image but standing at different depths differ in where
    their feet and heads are, which plain IoU discounts."""
    t, d = _centre_boxes(tracks, dets)
    if t.shape[0] == 0 or d.shape[0] == 0:
        return np.zeros((t.shape[0], d.shape[0]))
    return _height_iou_from_overlap(t, d, axis_overlap(t, d, 1, _shrink(buffer)))


_CORNER_SIGNS = np.array([[-0.5, -0.5], [0.5, -0.5], [-0.5, 0.5], [0.5, 0.5]])


def box_corners(z: NDArray[np.floating]) -> F64:
    """``[...,4]`` (cx, cy, w, h) -> ``[...,4,2]`` corners (top-left, top-right, bottom-left, bottom-right)."""
    z = np.asarray(z, dtype=np.float64)
    return z[..., None, 0:2] + z[..., None, 2:4] * _CORNER_SIGNS


def direction_consistency(
    prev: NDArray[np.floating],
    last: NDArray[np.floating],
    valid: NDArray[np.bool_],
    dets: NDArray[np.floating],
) -> F64:
    """OC-SORT's velocity-direction consistency ``[T,N]`` in ``[-0.5, 0.5]``, averaged over box corners
    (Hybrid-SORT's robust variant).

    ``prev [T,4]`` / ``last [T,4]``: each track's earlier and latest observed box (cx, cy, w, h); ``dets [N,4]``.
    For every corner, the angle between the track's direction of motion (``prev -> last``) and the direction from
    ``prev`` to the detection: ``(pi/2 - angle) / pi``, so +0.5 for the same direction, -0.5 for the opposite one.
    Tracks that are not ``valid`` (no earlier observation) or did not move get 0.
    """
    t, n = np.asarray(prev).shape[0], np.asarray(dets).shape[0]
    ti, di = np.divmod(np.arange(t * n), max(n, 1))
    return direction_consistency_pairs(prev, last, valid, dets, ti, di).reshape(t, n)


def direction_consistency_pairs(
    prev: NDArray[np.floating],
    last: NDArray[np.floating],
    valid: NDArray[np.bool_],
    dets: NDArray[np.floating],
    ti: NDArray[np.integer],
    di: NDArray[np.integer],
) -> F64:
    """``direction_consistency`` for the pairs ``(ti[k], di[k])`` only: ``[K]`` (the tracker scores just the pairs
    motion allows, a few per track, instead of the whole matrix)."""
    if ti.size == 0:
        return np.zeros(0)
    p = box_corners(np.asarray(prev, dtype=np.float64)[ti])  # [K,4,2]
    v = box_corners(np.asarray(last, dtype=np.float64)[ti]) - p
    u = box_corners(np.asarray(dets, dtype=np.float64)[di]) - p
    vn = np.sqrt(np.einsum("kcx,kcx->kc", v, v))
    un = np.sqrt(np.einsum("kcx,kcx->kc", u, u))
    cos = np.einsum("kcx,kcx->kc", u, v) / np.maximum(vn * un, 1e-12)
    score = (np.pi / 2 - np.arccos(np.clip(cos, -1.0, 1.0))) / np.pi
    score = np.where((vn > 1e-6) & (un > 1e-6), score, 0.0).mean(axis=1)
    return np.where(np.asarray(valid, dtype=bool)[ti], score, 0.0)


class MotionCueWeights(NamedTuple):
    """Weights of the weak cues that re-rank the pairs motion allows (``motion_cues``); 0 switches one off."""

    stale: float = 0.0
    score: float = 0.0
    direction: float = 0.0


def motion_cues(
    w: MotionCueWeights,
    missed_s: NDArray[np.floating],
    track_score: NDArray[np.floating],
    prev_obs: NDArray[np.floating],
    last_obs: NDArray[np.floating],
    has_prev: NDArray[np.bool_],
    dets: NDArray[np.floating],
    det_score: NDArray[np.floating],
    ti: NDArray[np.integer],
    di: NDArray[np.integer],
) -> F64:
    """Additive cost ``[K]`` of the weak cues for the track/detection pairs ``(ti[k], di[k])``, added to their motion
    cost to rank the pairs motion allows.

    - stale: ``w.stale x missed_s`` (seconds the track has gone unmatched beyond one frame, capped at 1): among
      candidates for one detection, the track that was seen a moment ago keeps it (a soft matching cascade), so
      two tracks on overlapping people do not trade a detection back and forth;
    - score: ``w.score x |track score - detection score|`` (Hybrid-SORT's confidence cue: a person walking into
      occlusion loses confidence gradually, and its detection keeps matching the track whose score fell alike);
    - direction: ``-w.direction x detection score x direction_consistency`` (OC-SORT's velocity direction, on
      the four corners: a bonus for a detection that lies the way the track has been moving, a cost otherwise).

    (BoostTrack's shape cue, a relative width/height difference, was tried and changed nothing.) Per track:
    ``missed_s``, ``track_score``, ``prev_obs`` / ``last_obs [T,4]`` (observed boxes, cx, cy, w, h), ``has_prev``;
    per detection: ``dets [N,4]``, ``det_score`` (scores in [0, 1]).
    """
    out = np.zeros(ti.shape[0])
    if ti.size == 0:
        return out
    ds = np.asarray(det_score, dtype=np.float64)[di]
    if w.stale:
        out += w.stale * np.asarray(missed_s, dtype=np.float64)[ti]
    if w.score:
        out += w.score * np.abs(np.asarray(track_score, dtype=np.float64)[ti] - ds)
    if w.direction:
        out -= w.direction * ds * direction_consistency_pairs(prev_obs, last_obs, has_prev, dets, ti, di)
    return out


def blend_boxes(
    dets: NDArray[np.floating], filtered: NDArray[np.floating], blend: float, shape_scale: float = 0.0
) -> F64:
    """Output boxes ``[N,4]`` (cx, cy, w, h) between the matched detections and the tracks' filtered boxes:
    ``(1 - a) * det + a * filtered`` with ``a = blend``, raised towards 1 as a detection's aspect ratio departs from
    its track's (``a = 1`` at ``|log(ratio of aspect ratios)| = shape_scale``; 0: off)."""
    d = np.asarray(dets, dtype=np.float64)
    f = np.asarray(filtered, dtype=np.float64)
    a = np.full((d.shape[0], 1), float(blend))
    if shape_scale > 0 and d.shape[0]:
        dev = np.abs(np.log((d[:, 2] / d[:, 3]) / (f[:, 2] / f[:, 3])))
        a = np.maximum(a, np.minimum(1.0, dev / shape_scale)[:, None])
    return (1.0 - a) * d + a * f
