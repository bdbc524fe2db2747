"""Long-term re-identification gallery: removed tracks' appearance, bounded in size and age.

When a track is removed after its short lost buffer, its embedding memory is kept here; a newly confirmed
track whose embedding is close enough to an entry takes that entry's ID (and the entry leaves the gallery), so
an object that comes back after a long absence keeps its identity.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from tracker_core.tracking.costs import cosine_distance
from tracker_core.tracking.matching import linear_assignment


class Gallery:
    """At most ``max_size`` entries, none older than ``max_age_s`` seconds (oldest evicted first)."""

    def __init__(self, max_size: int, max_age_s: float) -> None:
        self.max_size = int(max_size)
        self.max_age_s = float(max_age_s)
        self.ids = np.zeros(0, np.int64)
        self.classes = np.zeros(0, np.int64)
        self.times = np.zeros(0, np.float64)
        self.emb = np.zeros((0, 0), np.float32)

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def add(
        self, ids: NDArray[np.int64], classes: NDArray[np.int64], emb: NDArray[np.float32], now: float
    ) -> None:
        """Store removed tracks ``ids [M]`` with their embeddings ``emb [M,D]``."""
        if self.max_size == 0 or ids.size == 0:
            return
        if self.emb.shape[1] != emb.shape[1]:
            self.emb = np.zeros((0, emb.shape[1]), np.float32)
            self.ids, self.classes, self.times = self.ids[:0], self.classes[:0], self.times[:0]
        self.ids = np.concatenate([self.ids, ids.astype(np.int64)])
        self.classes = np.concatenate([self.classes, classes.astype(np.int64)])
        self.times = np.concatenate([self.times, np.full(ids.shape[0], now)])
        self.emb = np.concatenate([self.emb, emb.astype(np.float32)])
        self.prune(now)

    def prune(self, now: float) -> None:
        """Forget entries older than ``max_age_s`` and the oldest beyond ``max_size``."""
        keep = (now - self.times) <= self.max_age_s
        if keep.sum() > self.max_size:
            order = np.argsort(-self.times, kind="stable")
            newest = np.zeros_like(keep)
            newest[order[: self.max_size]] = True
            keep &= newest
        if not keep.all():
            self.ids, self.classes, self.times, self.emb = (
                self.ids[keep],
                self.classes[keep],
                self.times[keep],
                self.emb[keep],
            )

    def match(
        self, emb: NDArray[np.float32], classes: NDArray[np.int64], max_dist: float, class_aware: bool
    ) -> NDArray[np.int64]:
        """IDs ``[M]`` re-identified for queries ``emb [M,D]`` (0 = none); matched entries are removed."""
        m = emb.shape[0]
        out = np.zeros(m, np.int64)
        if m == 0 or len(self) == 0 or emb.shape[1] != self.emb.shape[1]:
            return out
        cost = cosine_distance(emb, self.emb)
        if class_aware:
            cost = np.where(classes[:, None] != self.classes[None, :], np.inf, cost)
        matches, _, _ = linear_assignment(cost, max_dist)
        if matches.shape[0]:
            out[matches[:, 0]] = self.ids[matches[:, 1]]
            keep = np.ones(len(self), bool)
            keep[matches[:, 1]] = False
            self.ids, self.classes, self.times, self.emb = (
                self.ids[keep],
                self.classes[keep],
                self.times[keep],
                self.emb[keep],
            )
        return out
