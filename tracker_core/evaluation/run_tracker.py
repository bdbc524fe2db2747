"""Run our ``Tracker`` over a sequence's per-frame detections and produce MOTChallenge result lines."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from tracker_core.evaluation.mot_io import FrameDetections, results_rows
from tracker_core.tracking import DEFAULT_CONFIG, Tracker, TrackerConfig


@dataclass(frozen=True)
class TrackingRun:
    """Result lines plus the time spent inside ``Tracker.update`` (seconds, all frames) and, with embeddings, how
    informative the tracker judged them at the end (``Tracker.appearance_margin``, ``appearance_confusion``,
    ``appearance_informative``, ``appearance_misleading``; ``None`` without embeddings)."""

    lines: list[str]
    frames: int
    update_seconds: float
    appearance_margin: float | None = None
    appearance_confusion: float | None = None
    appearance_informative: bool | None = None
    appearance_misleading: float | None = None

    @property
    def ms_per_frame(self) -> float:
        return 1000.0 * self.update_seconds / max(self.frames, 1)


def track_sequence(
    frames: Sequence[FrameDetections],
    frame_rate: float,
    config: TrackerConfig = DEFAULT_CONFIG,
    embeddings: Sequence[NDArray[np.float32] | None] | None = None,
    warps: Sequence[NDArray[np.float64] | None] | None = None,
) -> TrackingRun:
    """Track every frame: MOTChallenge frame ``n`` (``frames[n - 1]``) at ``n / frame_rate`` seconds, the timestamps
    ``roitrack stream`` sends for an image folder; ``embeddings[i]`` is ``frames[i]``'s ``[N,D]``; ``warps[i]`` the
    camera motion into frame ``i + 1`` (``read_camera_motion``)."""
    tracker = Tracker(config)
    lines: list[str] = []
    spent = 0.0
    for i, det in enumerate(frames):
        emb = embeddings[i] if embeddings is not None else None
        warp = warps[i] if warps is not None else None
        t0 = time.perf_counter()
        outs = tracker.update(det.boxes, det.scores, (i + 1) / frame_rate, embeddings=emb, warp=warp)
        spent += time.perf_counter() - t0
        if outs:
            lines += results_rows(
                i + 1,
                [o.track_id for o in outs],
                np.stack([o.box for o in outs]),
                [o.score for o in outs],
            )
    with_emb = embeddings is not None
    return TrackingRun(
        lines,
        len(frames),
        spent,
        tracker.appearance_margin if with_emb else None,
        tracker.appearance_confusion if with_emb else None,
        tracker.appearance_informative if with_emb else None,
        tracker.appearance_misleading if with_emb else None,
    )
