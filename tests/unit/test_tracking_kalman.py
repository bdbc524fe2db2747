"""Kalman filter: hand-computed predict/update, irregular time steps, and a textbook 8x8 reference."""

from __future__ import annotations

import numpy as np
import pytest

from tracker_core.tracking import kalman
from tracker_core.tracking.kalman import PP, PV, VV


def _state(cx=100.0, cy=50.0, w=20.0, h=40.0, v=(10.0, -4.0, 0.0, 0.0)):
    mean = np.array([[cx, cy, w, h, *v]], dtype=np.float64)
    cov = np.zeros((1, 3, 4))
    cov[0, PP] = [4.0, 9.0, 1.0, 1.0]
    cov[0, VV] = [1.0, 2.0, 0.5, 0.5]
    return mean, cov


# ------------------------------------------------------------------ textbook reference (full 8x8 matrices)
def _ref_predict(mean, full, dt, q_pos, q_vel):
    f = np.eye(8)
    f[:4, 4:] = dt * np.eye(4)
    s = mean[[2, 3, 2, 3]]
    q = np.diag(np.concatenate([(q_pos * s) ** 2, (q_vel * s) ** 2]) * dt)
    m = f @ mean
    m[2:4] = np.maximum(m[2:4], 1.0)  # our filter keeps boxes >= 1 px
    return m, f @ full @ f.T + q


def _ref_update(mean, full, z, r_var):
    h = np.hstack([np.eye(4), np.zeros((4, 4))])
    s = h @ full @ h.T + np.diag(r_var)
    k = full @ h.T @ np.linalg.inv(s)
    return mean + k @ (z - h @ mean), (np.eye(8) - k @ h) @ full


def test_predict_matches_hand_computation():
    mean, cov = _state()
    m, p = kalman.predict(mean, cov, 0.5, q_pos=0.1, q_vel=0.2)
    np.testing.assert_allclose(m[0], [105.0, 48.0, 20.0, 40.0, 10.0, -4.0, 0.0, 0.0])  # x' = x + dt v
    # var(x)' = 4 + dt^2 * 1 + (q_pos * w)^2 dt ; var(y)' uses the height
    assert p[0, PP, 0] == pytest.approx(4.0 + 0.25 * 1.0 + (0.1 * 20.0) ** 2 * 0.5)
    assert p[0, PP, 1] == pytest.approx(9.0 + 0.25 * 2.0 + (0.1 * 40.0) ** 2 * 0.5)
    assert p[0, PV, 0] == pytest.approx(0.5 * 1.0)  # cov(x, vx)' = dt var(vx)
    assert p[0, VV, 0] == pytest.approx(1.0 + (0.2 * 20.0) ** 2 * 0.5)
    np.testing.assert_array_equal(mean, _state()[0])  # inputs untouched
    np.testing.assert_array_equal(cov, _state()[1])


def test_update_matches_hand_computation():
    mean = np.array([[100.0, 50.0, 20.0, 40.0, 1.0, 0.0, 0.0, 0.0]])
    cov = np.zeros((1, 3, 4))
    cov[0, PP] = 6.0
    cov[0, VV] = 4.0
    cov[0, PV, 0] = 3.0  # x and vx correlated
    r = np.full((1, 4), 2.0)
    m, p = kalman.update(mean, cov, np.array([[108.0, 50.0, 20.0, 40.0]]), r)
    # S_x = 6 + 2 = 8; K_x = 6/8; K_vx = 3/8; innovation 8
    assert m[0, 0] == pytest.approx(100.0 + 0.75 * 8.0)
    assert m[0, 4] == pytest.approx(1.0 + 3.0 / 8.0 * 8.0)
    np.testing.assert_allclose(m[0, [1, 2, 3, 5, 6, 7]], [50.0, 20.0, 40.0, 0.0, 0.0, 0.0])
    assert p[0, PP, 0] == pytest.approx(6.0 - 6.0 * 6.0 / 8.0)  # (1 - K) P
    assert p[0, VV, 0] == pytest.approx(4.0 - 3.0 * 3.0 / 8.0)
    assert p[0, PV, 0] == pytest.approx(3.0 - 6.0 * 3.0 / 8.0)


