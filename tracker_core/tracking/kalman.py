"""Constant-velocity Kalman filter on boxes, as pure math on arrays, vectorised over all tracks.

State ``x = [cx, cy, w, h, vcx, vcy, vw, vh]`` (pixels, pixels/second); measurement ``z = [cx, cy, w, h]``.
Prediction is driven by the real elapsed time ``dt`` (seconds, per track), so dropped frames and variable frame
rates keep tracks on course. Noise is relative to the box size (x and w scale with width, y and h with height):

- process noise: ``Q = diag((q_pos*s)^2 dt, (q_vel*s)^2 dt)`` (random walk: variance grows linearly in time);
- measurement noise: ``R = diag((r_meas*s*k)^2)``, ``k = 1 - score_noise_weight * score`` (confident
  detections are trusted more).

Shapes: ``mean [T,8]``, ``cov [T,8,8]``, measurements ``[N,4]``. Functions never mutate their inputs.
"""

from __future__ import annotations

import functools

import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]

_H = np.hstack([np.eye(4), np.zeros((4, 4))])  # measurement matrix [4,8]
_SIZE_COLS = np.array([2, 3, 2, 3])  # the size component that scales each measured coordinate (w or h)
_POS = np.arange(4)
_VEL = np.arange(4, 8)
_DIAG = np.arange(8)


def xyxy_to_cxcywh(boxes: NDArray[np.floating]) -> F64:
    """``[N,4]`` xyxy -> ``[N,4]`` (cx, cy, w, h) float64."""
    b = np.asarray(boxes, dtype=np.float64)
    out = np.empty_like(b)
    out[:, 0] = (b[:, 0] + b[:, 2]) * 0.5
    out[:, 1] = (b[:, 1] + b[:, 3]) * 0.5
    out[:, 2] = b[:, 2] - b[:, 0]
    out[:, 3] = b[:, 3] - b[:, 1]
    return out


def cxcywh_to_xyxy(z: NDArray[np.floating]) -> F64:
    """``[N,4]`` (cx, cy, w, h) -> ``[N,4]`` xyxy float64."""
    z = np.asarray(z, dtype=np.float64)
    half = z[:, 2:4] * 0.5
    return np.concatenate([z[:, 0:2] - half, z[:, 0:2] + half], axis=1)


def _scales(sizes: F64) -> F64:
    """``[T,4]`` per-coordinate scale (w, h, w, h) from ``[T,4]`` (cx, cy, w, h)."""
    return np.abs(sizes[:, _SIZE_COLS])


def measurement_noise(z: F64, scores: F64 | None, r_meas: float, score_noise_weight: float) -> F64:
    """Measurement covariance ``[N,4,4]`` (diagonal) for measurements ``z [N,4]`` and ``scores [N]``."""
    std = r_meas * _scales(z)
    if scores is not None:
        k = 1.0 - score_noise_weight * np.minimum(np.maximum(np.asarray(scores, dtype=np.float64), 0.0), 1.0)
        std = std * k[:, None]
    n = z.shape[0]
    r = np.zeros((n, 4, 4))
    idx = np.arange(4)
    r[:, idx, idx] = np.maximum(std, 1e-3) ** 2
    return r


def initiate(z: F64, r_meas: float, init_vel_std: float) -> tuple[F64, F64]:
    """New tracks from measurements ``z [N,4]``: zero velocity, position std ``2*r_meas*size``.

    Returns ``mean [N,8]``, ``cov [N,8,8]``.
    """
    z = np.asarray(z, dtype=np.float64)
    n = z.shape[0]
    mean = np.zeros((n, 8))
    mean[:, :4] = z
    s = _scales(z)
    std = np.concatenate([2.0 * r_meas * s, init_vel_std * s], axis=1)
    cov = np.zeros((n, 8, 8))
    idx = np.arange(8)
    cov[:, idx, idx] = np.maximum(std, 1e-3) ** 2
    return mean, cov


