"""Issue 21: the association's appearance rules read on each stream's own distance scale (``costs``: separation,
calibration, false-match rate, exits, the veto for lost and proven tracks), tested against slow references."""

from __future__ import annotations

import numpy as np
import pytest

from tracker_core.errors import ConfigError
from tracker_core.tracking import DEFAULT_CONFIG, TrackerConfig, costs


def _hist(values) -> np.ndarray:
    return costs.distance_histogram(np.zeros(costs.CALIBRATION_BINS), np.asarray(values, np.float64), 1.0)


def test_histogram_discounts_and_quantiles_follow_the_values():
    rng = np.random.default_rng(0)
    v = rng.uniform(0.1, 0.6, 5000)
    h = _hist(v)
    assert h.sum() == 5000
    for q in (0.1, 0.5, 0.9):
        assert costs.histogram_quantile(h, q) == pytest.approx(np.quantile(v, q), abs=0.01)
    h2 = costs.distance_histogram(h, np.array([0.95]), 0.5)
    assert h2.sum() == pytest.approx(2501) and h.sum() == 5000  # a new array, the old one discounted
    assert np.isnan(costs.histogram_quantile(np.zeros(costs.CALIBRATION_BINS), 0.5))


def _auc_reference(own, rivals) -> float:
    """Slow reference: P(rival farther than a sure match), ties half, on the histogram's bins."""
    b = costs.CALIBRATION_BINS
    o = np.minimum((np.asarray(own) * b).astype(int), b - 1)
    r = np.minimum((np.asarray(rivals) * b).astype(int), b - 1)
    wins = sum(float((r > x).sum()) + 0.5 * float((r == x).sum()) for x in o)
    return wins / (len(o) * len(r))


def test_separation_is_a_rank_statistic_with_a_confidence_bound():
    rng = np.random.default_rng(1)
    own, rivals = rng.uniform(0.0, 0.3, 400), rng.uniform(0.1, 0.5, 2000)
    s = costs.separation(_hist(own), _hist(rivals), z=0.0)
    assert s == pytest.approx(2 * _auc_reference(own, rivals) - 1, abs=1e-9)
    # the same for a monotone rescaling of the distances (a ReID model's narrow range vs the oracle's wide one)
    assert costs.separation(_hist(own * 0.4), _hist(rivals * 0.4), 0.0) == pytest.approx(s, abs=0.03)
    # random: ~0; constant: exactly 0; and the bound keeps a few lucky matches from proving anything
    same = rng.uniform(0, 1, 300)
    assert abs(costs.separation(_hist(same), _hist(rng.uniform(0, 1, 3000)), 0.0)) < 0.1
    assert costs.separation(_hist(np.zeros(50)), _hist(np.zeros(500)), 0.0) == 0.0
    few = costs.separation(_hist([0.0, 0.0, 0.0]), _hist([0.5] * 30), z=2.0)
    many = costs.separation(_hist([0.0] * 300), _hist([0.5] * 3000), z=2.0)
    assert few < 0.55 <= many <= 1.0
    assert costs.separation(np.zeros(costs.CALIBRATION_BINS), _hist([0.5]), 2.0) == 0.0


def test_calibration_maps_the_streams_same_and_other_distances_to_0_and_one_half():
    own, rivals = np.full(100, 0.05), np.full(300, 0.25)
    scale = costs.distance_scale(_hist(own), _hist(rivals))
    assert scale.same == pytest.approx(0.05, abs=0.005) and scale.other == pytest.approx(0.25, abs=0.005)
    d = np.array([0.0, scale.same, scale.other, 0.9, np.nan, np.inf])
    out = costs.calibrate(d, scale)
    np.testing.assert_allclose(out[:4], [0.0, 0.0, 0.5, 1.0], atol=1e-9)
    assert np.isnan(out[4]) and np.isinf(out[5])
    # the ideal embeddings' scale (and any stream whose rivals are no farther than its matches) changes nothing
    assert costs.distance_scale(_hist(rivals), _hist(own)) == costs.DistanceScale()
    x = np.linspace(0, 1, 11)
    np.testing.assert_array_equal(costs.calibrate(x, costs.DistanceScale()), x)