def test_block_filter_equals_textbook_8x8_filter_over_a_random_run():
    rng = np.random.default_rng(0)
    z0 = np.array([[200.0, 150.0, 30.0, 70.0], [400.0, 300.0, 50.0, 120.0]])
    mean, cov = kalman.initiate(z0, 0.1, 0.5)
    ref = [(mean[i].copy(), kalman.full_covariance(cov)[i]) for i in range(2)]
    for _ in range(25):
        dt = rng.uniform(0.02, 0.8)  # irregular steps
        mean, cov = kalman.predict(mean, cov, dt, 0.05, 0.1)
        ref = [_ref_predict(m, p, dt, 0.05, 0.1) for m, p in ref]
        if rng.uniform() < 0.7:
            z = mean[:, :4] + rng.normal(0, 2.0, (2, 4))
            r = kalman.measurement_var(z, rng.uniform(0.3, 1.0, 2), 0.1, 0.5)
            mean, cov = kalman.update(mean, cov, z, r)
            ref = [_ref_update(m, p, z[i], r[i]) for i, (m, p) in enumerate(ref)]
        full = kalman.full_covariance(cov)
        for i, (m, p) in enumerate(ref):
            np.testing.assert_allclose(mean[i], m, rtol=1e-9, atol=1e-9)
            np.testing.assert_allclose(full[i], p, rtol=1e-9, atol=1e-9)


def test_predict_zero_dt_is_identity_and_per_track_dt_matches_scalar():
    mean, cov = _state()
    m, p = kalman.predict(mean, cov, 0.0, 0.1, 0.1)
    np.testing.assert_allclose(m, mean)
    np.testing.assert_allclose(p, cov)
    mean2 = np.vstack([mean, _state(cx=300, v=(-5, 2, 1, 1))[0]])
    cov2 = np.concatenate([cov, cov * 2])
    mv, pv = kalman.predict(mean2, cov2, np.array([0.3, 1.7]), 0.05, 0.1)
    for i, dt in enumerate([0.3, 1.7]):
        m1, p1 = kalman.predict(mean2[i : i + 1], cov2[i : i + 1], dt, 0.05, 0.1)
        np.testing.assert_allclose(mv[i], m1[0])
        np.testing.assert_allclose(pv[i], p1[0])


def test_irregular_time_steps_reach_the_same_mean_and_uncertainty_grows_with_time():
    mean, cov = _state()
    m, p = mean, cov
    for dt in (0.1, 0.25, 0.65):  # irregular steps summing to 1 s
        m, p = kalman.predict(m, p, dt, 0.05, 0.1)
    m1, p1 = kalman.predict(mean, cov, 1.0, 0.05, 0.1)
    np.testing.assert_allclose(m, m1)
    np.testing.assert_allclose(p[0, VV], p1[0, VV])  # velocity random walk: variance linear in time
    _, p_short = kalman.predict(mean, cov, 1 / 30, 0.05, 0.1)  # a dropped frame means more uncertainty
    assert np.all(p1[0, PP] > p_short[0, PP]) and np.all(p1[0, VV] > p_short[0, VV])


def test_confident_detections_pull_harder():
    z = np.array([[100.0, 100.0, 30.0, 60.0]])
    low = kalman.measurement_var(z, np.array([0.1]), 0.1, 0.5)
    high = kalman.measurement_var(z, np.array([0.95]), 0.1, 0.5)
    assert np.all(high < low)
    # std = r_meas * size * (1 - w * score): x scales with the width, y with the height
    np.testing.assert_allclose(np.sqrt(low[0]), 0.1 * np.array([30, 60, 30, 60]) * (1 - 0.05))
    mean, cov = kalman.initiate(np.array([[90.0, 100.0, 30.0, 60.0]]), 0.1, 0.5)
    m_low, _ = kalman.update(mean, cov, z, low)
    m_high, _ = kalman.update(mean, cov, z, high)
    assert abs(m_high[0, 0] - 100.0) < abs(m_low[0, 0] - 100.0)


def test_mahalanobis_matches_textbook_reference():
    rng = np.random.default_rng(0)
    t, n = 5, 7
    z_tracks = np.hstack([rng.uniform(50, 500, (t, 2)), rng.uniform(20, 80, (t, 2))])
    mean, cov = kalman.initiate(z_tracks, 0.1, 0.5)
    mean, cov = kalman.predict(mean, cov, 0.4, 0.05, 0.1)
    dets = np.hstack([rng.uniform(50, 500, (n, 2)), rng.uniform(20, 80, (n, 2))])
    r = kalman.measurement_var(mean[:, :4], None, 0.1, 0.0)
    fast = kalman.mahalanobis_sq(mean, cov, dets, r)
    full = kalman.full_covariance(cov)
    slow = np.zeros((t, n))
    for i in range(t):
        s_inv = np.linalg.inv(full[i, :4, :4] + np.diag(r[i]))
        for j in range(n):
            d = dets[j] - mean[i, :4]
            slow[i, j] = d @ s_inv @ d
    np.testing.assert_allclose(fast, slow, rtol=1e-9)
    assert kalman.mahalanobis_sq(mean[:0], cov[:0], dets, r[:0]).shape == (0, n)