@functools.lru_cache(maxsize=16)
def _transition(dt: float) -> F64:
    """``F = [[I, dt I], [0, I]]`` (cached: streams mostly repeat the same step). Read-only."""
    f = np.eye(8)
    f[_POS, _VEL] = dt
    f.flags.writeable = False
    return f


def predict(
    mean: F64, cov: F64, dt: NDArray[np.floating] | float, q_pos: float, q_vel: float
) -> tuple[F64, F64]:
    """Predict every track ``dt`` seconds ahead (``dt`` scalar or ``[T]``, >= 0).

    ``x' = F x``, ``P' = F P F^T + Q`` with ``F = [[I, dt I], [0, I]]``. Widths/heights are kept >= 1 px.
    """
    s = _scales(mean[:, :4])
    if np.ndim(dt) == 0:  # the common case: every track predicted by the same step
        d = float(dt)  # type: ignore[arg-type]
        f = _transition(d)
        new_mean = mean @ f.T
        new_cov = f @ cov @ f.T
        q = np.concatenate([(q_pos * s) ** 2, (q_vel * s) ** 2], axis=1) * d
    else:
        dt_arr = np.asarray(dt, dtype=np.float64).reshape(-1)
        f = np.broadcast_to(np.eye(8), (mean.shape[0], 8, 8)).copy()
        f[:, _POS, _VEL] = dt_arr[:, None]
        new_mean = np.einsum("tij,tj->ti", f, mean)
        new_cov = f @ cov @ np.transpose(f, (0, 2, 1))
        q = np.concatenate([(q_pos * s) ** 2, (q_vel * s) ** 2], axis=1) * dt_arr[:, None]
    np.maximum(new_mean[:, 2:4], 1.0, out=new_mean[:, 2:4])
    new_cov[:, _DIAG, _DIAG] += q
    return new_mean, new_cov


def project(mean: F64, cov: F64, r: F64) -> tuple[F64, F64]:
    """Measurement-space distribution: ``z_mean [T,4]``, innovation covariance ``S = H P H^T + R [T,4,4]``."""
    return mean[:, :4].copy(), cov[:, :4, :4] + r


def update(mean: F64, cov: F64, z: NDArray[np.floating], r: F64) -> tuple[F64, F64]:
    """Kalman correction of tracks ``[T]`` with their matched measurements ``z [T,4]`` (noise ``r [T,4,4]``).

    ``K = P H^T S^-1``, ``x' = x + K (z - H x)``, ``P' = (I - K H) P``.
    """
    z = np.asarray(z, dtype=np.float64)
    if mean.shape[0] == 0:
        return mean.copy(), cov.copy()
    s = cov[:, :4, :4] + r
    pht = cov[:, :, :4]  # P H^T  [T,8,4]
    # K^T = S^-1 (P H^T)^T  (S symmetric)
    kt = np.linalg.solve(s, pht.transpose(0, 2, 1))
    k = kt.transpose(0, 2, 1)  # [T,8,4]
    innov = z - mean[:, :4]
    new_mean = mean + (k @ innov[:, :, None])[:, :, 0]
    new_cov = cov - k @ cov[:, :4, :]
    new_cov = 0.5 * (new_cov + new_cov.transpose(0, 2, 1))
    return new_mean, new_cov


def mahalanobis_sq(mean: F64, cov: F64, z: NDArray[np.floating], r: F64) -> F64:
    """Squared Mahalanobis distance ``[T,N]`` of measurements ``z [N,4]`` to each track's predicted measurement.

    ``r [T,4,4]`` is the measurement noise assumed for each track (usually from its own box size).
    """
    t, n = mean.shape[0], np.asarray(z).shape[0]
    if t == 0 or n == 0:
        return np.zeros((t, n))
    s = cov[:, :4, :4] + r
    chol = np.linalg.cholesky(s)  # [T,4,4]
    d = np.asarray(z, dtype=np.float64)[None, :, :] - mean[:, None, :4]  # [T,N,4]
    # solve L y = d^T for every track: y [T,4,N]
    y = np.linalg.solve(chol, np.transpose(d, (0, 2, 1)))
    return np.einsum("tkn,tkn->tn", y, y)
