"""Input checks for ``Tracker.update``: bad input raises ``InvalidInputError`` with a clear message."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from tracker_core.errors import InvalidInputError


def validate_detections(
    boxes: object,
    scores: object,
    classes: object | None = None,
    embeddings: object | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64], NDArray[np.float32] | None]:
    """Check and convert one frame's detections.

    boxes ``[N,4]`` xyxy pixels: finite, ``x2 > x1`` and ``y2 > y1`` (coordinates may be negative: boxes may
    stick out of the frame). scores ``[N]`` finite. classes ``[N]`` integers (default 0). embeddings ``[N,D]``
    finite (returned L2-normalised float32).
    """
    try:
        b = np.asarray(boxes, dtype=np.float64)
        s = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"boxes/scores must be numeric arrays: {exc}") from None
    if b.size == 0:
        b = b.reshape(0, 4)
    if b.ndim != 2 or b.shape[1] != 4:
        raise InvalidInputError(f"boxes must have shape [N,4] (xyxy), got {b.shape}")
    n = b.shape[0]
    s = s.reshape(-1) if s.size == n else s
    if s.shape != (n,):
        raise InvalidInputError(f"scores must have shape [{n}], got {s.shape}")
    # fast path: one finiteness check (NaN/inf propagate through the sums) and one size check
    if n and not (np.isfinite(b.sum() + s.sum()) and (b[:, 2:] > b[:, :2]).all()):
        bad = ~np.isfinite(b).all(axis=1)
        if bad.any():
            raise InvalidInputError(
                f"box {int(np.flatnonzero(bad)[0])} has a NaN/inf coordinate: {b[bad][0]}"
            )
        w = b[:, 2] - b[:, 0]
        h = b[:, 3] - b[:, 1]
        bad = (w <= 0) | (h <= 0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InvalidInputError(
                f"box {i} has zero or negative size (xyxy {b[i].tolist()}, w={w[i]:g}, h={h[i]:g}); "
                "boxes must be x1 < x2, y1 < y2"
            )
        if not np.isfinite(s).all():
            raise InvalidInputError("scores must be finite")
    if classes is None:
        c = np.zeros(n, np.int64)
    else:
        c_raw = np.asarray(classes)
        if c_raw.size == 0:
            c_raw = c_raw.reshape(0)
        if c_raw.shape != (n,):
            raise InvalidInputError(f"classes must have shape [{n}], got {c_raw.shape}")
        if c_raw.dtype.kind not in "iub" and (
            c_raw.dtype.kind != "f" or not np.all(np.isfinite(c_raw)) or np.any(c_raw != np.round(c_raw))
        ):
            raise InvalidInputError("classes must be integers")
        c = c_raw.astype(np.int64)
    e: NDArray[np.float32] | None = None
    if embeddings is not None:
        try:
            e = np.asarray(embeddings, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"embeddings must be a numeric array: {exc}") from None
        if n == 0 and e.size == 0:
            e = None
        else:
            if e.ndim != 2 or e.shape[0] != n or e.shape[1] == 0:
                raise InvalidInputError(f"embeddings must have shape [{n},D], got {e.shape}")
            if not np.isfinite(e).all():
                raise InvalidInputError("embeddings must be finite")
            norm = np.linalg.norm(e, axis=1, keepdims=True)
            e = e / np.maximum(norm, 1e-12)
    return b, s, c, e


def validate_timestamp(timestamp: object, last: float | None) -> float:
    """A finite float timestamp (seconds), not earlier than the previous one."""
    try:
        t = float(timestamp)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidInputError(f"timestamp must be a number of seconds, got {timestamp!r}") from None
    if not math.isfinite(t):
        raise InvalidInputError(f"timestamp must be finite, got {t}")
    if last is not None and t < last:
        raise InvalidInputError(
            f"timestamp {t} is earlier than the previous frame's {last}; time must not go back"
        )
    return t


def validate_warp(warp: object) -> NDArray[np.float64] | None:
    """A camera motion ``[2,3]`` affine (previous frame's pixels -> this frame's), or ``None``.

    Finite, with a linear part that keeps orientation and changes scale by at most 4x per frame (anything else is
    not a camera moving between two frames, but a broken estimate)."""
    if warp is None:
        return None
    try:
        w = np.asarray(warp, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"camera motion must be a numeric [2,3] affine: {exc}") from None
    if w.shape != (2, 3):
        raise InvalidInputError(f"camera motion must have shape [2,3], got {w.shape}")
    if not np.isfinite(w).all():
        raise InvalidInputError("camera motion must be finite")
    det = float(np.linalg.det(w[:, :2]))
    if not (1.0 / 16.0 <= det <= 16.0):
        raise InvalidInputError(
            f"camera motion {w.tolist()} scales the image area by {det:g} in one frame; expected a camera motion"
        )
    return w
