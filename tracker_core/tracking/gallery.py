"""Long-term re-identification gallery: removed tracks' appearance, bounded in size and age.

When a track is removed after its short lost buffer, its embedding memory, its last box and the time it was
last seen are kept here; a newly confirmed track whose observations are all close enough to an entry *and*
that could have walked from the entry's last box in the time since (``costs.motion_plausible``) takes that
entry's ID (and the entry leaves the gallery), so an object that comes back after a long absence keeps its
identity, and a look-alike on the other side of the scene does not take it.
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
        self.boxes = np.zeros((0, 4), np.float64)  # last matched box (xyxy) of each entry
        self.seen = np.zeros(0, np.float64)  # when each entry was last detected
        self.exited = np.zeros(
            0, bool
        )  # whether each entry walked out of the field of view (costs.left_view)

    _FIELDS = ("ids", "classes", "times", "emb", "boxes", "seen", "exited")

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def add(
        self,
        ids: NDArray[np.int64],
        classes: NDArray[np.int64],
        emb: NDArray[np.float32],
        now: float,
        boxes: NDArray[np.float64] | None = None,
        seen: NDArray[np.float64] | None = None,
        exited: NDArray[np.bool_] | None = None,
    ) -> None:
        """Store removed tracks ``ids [M]`` with their embeddings ``emb [M,D]``, last boxes ``[M,4]``, last
        detection times ``[M]`` and whether they walked out of view ``[M]`` (default: unknown box, seen ``now``,
        not out of view)."""
        if self.max_size == 0 or ids.size == 0:
            return
        if self.emb.shape[1] != emb.shape[1]:
            self._keep(np.zeros(len(self), bool))
            self.emb = np.zeros((0, emb.shape[1]), np.float32)
        m = ids.shape[0]
        self.ids = np.concatenate([self.ids, ids.astype(np.int64)])
        self.classes = np.concatenate([self.classes, classes.astype(np.int64)])
        self.times = np.concatenate([self.times, np.full(m, now)])
        self.emb = np.concatenate([self.emb, emb.astype(np.float32)])
        b = np.full((m, 4), np.nan) if boxes is None else np.asarray(boxes, np.float64).reshape(m, 4)
        self.boxes = np.concatenate([self.boxes, b])
        self.seen = np.concatenate(
            [self.seen, np.full(m, now) if seen is None else np.asarray(seen, np.float64)]
        )
        self.exited = np.concatenate(
            [self.exited, np.zeros(m, bool) if exited is None else np.asarray(exited, bool).reshape(m)]
        )
        self.prune(now)

    def _keep(self, keep: NDArray[np.bool_]) -> None:
        for name in self._FIELDS:
            setattr(self, name, getattr(self, name)[keep])

    def remove(self, positions: NDArray[np.int64]) -> None:
        """Drop the entries at ``positions`` (e.g. those just re-identified)."""
        keep = np.ones(len(self), bool)
        keep[positions] = False
        self._keep(keep)

    def prune(self, now: float) -> None:
        """Forget entries older than ``max_age_s`` and the oldest beyond ``max_size``."""
        keep = (now - self.times) <= self.max_age_s
        if keep.sum() > self.max_size:
            order = np.argsort(-self.times, kind="stable")
            newest = np.zeros_like(keep)
            newest[order[: self.max_size]] = True
            keep &= newest
        if not keep.all():
            self._keep(keep)

    def match(
        self,
        emb: NDArray[np.float32],
        classes: NDArray[np.int64],
        max_dist: float,
        class_aware: bool,
        allowed: NDArray[np.bool_] | None = None,
    ) -> NDArray[np.int64]:
        """IDs ``[M]`` re-identified for queries ``emb [M,D]`` (0 = none); matched entries are removed.
        ``allowed [M,G]`` (optional) restricts which query may take which entry (e.g. motion plausibility)."""
        m = emb.shape[0]
        out = np.zeros(m, np.int64)
        if m == 0 or len(self) == 0 or emb.shape[1] != self.emb.shape[1]:
            return out
        cost = cosine_distance(emb, self.emb)
        if class_aware:
            cost = np.where(classes[:, None] != self.classes[None, :], np.inf, cost)
        if allowed is not None:
            cost = np.where(allowed, cost, np.inf)
        matches, _, _ = linear_assignment(cost, max_dist)
        if matches.shape[0]:
            out[matches[:, 0]] = self.ids[matches[:, 1]]
            self.remove(matches[:, 1])
        return out