def test_box_conversions_round_trip():
    b = np.array([[10.0, 20.0, 50.0, 100.0], [-5.0, 0.0, 5.0, 8.0]])
    np.testing.assert_allclose(kalman.cxcywh_to_xyxy(kalman.xyxy_to_cxcywh(b)), b)
    np.testing.assert_allclose(kalman.xyxy_to_cxcywh(b)[0], [30.0, 60.0, 40.0, 80.0])


# ------------------------------------------------------------------ camera motion (GMC)
def _ref_warp(mean, full, warp):
    """Textbook: the 8x8 transform of BoT-SORT's GMC for a pan/zoom (diagonal A): x' = M x + t, P' = M P M^T."""
    a = warp[:, :2]
    sx, sy = np.hypot(a[0, 0], a[1, 0]), np.hypot(a[0, 1], a[1, 1])
    m4 = np.zeros((4, 4))
    m4[:2, :2] = a
    m4[2, 2], m4[3, 3] = sx, sy
    m8 = np.kron(np.eye(2), m4)
    out = m8 @ mean
    out[:2] += warp[:, 2]
    return out, m8 @ full @ m8.T


@pytest.mark.parametrize(
    "warp",
    [
        np.array([[1.0, 0.0, 12.5], [0.0, 1.0, -3.0]]),  # pan
        np.array([[1.08, 0.0, -40.0], [0.0, 1.08, -22.0]]),  # zoom in about a point
        np.array([[0.97, 0.0, 5.0], [0.0, 0.95, 1.0]]),  # anisotropic zoom out
    ],
)
def test_warp_matches_the_textbook_transform_for_pan_and_zoom(warp):
    rng = np.random.default_rng(3)
    mean = np.array([[300.0, 200.0, 40.0, 90.0, 12.0, -5.0, 0.5, 1.0], [50.0, 400.0, 20.0, 60.0, 0, 0, 0, 0]])
    cov = np.abs(rng.normal(1.0, 0.3, (2, 3, 4)))
    m, p = kalman.warp_affine(mean, cov, warp)
    full = kalman.full_covariance(cov)
    got = kalman.full_covariance(p)
    for i in range(2):
        ref_m, ref_p = _ref_warp(mean[i], full[i], warp)
        np.testing.assert_allclose(m[i], ref_m, rtol=1e-12)
        np.testing.assert_allclose(got[i], ref_p, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(mean[0, 0], 300.0)  # inputs untouched


def test_warp_of_a_rotation_keeps_the_diagonal_of_the_full_transform():
    th = 0.05
    warp = np.array([[np.cos(th), -np.sin(th), 3.0], [np.sin(th), np.cos(th), -1.0]])
    mean, cov = _state()
    m, p = kalman.warp_affine(mean, cov, warp)
    c = np.array([100.0, 50.0])
    np.testing.assert_allclose(m[0, :2], warp[:, :2] @ c + warp[:, 2])
    full = kalman.full_covariance(cov)[0]
    idx = [0, 1]
    rot = full[np.ix_(idx, idx)]
    np.testing.assert_allclose(
        kalman.full_covariance(p)[0][[0, 1], [0, 1]], np.diag(warp[:, :2] @ rot @ warp[:, :2].T)
    )


def test_warp_boxes_moves_boxes_like_track_states():
    warp = np.array([[1.1, 0.0, -10.0], [0.0, 1.1, 4.0]])
    boxes = np.array([[10.0, 20.0, 50.0, 100.0]])
    mean, cov = kalman.initiate(kalman.xyxy_to_cxcywh(boxes), 0.1, 0.5)
    m, _ = kalman.warp_affine(mean, cov, warp)
    np.testing.assert_allclose(kalman.warp_boxes(boxes, warp), kalman.cxcywh_to_xyxy(m[:, :4]))
    np.testing.assert_allclose(kalman.warp_boxes(boxes, warp), [[1.0, 26.0, 45.0, 114.0]])
