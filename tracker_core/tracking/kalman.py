"""Constant-velocity Kalman filter on boxes, as pure math on arrays, vectorised over all tracks.

State ``x = [cx, cy, w, h, vcx, vcy, vw, vh]`` (pixels, pixels/second); measurement ``z = [cx, cy, w, h]``.
Prediction is driven by the real elapsed time ``dt`` (seconds), so dropped frames and variable frame rates keep
tracks on course. Noise is relative to the box size (x and w scale with the width, y and h with the height):

- process noise: ``Q = diag((q_pos*s)^2 dt, (q_vel*s)^2 dt)`` (random walk: variance grows linearly in time);
- measurement noise: ``R = diag((r_meas*s*k)^2)``, ``k = 1 - score_noise_weight * score`` (confident
  detections are trusted more).

With ``F = [[I, dt I], [0, I]]``, ``H = [I, 0]`` and diagonal initial covariance, Q and R, the four coordinates
never correlate with each other: the 8x8 covariance is four independent 2x2 blocks (position, velocity) and
stays so. We store exactly those blocks, ``cov [T,3,4]`` = (``var(pos)``, ``cov(pos, vel)``, ``var(vel)``) per
coordinate, so predict / update / gating are a handful of element-wise array operations over all tracks with no
matrix inversion. ``full_covariance`` rebuilds the 8x8 matrices (tests check the filter against a textbook
8x8 implementation). Shapes: ``mean [T,8]``, ``cov [T,3,4]``, measurements ``[N,4]``, noise variances ``[N,4]``.
Functions never mutate their inputs.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]

PP, PV, VV = 0, 1, 2  # rows of ``cov``: var(position), cov(position, velocity), var(velocity)
_SIZE_COLS = np.array([2, 3, 2, 3])  # the size component (w or h) that scales each coordinate


def xyxy_to_cxcywh(boxes: NDArray[np.floating]) -> F64:
    """``[N,4]`` xyxy -> ``[N,4]`` (cx, cy, w, h) float64."""
    b = np.asarray(boxes, dtype=np.float64)
    return np.concatenate([(b[:, :2] + b[:, 2:]) * 0.5, b[:, 2:] - b[:, :2]], axis=1)


def cxcywh_to_xyxy(z: NDArray[np.floating]) -> F64:
    """``[N,4]`` (cx, cy, w, h) -> ``[N,4]`` xyxy float64."""
    z = np.asarray(z, dtype=np.float64)
    half = z[:, 2:4] * 0.5
    return np.concatenate([z[:, 0:2] - half, z[:, 0:2] + half], axis=1)


def _scales(z: F64) -> F64:
    """``[T,4]`` per-coordinate scale (w, h, w, h) from ``[T,4]`` (cx, cy, w, h)."""
    return np.abs(z[:, _SIZE_COLS])


def measurement_var(z: F64, scores: F64 | None, r_meas: float, score_noise_weight: float) -> F64:
    """Measurement noise variances ``[N,4]`` (the diagonal of R) for measurements ``z [N,4]``, ``scores [N]``."""
    std = r_meas * _scales(z)
    if scores is not None:
        k = 1.0 - score_noise_weight * np.minimum(np.maximum(np.asarray(scores, dtype=np.float64), 0.0), 1.0)
        std *= k[:, None]
    std = np.maximum(std, 1e-3)
    return std * std


def initiate(z: F64, r_meas: float, init_vel_std: float) -> tuple[F64, F64]:
    """New tracks from measurements ``z [N,4]``: zero velocity, position std ``2*r_meas*size``, velocity std
    ``init_vel_std*size`` (per second). Returns ``mean [N,8]``, ``cov [N,3,4]``."""
    z = np.asarray(z, dtype=np.float64)
    n = z.shape[0]
    mean = np.zeros((n, 8))
    mean[:, :4] = z
    s2 = np.maximum(_scales(z), 1e-3) ** 2
    cov = np.zeros((n, 3, 4))
    cov[:, PP] = (2.0 * r_meas) ** 2 * s2
    cov[:, VV] = init_vel_std**2 * s2
    return mean, cov


def predict(
    mean: F64,
    cov: F64,
    dt: NDArray[np.floating] | float,
    q_pos: float,
    q_vel: float,
) -> tuple[F64, F64]:
    """Predict every track ``dt`` seconds ahead (``dt`` scalar or ``[T]``, >= 0).

    Per coordinate: ``p' = p + dt v``; ``PP' = PP + 2 dt PV + dt^2 VV + (q_pos s)^2 dt``, ``PV' = PV + dt VV``,
    ``VV' = VV + (q_vel s)^2 dt`` (``F P F^T + Q``). Widths/heights are kept >= 1 px.
    """
    d = np.asarray(dt, dtype=np.float64)
    if d.ndim:
        d = d[:, None]
    s2 = mean[:, _SIZE_COLS] ** 2
    new_mean = mean.copy()
    new_mean[:, :4] += d * mean[:, 4:]
    np.maximum(new_mean[:, 2:4], 1.0, out=new_mean[:, 2:4])
    pp, pv, vv = cov[:, PP], cov[:, PV], cov[:, VV]
    new_cov = np.empty_like(cov)
    new_cov[:, PP] = pp + d * (2.0 * pv + d * vv) + (q_pos * q_pos) * s2 * d
    new_cov[:, PV] = pv + d * vv
    new_cov[:, VV] = vv + (q_vel * q_vel) * s2 * d
    return new_mean, new_cov


def update(mean: F64, cov: F64, z: NDArray[np.floating], r_var: F64) -> tuple[F64, F64]:
    """Kalman correction of tracks ``[T]`` with their matched measurements ``z [T,4]`` (noise variances ``[T,4]``).

    Per coordinate: ``S = PP + r``; gains ``Kp = PP / S``, ``Kv = PV / S``; ``p += Kp y``, ``v += Kv y``
    (``y = z - p``); ``PP' = (1 - Kp) PP``, ``PV' = (1 - Kp) PV``, ``VV' = VV - Kv PV``.
    """
    z = np.asarray(z, dtype=np.float64)
    pp, pv, vv = cov[:, PP], cov[:, PV], cov[:, VV]
    s = pp + r_var
    kp = pp / s
    kv = pv / s
    innov = z - mean[:, :4]
    new_mean = np.empty_like(mean)
    new_mean[:, :4] = mean[:, :4] + kp * innov
    new_mean[:, 4:] = mean[:, 4:] + kv * innov
    new_cov = np.empty_like(cov)
    one_minus = 1.0 - kp
    new_cov[:, PP] = one_minus * pp
    new_cov[:, PV] = one_minus * pv
    new_cov[:, VV] = vv - kv * pv
    return new_mean, new_cov


def mahalanobis_sq(mean: F64, cov: F64, z: NDArray[np.floating], r_var: F64) -> F64:
    """Squared Mahalanobis distance ``[T,N]`` of measurements ``z [N,4]`` to each track's predicted measurement.

    ``r_var [T,4]``: the measurement noise assumed for each track. The innovation covariance is diagonal.
    """
    t, n = mean.shape[0], np.asarray(z).shape[0]
    if t == 0 or n == 0:
        return np.zeros((t, n))
    s = cov[:, PP] + r_var  # [T,4]
    d = np.asarray(z, dtype=np.float64)[None, :, :] - mean[:, None, :4]  # [T,N,4]
    return np.einsum("tnk,tnk,tk->tn", d, d, 1.0 / s)


def full_covariance(cov: F64) -> F64:
    """The ``[T,8,8]`` covariance matrices that ``cov [T,3,4]`` stands for."""
    t = cov.shape[0]
    full = np.zeros((t, 8, 8))
    i = np.arange(4)
    full[:, i, i] = cov[:, PP]
    full[:, i, i + 4] = cov[:, PV]
    full[:, i + 4, i] = cov[:, PV]
    full[:, i + 4, i + 4] = cov[:, VV]
    return full


def warp_affine(mean: F64, cov: F64, warp: NDArray[np.floating]) -> tuple[F64, F64]:
    """Move every track into the next frame's image coordinates after a camera motion (BoT-SORT's GMC).

    ``warp [2,3]`` = ``[[a11, a12, tx], [a21, a22, ty]]`` maps a pixel ``p`` of the previous frame to ``A p + t``
    in this one. Centres map through the full affine, centre velocities through ``A``; widths (and their
    velocities) scale by ``hypot(a11, a21)``, heights by ``hypot(a12, a22)``. Covariances: the diagonal of
    ``A P A^T`` per block (``var(x') = a11^2 var(x) + a12^2 var(y)``, ...); the cross-coordinate correlations a
    rotation would create are dropped to keep the block structure (exact for pan and zoom, whose ``A`` is
    diagonal). Returns new ``mean [T,8]``, ``cov [T,3,4]``.
    """
    w = np.asarray(warp, dtype=np.float64).reshape(2, 3)
    a = w[:, :2]
    sx = float(np.hypot(a[0, 0], a[1, 0]))
    sy = float(np.hypot(a[0, 1], a[1, 1]))
    new_mean = mean.copy()
    new_mean[:, 0:2] = mean[:, 0:2] @ a.T + w[:, 2]
    new_mean[:, 4:6] = mean[:, 4:6] @ a.T
    new_mean[:, [2, 6]] *= sx
    new_mean[:, [3, 7]] *= sy
    np.maximum(new_mean[:, 2:4], 1.0, out=new_mean[:, 2:4])
    a2 = a * a
    new_cov = cov.copy()
    new_cov[:, :, 0:2] = cov[:, :, 0:2] @ a2.T
    new_cov[:, :, 2] *= sx * sx
    new_cov[:, :, 3] *= sy * sy
    return new_mean, new_cov


def warp_boxes(boxes: NDArray[np.floating], warp: NDArray[np.floating]) -> F64:
    """``[N,4]`` xyxy boxes moved by the camera motion ``warp [2,3]`` (centre through the affine, sides scaled as
    in ``warp_affine``); NaN rows stay NaN."""
    b = np.asarray(boxes, dtype=np.float64)
    if b.shape[0] == 0:
        return b.copy()
    z = xyxy_to_cxcywh(b)
    w = np.asarray(warp, dtype=np.float64).reshape(2, 3)
    a = w[:, :2]
    z[:, 0:2] = z[:, 0:2] @ a.T + w[:, 2]
    z[:, 2] *= float(np.hypot(a[0, 0], a[1, 0]))
    z[:, 3] *= float(np.hypot(a[0, 1], a[1, 1]))
    return cxcywh_to_xyxy(z)
