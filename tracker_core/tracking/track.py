"""Track life cycle and the struct-of-arrays table holding every live track of one tracker.

Life cycle (limits in seconds, see ``TrackerConfig``)::

    TENTATIVE --confirm_hits matches--> CONFIRMED --unmatched--> LOST --matched--> CONFIRMED
        |                                                         |
        +-- unmatched > tentative_max_age_s --> removed            +-- unmatched > max_lost_s --> removed

Removed tracks leave the table (and, with an embedding, go to the re-identification gallery). Keeping all
tracks in one table of arrays lets prediction, costs and updates run as array operations with no per-track
Python loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np
from numpy.typing import NDArray

from tracker_core.tracking.costs import DistanceScale, calibrate, paired_cosine_distance


class TrackState(IntEnum):
    TENTATIVE = 0
    CONFIRMED = 1
    LOST = 2
    REMOVED = 3


HISTORY = 8
"""Observations kept per track (newest first) for its direction of motion."""


def _empty(shape: tuple[int, ...], dtype: type | np.dtype = np.float64) -> NDArray:
    return np.zeros(shape, dtype=dtype)


@dataclass
class TrackTable:
    """All live tracks. Row ``i`` of every array describes track ``i``.

    mean ``[T,8]`` / cov ``[T,3,4]``: Kalman state (cx, cy, w, h, velocities per second; see ``kalman``).
    state ``[T]`` int8 ``TrackState``; track_id ``[T]`` (0 while tentative); class_id ``[T]``; score ``[T]``
    (last matched detection's); hits ``[T]``; first_seen / last_seen ``[T]`` seconds; det_index ``[T]`` (this
    frame's matched detection, -1 if none); emb ``[T,D]`` EMA embedding, emb_valid ``[T]``; bank ``[T,K,D]``
    ring buffer of recent embeddings with bank_valid ``[T,K]`` and bank_pos ``[T]``. hist_z ``[T,H,4]`` /
    hist_t ``[T,H]``: the last ``HISTORY`` matched detections (cx, cy, w, h) and their times, newest first (NaN
    time: none yet), for the direction of motion.
    """

    bank_size: int = 0
    embed_dim: int = 0
    mean: NDArray[np.float64] = field(default_factory=lambda: _empty((0, 8)))
    cov: NDArray[np.float64] = field(default_factory=lambda: _empty((0, 3, 4)))
    state: NDArray[np.int8] = field(default_factory=lambda: _empty((0,), np.int8))
    track_id: NDArray[np.int64] = field(default_factory=lambda: _empty((0,), np.int64))
    class_id: NDArray[np.int64] = field(default_factory=lambda: _empty((0,), np.int64))
    score: NDArray[np.float64] = field(default_factory=lambda: _empty((0,)))
    hits: NDArray[np.int64] = field(default_factory=lambda: _empty((0,), np.int64))
    first_seen: NDArray[np.float64] = field(default_factory=lambda: _empty((0,)))
    last_seen: NDArray[np.float64] = field(default_factory=lambda: _empty((0,)))
    det_index: NDArray[np.int64] = field(default_factory=lambda: _empty((0,), np.int64))
    det_box: NDArray[np.float64] = field(default_factory=lambda: _empty((0, 4)))
    emb: NDArray[np.float32] = field(default_factory=lambda: _empty((0, 0), np.float32))
    emb_valid: NDArray[np.bool_] = field(default_factory=lambda: _empty((0,), bool))
    bank: NDArray[np.float32] = field(default_factory=lambda: _empty((0, 0, 0), np.float32))
    bank_valid: NDArray[np.bool_] = field(default_factory=lambda: _empty((0, 0), bool))
    bank_pos: NDArray[np.int64] = field(default_factory=lambda: _empty((0,), np.int64))
    app_dev: NDArray[np.float64] = field(default_factory=lambda: _empty((0,)))
    alt_emb: NDArray[np.float32] = field(default_factory=lambda: _empty((0, 0), np.float32))
    alt_streak: NDArray[np.int64] = field(default_factory=lambda: _empty((0,), np.int64))
    last_emb: NDArray[np.float32] = field(default_factory=lambda: _empty((0, 0), np.float32))
    # identity repair (Tracker._repair_identities): the gallery ID this track's observations keep naming, on how
    # many consecutive matched frames, the track's memory / box / time when that began, and the sum of the
    # observations since
    repair_id: NDArray[np.int64] = field(default_factory=lambda: _empty((0,), np.int64))
    repair_hits: NDArray[np.int64] = field(default_factory=lambda: _empty((0,), np.int64))
    repair_emb: NDArray[np.float32] = field(default_factory=lambda: _empty((0, 0), np.float32))
    repair_sum: NDArray[np.float32] = field(default_factory=lambda: _empty((0, 0), np.float32))
    repair_box: NDArray[np.float64] = field(default_factory=lambda: _empty((0, 4)))
    repair_seen: NDArray[np.float64] = field(default_factory=lambda: _empty((0,)))
    hist_z: NDArray[np.float64] = field(default_factory=lambda: _empty((0, HISTORY, 4)))
    hist_t: NDArray[np.float64] = field(default_factory=lambda: _empty((0, HISTORY)))

    _ROW_FIELDS = (
        "mean",
        "cov",
        "state",
        "track_id",
        "class_id",
        "score",
        "hits",
        "first_seen",
        "last_seen",
        "det_index",
        "det_box",
        "emb",
        "emb_valid",
        "bank",
        "bank_valid",
        "bank_pos",
        "app_dev",
        "alt_emb",
        "alt_streak",
        "last_emb",
        "repair_id",
        "repair_hits",
        "repair_emb",
        "repair_sum",
        "repair_box",
        "repair_seen",
        "hist_z",
        "hist_t",
    )

    def __post_init__(self) -> None:
        self.set_embed_dim(self.embed_dim)

    def __len__(self) -> int:
        return int(self.state.shape[0])

    def set_embed_dim(self, dim: int) -> None:
        """Allocate embedding memory of width ``dim`` (once; existing tracks get an invalid memory)."""
        t = len(self)
        self.embed_dim = dim
        self.emb = np.zeros((t, dim), np.float32)
        self.emb_valid = np.zeros(t, bool)
        self.bank = np.zeros((t, self.bank_size, dim), np.float32)
        self.bank_valid = np.zeros((t, self.bank_size), bool)
        self.alt_emb = np.zeros((t, dim), np.float32)
        self.last_emb = np.zeros((t, dim), np.float32)
        self.repair_emb = np.zeros((t, dim), np.float32)
        self.repair_sum = np.zeros((t, dim), np.float32)

    def keep(self, mask: NDArray[np.bool_]) -> None:
        """Keep only rows where ``mask`` is true."""
        if mask.all():
            return
        for name in self._ROW_FIELDS:
            setattr(self, name, getattr(self, name)[mask])

    def append(
        self,
        mean: NDArray[np.float64],
        cov: NDArray[np.float64],
        class_id: NDArray[np.int64],
        score: NDArray[np.float64],
        now: float,
        det_index: NDArray[np.int64],
        det_box: NDArray[np.float64],
        emb: NDArray[np.float32] | None,
    ) -> None:
        """Add ``M`` new tentative tracks (one match each, seen at ``now``)."""
        m = mean.shape[0]
        if m == 0:
            return
        d, k = self.embed_dim, self.bank_size
        new_emb = np.zeros((m, d), np.float32)
        new_bank = np.zeros((m, k, d), np.float32)
        new_bank_valid = np.zeros((m, k), bool)
        new_valid = np.zeros(m, bool)
        if emb is not None and d > 0:
            new_emb[:] = emb
            new_valid[:] = True
            if k > 0:
                new_bank[:, 0] = emb
                new_bank_valid[:, 0] = True
        parts = {
            "mean": mean,
            "cov": cov,
            "state": np.full(m, TrackState.TENTATIVE, np.int8),
            "track_id": np.zeros(m, np.int64),
            "class_id": class_id.astype(np.int64),
            "score": score.astype(np.float64),
            "hits": np.ones(m, np.int64),
            "first_seen": np.full(m, now),
            "last_seen": np.full(m, now),
            "det_index": det_index.astype(np.int64),
            "det_box": det_box.astype(np.float64),
            "emb": new_emb,
            "emb_valid": new_valid,
            "bank": new_bank,
            "bank_valid": new_bank_valid,
            "bank_pos": np.full(m, 1 % max(k, 1), np.int64),
            "app_dev": np.ones(m),
            "alt_emb": np.zeros((m, d), np.float32),
            "alt_streak": np.zeros(m, np.int64),
            "last_emb": new_emb,
            "repair_id": np.zeros(m, np.int64),
            "repair_hits": np.zeros(m, np.int64),
            "repair_emb": np.zeros((m, d), np.float32),
            "repair_sum": np.zeros((m, d), np.float32),
            "repair_box": np.zeros((m, 4)),
            "repair_seen": np.zeros(m),
            "hist_z": np.concatenate([mean[:, None, :4], np.zeros((m, HISTORY - 1, 4))], axis=1),
            "hist_t": np.concatenate([np.full((m, 1), now), np.full((m, HISTORY - 1), np.nan)], axis=1),
        }
        for name, value in parts.items():
            setattr(self, name, np.concatenate([getattr(self, name), value], axis=0))

    def observe(self, rows: NDArray[np.int64], z: NDArray[np.float64], now: float) -> None:
        """Record matched detections ``z [M,4]`` (cx, cy, w, h) at ``now`` in the history of ``rows``."""
        if rows.size == 0:
            return
        self.hist_z[rows, 1:] = self.hist_z[rows, :-1]
        self.hist_t[rows, 1:] = self.hist_t[rows, :-1]
        self.hist_z[rows, 0] = z
        self.hist_t[rows, 0] = now

    def remember(
        self,
        rows: NDArray[np.int64],
        emb: NDArray[np.float32],
        ema_alpha: float,
        dev_ema: float = 0.7,
        keep_dev: float = 0.0,
        keep_dist: float = 1.0,
        alt_accept: float = 0.2,
        scale: DistanceScale | None = None,
    ) -> None:
        """Fold observed embeddings ``emb [M,D]`` (L2-normalised) into the memory of tracks ``rows [M]``.

        ``app_dev`` (1 for a new track: unproven) follows, smoothed by ``dev_ema``, the cosine distance
        ``(1 - cos) / 2`` of each observation to the memory it joins: small for a track whose observations keep
        agreeing with each other, large for one whose memory mixes objects or wrong embeddings. With ``scale``
        (the stream's ``costs.DistanceScale``) every distance here is read calibrated (``costs.calibrate``)."""
        if rows.size == 0 or self.embed_dim == 0:
            return
        old = self.emb[rows]
        had = self.emb_valid[rows][:, None]
        dist = paired_cosine_distance(old, emb)
        if scale is not None:
            dist = calibrate(dist, scale)
        # a proven memory (app_dev <= keep_dev) ignores an observation farther than keep_dist from it
        proven = (self.app_dev[rows] <= keep_dev) | (self.alt_streak[rows] > 0)  # a streak keeps holding
        hold = had[:, 0] & proven & (dist > keep_dist)
        self.app_dev[rows] = np.where(had[:, 0], dev_ema * self.app_dev[rows] + (1.0 - dev_ema) * dist, 1.0)
        mixed = np.where(had, ema_alpha * old + (1.0 - ema_alpha) * emb, emb)
        mixed = np.where(hold[:, None], old, mixed)
        # consecutive observations that disagree with the memory but agree with each other: another object
        alt = self.alt_emb[rows]
        alt_dist = paired_cosine_distance(alt, emb)
        if scale is not None:
            alt_dist = calibrate(alt_dist, scale)
        streak = np.where(alt_dist <= alt_accept, self.alt_streak[rows] + 1, 1)
        self.alt_streak[rows] = np.where(hold, streak, 0)
        self.alt_emb[rows] = np.where(hold[:, None], emb, alt)
        norm = np.linalg.norm(mixed, axis=1, keepdims=True)
        self.emb[rows] = mixed / np.maximum(norm, 1e-12)
        self.emb_valid[rows] = True
        self.last_emb[rows] = emb
        if self.bank_size > 0:
            pos = self.bank_pos[rows]
            self.bank[rows, pos] = emb
            self.bank_valid[rows, pos] = True
            self.bank_pos[rows] = (pos + 1) % self.bank_size