def test_false_match_rate_is_the_share_of_rivals_at_least_that_alike():
    rng = np.random.default_rng(2)
    rivals = rng.uniform(0.2, 0.6, 4000)
    h = _hist(rivals)
    d = np.array([0.0, 0.2, 0.4, 0.6, 1.0, np.inf])
    expected = [(rivals <= x).mean() if np.isfinite(x) else 1.0 for x in d]
    np.testing.assert_allclose(costs.false_match_rate(h, d), expected, atol=0.01)
    np.testing.assert_array_equal(costs.false_match_rate(np.zeros(costs.CALIBRATION_BINS), d), np.ones(6))


def test_sure_pair_distances_split_sure_matches_from_their_rivals():
    motion = np.array([[0.1, 0.9, 0.7], [0.9, 0.2, 0.9]])  # track 0 <-> det 0 and track 1 <-> det 1 are sure
    app = np.array([[0.05, 0.4, 0.3], [0.35, 0.02, np.nan]])
    own, rivals = costs.sure_pair_distances(app, motion, confident=0.3)
    assert sorted(own.tolist()) == [0.02, 0.05]
    # rivals: the sure pairs' tracks to the other detections, their detections to the other tracks (finite)
    assert sorted(rivals.tolist()) == sorted([0.4, 0.3, 0.35, 0.35, 0.4])


def test_left_view_needs_the_edge_and_a_way_out():
    extent = np.array([0.0, 0.0, 800.0, 600.0])
    boxes = np.array(
        [[5, 100, 45, 200], [5, 100, 45, 200], [400, 100, 440, 200], [760, 100, 798, 200]], float
    )
    vel = np.array([[-20.0, 0], [20.0, 0], [-20.0, 0], [30.0, 0]])
    np.testing.assert_array_equal(costs.left_view(boxes, vel, extent, 0.5), [True, False, False, True])
    assert not costs.left_view(boxes, vel, np.array([np.inf, np.inf, -np.inf, -np.inf]), 0.5).any()


def test_rival_agrees_names_pairs_someone_else_claims():
    # track 0 looks like det 0, track 1 like det 1; det 2 (a loose box) looks like nobody
    app = np.array([[0.05, 0.5, 0.6], [0.5, 0.1, 0.7]])
    r = costs.rival_agrees(app, gate=0.35)
    ref = np.zeros(app.shape, bool)
    for t in range(2):
        for n in range(3):
            others_t = [t2 for t2 in range(2) if t2 != t and app[t2, n] <= 0.35]
            others_n = [n2 for n2 in range(3) if n2 != n and app[t, n2] <= 0.35]
            ref[t, n] = bool(others_t or others_n)
    np.testing.assert_array_equal(r, ref)
    assert r[0, 1] and r[1, 0]
    # one track, its own (far-looking, loose) box and nobody else: no rival claims anything
    assert not costs.rival_agrees(np.array([[0.6]]), 0.35).any()
    assert not costs.rival_agrees(np.array([[0.6, 0.7]]), 0.35).any()
    assert not costs.rival_agrees(np.full((2, 2), np.nan), 0.35).any()


def test_veto_spares_sure_lone_pairs_and_with_rivals_boxes_that_look_like_nobody():
    motion = np.array([[0.1, 0.9, 0.5], [0.9, 0.5, 0.6]])
    app = np.array([[0.9, 0.6, 0.9], [0.6, 0.1, 0.95]])
    veto = costs.appearance_veto(app, motion, 0.3, 0.8, 0.5)
    # (0, 0) is sure but not lone (det 2 is plausible for track 0 too): vetoed; the rest as far as appearance says
    np.testing.assert_array_equal(veto, [[True, True, True], [True, False, True]])
    lone = np.array([[0.1, 0.9], [0.9, 0.5]])
    assert not costs.appearance_veto(np.array([[0.9, 0.6], [0.6, 0.1]]), lone, 0.3, 0.8, 0.5)[0, 0]
    # with the rival rule only pairs another object claims stay vetoed: det 2 looks like nobody
    both = veto & costs.rival_agrees(app, 0.35)
    # (1, 0) and (1, 2): track 1 looks like det 1, its own person is elsewhere
    np.testing.assert_array_equal(both, [[False, True, False], [True, False, True]])


def test_calibration_fields_are_validated():
    for bad in (
        {"appearance_veto_dist": 1.5},
        {"appearance_veto_max_error": 2.0},
        {"reid_max_false_match": 1.1},
        {"appearance_veto_rival": 1},
        {"appearance_min_separation": 0.9, "appearance_separation_ref": 0.8},
    ):
        with pytest.raises(ConfigError):
            TrackerConfig(**bad)
    assert DEFAULT_CONFIG.appearance_calibrated and DEFAULT_CONFIG.appearance_veto_rival
