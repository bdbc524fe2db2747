"""Pseudo-identities without labels: link high-confidence detections into short tracklets.

The motion-only tracker (``tracker_core.tracking.Tracker`` without embeddings) runs over each source's
detections with score >= ``min_score``; every confirmed track is cut into pieces of at most ``max_len``
frames (short tracklets drift less). Detections outside any tracklet of >= 2 frames get label -1.
"""

from __future__ import annotations

import numpy as np

from tracker_core.tracking import Tracker
from training.encoder.cache import CachedSource


def link_tracklets(
    src: CachedSource, min_score: float = 0.5, max_len: int = 40, first_label: int = 0
) -> tuple[list[np.ndarray], int]:
    """Per-frame ``[Ni]`` int64 labels (>= ``first_label``, or -1) for ``src``; returns (labels, next free label)."""
    tracker = Tracker()
    fps = src.frame_rate if src.frame_rate > 0 else 7.0
    raw: list[np.ndarray] = []
    for i in range(len(src)):
        boxes, scores = src.boxes[i], src.scores[i]
        lab = np.full(len(boxes), -1, np.int64)
        hi = np.flatnonzero(scores >= min_score)
        outs = tracker.update(boxes[hi], scores[hi], timestamp=float(src.frames[i]) / fps)
        for o in outs:
            if o.state == "confirmed" and o.det_index >= 0:
                lab[hi[o.det_index]] = o.track_id
        raw.append(lab)
    # cut each track into pieces of <= max_len frames, keep pieces seen in >= 2 frames
    first_frame: dict[int, int] = {}
    pieces: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for i, lab in enumerate(raw):
        for j, tid in enumerate(lab.tolist()):
            if tid < 0:
                continue
            f0 = first_frame.setdefault(tid, i)
            pieces.setdefault((tid, (i - f0) // max_len), []).append((i, j))
    out = [np.full(len(lab), -1, np.int64) for lab in raw]
    nxt = first_label
    for members in pieces.values():
        if len({i for i, _ in members}) < 2:
            continue
        for i, j in members:
            out[i][j] = nxt
        nxt += 1
    return out, nxt


def tracklet_stats(labels: list[np.ndarray]) -> dict[str, float]:
    """Count of tracklets, mean length and the share of detections inside one."""
    flat = np.concatenate(labels) if labels else np.zeros(0, np.int64)
    lab = flat[flat >= 0]
    n = len(np.unique(lab))
    return {
        "tracklets": int(n),
        "mean_length": float(len(lab) / n) if n else 0.0,
        "linked_fraction": float(len(lab) / len(flat)) if len(flat) else 0.0,
    }
