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
    wh = np.clip(rb - lt, 0.0, None)
    inter = wh[..., 0] * wh[..., 1]
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def expand_boxes(boxes: NDArray[np.floating], ratio: NDArray[np.floating] | float) -> F64:
    """Boxes ``[T,4]`` enlarged about their centre by ``ratio`` (per box or scalar) of their width/height."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    r = np.broadcast_to(np.asarray(ratio, dtype=np.float64), (b.shape[0],))[:, None]
    half = (b[:, 2:] - b[:, :2]) * 0.5 * r
    return np.concatenate([b[:, :2] - half, b[:, 2:] + half], axis=1)


def iou_distance(
    track_boxes: NDArray[np.floating],
    det_boxes: NDArray[np.floating],
    buffer: NDArray[np.floating] | float = 0.0,
) -> F64:
    """``1 - IoU`` ``[T,N]``; with ``buffer`` > 0 both sides are enlarged by that ratio (buffered IoU)."""
    if np.any(np.asarray(buffer) > 0):
        buf = np.broadcast_to(np.asarray(buffer, dtype=np.float64), (np.asarray(track_boxes).shape[0],))
        iou = _buffered_iou(track_boxes, det_boxes, buf)
    else:
        iou = iou_matrix(track_boxes, det_boxes)
    return 1.0 - iou


def _buffered_iou(track_boxes: NDArray[np.floating], det_boxes: NDArray[np.floating], buf: F64) -> F64:
    t = np.asarray(track_boxes).reshape(-1, 4).shape[0]
    n = np.asarray(det_boxes).reshape(-1, 4).shape[0]
    if t == 0 or n == 0:
        return np.zeros((t, n))
    tb = expand_boxes(track_boxes, buf)
    # every detection is enlarged by the buffer of the track it is compared with
    db = np.asarray(det_boxes, dtype=np.float64).reshape(-1, 4)
    half = (db[:, 2:] - db[:, :2]) * 0.5  # [N,2]
    half_b = half[None, :, :] * buf[:, None, None]  # [T,N,2]
    d_lt = db[None, :, :2] - half_b
    d_rb = db[None, :, 2:] + half_b
    lt = np.maximum(tb[:, None, :2], d_lt)
    rb = np.minimum(tb[:, None, 2:], d_rb)
    wh = np.clip(rb - lt, 0.0, None)
    inter = wh[..., 0] * wh[..., 1]
    area_t = (tb[:, 2] - tb[:, 0]) * (tb[:, 3] - tb[:, 1])
    dwh = d_rb - d_lt
    area_d = dwh[..., 0] * dwh[..., 1]
    union = area_t[:, None] + area_d - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


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
        bsim = np.einsum("tkd,nd->tkn", np.asarray(bank, dtype=np.float32), de)
        if bank_valid is not None:
            bsim = np.where(np.asarray(bank_valid)[:, :, None], bsim, -np.inf)
        sim = np.maximum(sim, bsim.max(axis=1))
    return np.clip((1.0 - sim.astype(np.float64)) * 0.5, 0.0, 1.0)


def appearance_weight(app_dist: NDArray[np.floating], max_weight: float, spread_ref: float) -> float:
    """Weight of appearance in the fused cost: ``max_weight`` scaled by how informative the distances are.

    Informativeness is the spread (max - min) of the finite distances; it scales the weight linearly up to
    ``spread_ref``. No pairs, or all-equal distances (e.g. constant embeddings), give weight 0.
    """
    d = np.asarray(app_dist)
    if d.size < 2 or max_weight <= 0:
        return 0.0
    finite = d[np.isfinite(d)]
    if finite.size < 2:
        return 0.0
    spread = float(finite.max() - finite.min())
    if spread_ref <= 0:
        return float(max_weight)
    return float(max_weight * min(1.0, spread / spread_ref))


def fuse(motion: NDArray[np.floating], appearance: NDArray[np.floating] | None, weight: float) -> F64:
    """``(1 - w) * motion + w * appearance`` (``motion`` alone when ``appearance`` is None or ``w == 0``)."""
    m = np.asarray(motion, dtype=np.float64)
    if appearance is None or weight <= 0:
        return m.copy()
    return (1.0 - weight) * m + weight * np.asarray(appearance, dtype=np.float64)
