"""Association costs as pure functions ``(tracks, detections) -> [T,N] matrix``. Inputs are never mutated.

Boxes are ``xyxy`` float pixels. Costs are in ``[0, 1]`` (``inf`` = forbidden pair).
"""

from __future__ import annotations

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


def buffered_iou_cxcywh(
    tracks: NDArray[np.floating], dets: NDArray[np.floating], buffer: NDArray[np.floating] | float = 0.0
) -> F64:
    """Pairwise (buffered) IoU ``[T,N]`` of boxes in centre form ``(cx, cy, w, h)``: ``tracks [T,4]``, ``dets [N,4]``.

    With ``buffer`` (scalar or ``[T]``) both boxes of a pair are enlarged about their centres by that fraction of
    their size (the track's buffer), i.e. the IoU of ``expand_boxes(track, b)`` and ``expand_boxes(det, b)``.
    Scaling both boxes by ``1 + b`` scales every area alike, so that equals the plain IoU with the centre offset
    shrunk by ``1 / (1 + b)``, which is what is computed (no box is built).
    """
    t = np.asarray(tracks, dtype=np.float64).reshape(-1, 4)
    d = np.asarray(dets, dtype=np.float64).reshape(-1, 4)
    if t.shape[0] == 0 or d.shape[0] == 0:
        return np.zeros((t.shape[0], d.shape[0]))
    shrink = 1.0 / (1.0 + np.asarray(buffer, dtype=np.float64))
    off = np.abs(t[:, None, :2] - d[None, :, :2])  # [T,N,2] centre offsets
    if shrink.ndim:
        off *= shrink[:, None, None]
    elif shrink != 1.0:
        off *= shrink
    half_sum = (t[:, None, 2:] + d[None, :, 2:]) * 0.5
    ov = np.minimum(np.maximum(half_sum - off, 0.0), np.minimum(t[:, None, 2:], d[None, :, 2:]))
    inter = ov[..., 0] * ov[..., 1]
    union = (t[:, 2] * t[:, 3])[:, None] + (d[:, 2] * d[:, 3])[None, :] - inter
    return inter / np.maximum(union, 1e-12)


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


def appearance_weight(margin: float, max_weight: float, margin_ref: float) -> float:
    """Weight of appearance in the fused cost: ``max_weight`` scaled linearly by ``margin / margin_ref`` (clipped
    to [0, 1]); a margin of 0 or less (uninformative embeddings) gives weight 0, i.e. motion alone."""
    if max_weight <= 0 or margin <= 0:
        return 0.0
    if margin_ref <= 0:
        return float(max_weight)
    return float(max_weight * min(1.0, margin / margin_ref))


def fuse(motion: NDArray[np.floating], appearance: NDArray[np.floating] | None, weight: float) -> F64:
    """``(1 - w) * motion + w * appearance`` (``motion`` alone when ``appearance`` is None or ``w == 0``)."""
    m = np.asarray(motion, dtype=np.float64)
    if appearance is None or weight <= 0:
        return m.copy()
    return (1.0 - weight) * m + weight * np.asarray(appearance, dtype=np.float64)
