"""Kalman filter: hand-computed predict/update, irregular time steps, gating vs a slow reference."""

from __future__ import annotations

import numpy as np
import pytest

from tracker_core.tracking import kalman


def _state(cx=100.0, cy=50.0, w=20.0, h=40.0, v=(10.0, -4.0, 0.0, 0.0)):
    mean = np.array([[cx, cy, w, h, *v]], dtype=np.float64)
    cov = np.diag([4.0, 9.0, 1.0, 1.0, 1.0, 2.0, 0.5, 0.5])[None].astype(np.float64)
    return mean, cov


def test_predict_matches_hand_computation():
    mean, cov = _state()
    m, p = kalman.predict(mean, cov, 0.5, q_pos=0.1, q_vel=0.2)
    # x' = x + dt v
    np.testing.assert_allclose(m[0], [105.0, 48.0, 20.0, 40.0, 10.0, -4.0, 0.0, 0.0])
    # P_xx' = P_xx + dt^2 P_vv + (q_pos w)^2 dt = 4 + 0.25 + 4 * 0.5
    assert p[0, 0, 0] == pytest.approx(4.0 + 0.25 * 1.0 + (0.1 * 20.0) ** 2 * 0.5)
    # P_yy' = 9 + 0.25 * 2 + (0.1 * 40)^2 * 0.5 (y scales with the height)
    assert p[0, 1, 1] == pytest.approx(9.0 + 0.25 * 2.0 + (0.1 * 40.0) ** 2 * 0.5)
    # cross term P_xv' = dt P_vv; P_vv' = P_vv + (q_vel w)^2 dt
    assert p[0, 0, 4] == pytest.approx(0.5) and p[0, 4, 0] == pytest.approx(0.5)
    assert p[0, 4, 4] == pytest.approx(1.0 + (0.2 * 20.0) ** 2 * 0.5)
    # inputs untouched
    np.testing.assert_array_equal(mean, _state()[0])
    np.testing.assert_array_equal(cov, _state()[1])


def test_predict_zero_dt_is_identity():
    mean, cov = _state()
    m, p = kalman.predict(mean, cov, 0.0, 0.1, 0.1)
    np.testing.assert_allclose(m, mean)
    np.testing.assert_allclose(p, cov)


def test_predict_per_track_dt_equals_scalar_dt_rows():
    mean = np.vstack([_state()[0], _state(cx=300, v=(-5, 2, 1, 1))[0]])
    cov = np.concatenate([_state()[1], _state()[1] * 2])
    m_vec, p_vec = kalman.predict(mean, cov, np.array([0.3, 1.7]), 0.05, 0.1)
    for i, dt in enumerate([0.3, 1.7]):
        m1, p1 = kalman.predict(mean[i : i + 1], cov[i : i + 1], dt, 0.05, 0.1)
        np.testing.assert_allclose(m_vec[i], m1[0])
        np.testing.assert_allclose(p_vec[i], p1[0])


def test_irregular_time_steps_reach_the_same_mean_and_uncertainty_grows_with_time():
    mean, cov = _state()
    # 0.1 + 0.25 + 0.65 s in irregular steps vs one 1.0 s step: same mean (constant velocity)
    m, p = mean, cov
    for dt in (0.1, 0.25, 0.65):
        m, p = kalman.predict(m, p, dt, 0.05, 0.1)
    m1, p1 = kalman.predict(mean, cov, 1.0, 0.05, 0.1)
    np.testing.assert_allclose(m, m1)
    # a dropped frame (longer gap) means more uncertainty than a short one
    _, p_short = kalman.predict(mean, cov, 1 / 30, 0.05, 0.1)
    assert np.all(np.diag(p1[0]) > np.diag(p_short[0]))


def test_update_matches_hand_computation():
    mean = np.array([[100.0, 50.0, 20.0, 40.0, 1.0, 0.0, 0.0, 0.0]])
    cov = np.diag([6.0, 6.0, 6.0, 6.0, 4.0, 4.0, 4.0, 4.0])[None].astype(np.float64)
    cov[0, 0, 4] = cov[0, 4, 0] = 3.0  # x and vx correlated
    r = np.diag([2.0, 2.0, 2.0, 2.0])[None]
    z = np.array([[108.0, 50.0, 20.0, 40.0]])
    m, p = kalman.update(mean, cov, z, r)
    # S_x = 6 + 2 = 8; K_x = 6/8; K_vx = 3/8; innovation 8
    assert m[0, 0] == pytest.approx(100.0 + 0.75 * 8.0)
    assert m[0, 4] == pytest.approx(1.0 + 3.0 / 8.0 * 8.0)
    np.testing.assert_allclose(m[0, [1, 2, 3, 5, 6, 7]], [50.0, 20.0, 40.0, 0.0, 0.0, 0.0])
    assert p[0, 0, 0] == pytest.approx(6.0 - 6.0 * 6.0 / 8.0)  # (1 - K) P
    assert p[0, 4, 4] == pytest.approx(4.0 - 3.0 * 3.0 / 8.0)
    assert p[0, 0, 4] == pytest.approx(3.0 - 6.0 * 3.0 / 8.0)


def test_confident_detections_pull_harder():
    z = np.array([[100.0, 100.0, 30.0, 60.0]])
    low = kalman.measurement_noise(z, np.array([0.1]), 0.1, 0.5)
    high = kalman.measurement_noise(z, np.array([0.95]), 0.1, 0.5)
    assert np.all(np.diag(high[0]) < np.diag(low[0]))
    # std = r_meas * size * (1 - w * score): x scales with the width, y with the height
    np.testing.assert_allclose(np.sqrt(np.diag(low[0])), 0.1 * np.array([30, 60, 30, 60]) * (1 - 0.05))
    mean, cov = kalman.initiate(np.array([[90.0, 100.0, 30.0, 60.0]]), 0.1, 0.5)
    m_low, _ = kalman.update(mean, cov, z, low)
    m_high, _ = kalman.update(mean, cov, z, high)
    assert abs(m_high[0, 0] - 100.0) < abs(m_low[0, 0] - 100.0)


def test_mahalanobis_matches_slow_reference():
    rng = np.random.default_rng(0)
    t, n = 5, 7
    z_tracks = rng.uniform(50, 500, (t, 4))
    z_tracks[:, 2:] = rng.uniform(20, 80, (t, 2))
    mean, cov = kalman.initiate(z_tracks, 0.1, 0.5)
    mean, cov = kalman.predict(mean, cov, 0.4, 0.05, 0.1)
    dets = rng.uniform(50, 500, (n, 4))
    dets[:, 2:] = rng.uniform(20, 80, (n, 2))
    r = kalman.measurement_noise(mean[:, :4], None, 0.1, 0.0)
    fast = kalman.mahalanobis_sq(mean, cov, dets, r)
    slow = np.zeros((t, n))
    for i in range(t):
        s_inv = np.linalg.inv(cov[i, :4, :4] + r[i])
        for j in range(n):
            d = dets[j] - mean[i, :4]
            slow[i, j] = d @ s_inv @ d
    np.testing.assert_allclose(fast, slow, rtol=1e-9)
    assert kalman.mahalanobis_sq(mean[:0], cov[:0], dets, r[:0]).shape == (0, n)


def test_box_conversions_round_trip():
    b = np.array([[10.0, 20.0, 50.0, 100.0], [-5.0, 0.0, 5.0, 8.0]])
    np.testing.assert_allclose(kalman.cxcywh_to_xyxy(kalman.xyxy_to_cxcywh(b)), b)
    np.testing.assert_allclose(kalman.xyxy_to_cxcywh(b)[0], [30.0, 60.0, 40.0, 80.0])
