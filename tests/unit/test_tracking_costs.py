"""Cost functions and the matching contract on crafted cases."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tracker_core.tracking import costs
from tracker_core.tracking.matching import linear_assignment

A = np.array([[0.0, 0.0, 10.0, 10.0], [100.0, 100.0, 120.0, 140.0]])


def test_iou_identical_disjoint_and_partial():
    d = costs.iou_distance(A, A)
    np.testing.assert_allclose(np.diag(d), [0.0, 0.0])
    np.testing.assert_allclose(d[0, 1], 1.0)  # disjoint
    half = np.array([[5.0, 0.0, 15.0, 10.0]])  # overlaps A[0] by 50: IoU 50/150
    assert costs.iou_matrix(A[:1], half)[0, 0] == pytest.approx(50.0 / 150.0)


@pytest.mark.parametrize("t,n", [(0, 3), (3, 0), (0, 0)])
def test_empty_inputs_give_empty_matrices(t, n):
    a = np.zeros((t, 4))
    b = np.tile([[0.0, 0.0, 1.0, 1.0]], (n, 1))
    assert costs.iou_distance(a, b).shape == (t, n)
    assert costs.iou_distance(a, b, buffer=0.5).shape == (t, n)
    assert costs.cosine_distance(np.ones((t, 8)), np.ones((n, 8))).shape == (t, n)
    assert costs.class_gate(np.zeros(t, int), np.zeros(n, int)).shape == (t, n)
    m, ur, uc = linear_assignment(np.zeros((t, n)), 0.5)
    assert m.shape == (0, 2) and ur.tolist() == list(range(t)) and uc.tolist() == list(range(n))


def test_buffered_iou_links_near_but_disjoint_boxes():
    track = np.array([[0.0, 0.0, 10.0, 20.0]])
    det = np.array([[12.0, 0.0, 22.0, 20.0]])  # 2 px gap
    assert costs.iou_distance(track, det)[0, 0] == 1.0
    assert costs.iou_distance(track, det, buffer=0.3)[0, 0] < 1.0
    # identical boxes stay at distance 0 whatever the buffer
    assert costs.iou_distance(track, track, buffer=np.array([0.7]))[0, 0] == pytest.approx(0.0)


def test_costs_never_mutate_inputs():
    a, b = A.copy(), A[::-1].copy()
    cost = costs.iou_distance(a, b, buffer=0.2)
    forbidden = np.array([[True, False], [False, False]])
    gated = costs.gate(cost, forbidden)
    assert np.isinf(gated[0, 0]) and np.isfinite(cost[0, 0])
    np.testing.assert_array_equal(a, A)
    np.testing.assert_array_equal(b, A[::-1])


def test_mahalanobis_and_class_gates():
    maha = np.array([[1.0, 20.0]])
    assert costs.mahalanobis_gate(maha, 9.4877).tolist() == [[False, True]]
    assert not costs.mahalanobis_gate(maha, 0.0).any()
    assert costs.class_gate(np.array([0, 1]), np.array([1, 1])).tolist() == [[True, True], [False, False]]


def test_cosine_distance_identical_opposite_and_bank():
    e = costs.normalize(np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
    d = costs.cosine_distance(e, np.vstack([e, -e[:1]]))
    assert d[0, 0] == pytest.approx(0.0) and d[1, 1] == pytest.approx(0.0)
    assert d[0, 1] == pytest.approx(0.5)  # orthogonal
    assert d[0, 2] == pytest.approx(1.0)  # opposite
    # a bank entry close to the query lowers the distance; invalid entries are ignored
    bank = np.zeros((2, 2, 3), np.float32)
    bank[0, 0] = [0.0, 0.0, 1.0]
    bank[0, 1] = [0.0, 1.0, 0.0]
    valid = np.array([[True, False], [False, False]])
    q = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]], np.float32)
    db = costs.cosine_distance(e, q, bank, valid)
    assert db[0, 0] == pytest.approx(0.0)  # via the bank
    assert db[0, 1] == pytest.approx(0.5)  # the matching bank entry is not valid


def test_appearance_margin_and_weight_fall_when_embeddings_are_uninformative():
    # motion is sure about track 0 <-> det 0 and track 1 <-> det 1
    motion = np.array([[0.1, 0.9, 1.0], [0.95, 0.05, 1.0]])
    good = np.array([[0.02, 0.5, 0.45], [0.55, 0.01, 0.5]])  # sure matches look alike, others do not
    m = costs.appearance_margin(good, motion, 0.3)
    assert m == pytest.approx(np.mean([0.5, 0.45, 0.55, 0.5]) - np.mean([0.02, 0.01]))
    assert costs.appearance_margin(np.full((2, 3), 0.4), motion, 0.3) == pytest.approx(0.0)  # constant
    rng = np.random.default_rng(0)
    e = costs.normalize(rng.standard_normal((2, 128)))
    d = costs.normalize(rng.standard_normal((3, 128)))
    assert abs(costs.appearance_margin(costs.cosine_distance(e, d), motion, 0.3)) < 0.15  # random: ~0
    assert costs.appearance_margin(good, np.full((2, 3), 0.9), 0.3) is None  # motion sure of nothing
    assert costs.appearance_margin(good[:, :1], motion[:, :1], 0.3) is None  # nothing to compare with
    nan_rows = good.copy()
    nan_rows[0] = np.nan  # track 0 has no embedding memory: judged on track 1 only
    assert costs.appearance_margin(nan_rows, motion, 0.3) == pytest.approx(np.mean([0.55, 0.5]) - 0.01)
    assert costs.appearance_weight(0.0, 0.5, 0.2) == 0.0
    assert costs.appearance_weight(-0.1, 0.5, 0.2) == 0.0
    assert costs.appearance_weight(0.1, 0.5, 0.2) == pytest.approx(0.25)
    assert costs.appearance_weight(0.9, 0.5, 0.2) == pytest.approx(0.5)
    np.testing.assert_array_equal(costs.fuse(motion, good, 0.0), motion)
    np.testing.assert_allclose(costs.fuse(motion[:, :1], good[:, :1], 0.5), [[0.06], [0.75]])


def _brute_force(cost, max_cost):
    """The matching with the largest total slack ``sum(max_cost - cost)`` over every partial matching."""
    t, n = cost.shape
    best, best_pairs = 0.0, []
    for k in range(1, min(t, n) + 1):
        for rows in itertools.combinations(range(t), k):
            for cols in itertools.permutations(range(n), k):
                if all(cost[r, c] <= max_cost for r, c in zip(rows, cols, strict=True)):
                    slack = sum(max_cost - cost[r, c] for r, c in zip(rows, cols, strict=True))
                    if slack > best + 1e-12:
                        best, best_pairs = slack, sorted(zip(rows, cols, strict=True))
    return best_pairs


def test_linear_assignment_contract_and_ceiling_against_brute_force():
    rng = np.random.default_rng(1)
    for _ in range(30):
        t, n = rng.integers(1, 5, size=2)
        cost = rng.uniform(0, 1, (t, n))
        cost[rng.uniform(size=(t, n)) < 0.2] = np.inf
        m, ur, uc = linear_assignment(cost, 0.6)
        assert all(cost[r, c] <= 0.6 for r, c in m)
        assert sorted(set(range(t)) - set(m[:, 0].tolist())) == ur.tolist()
        assert sorted(set(range(n)) - set(m[:, 1].tolist())) == uc.tolist()
        ref = _brute_force(cost, 0.6)
        got = sum(0.6 - cost[r, c] for r, c in m)
        assert got == pytest.approx(sum(0.6 - cost[r, c] for r, c in ref))


def test_linear_assignment_never_matches_above_ceiling():
    cost = np.array([[0.9, np.inf], [np.nan, 0.2]])
    m, ur, uc = linear_assignment(cost, 0.5)
    assert m.tolist() == [[1, 1]] and ur.tolist() == [0] and uc.tolist() == [0]


def test_centre_form_buffered_iou_matches_expanded_boxes_reference():
    from tracker_core.tracking.kalman import xyxy_to_cxcywh

    rng = np.random.default_rng(2)
    tl = rng.uniform(0, 200, (6, 2))
    tb = np.hstack([tl, tl + rng.uniform(5, 60, (6, 2))])
    dl = rng.uniform(0, 200, (5, 2))
    db = np.hstack([dl, dl + rng.uniform(5, 60, (5, 2))])
    buf = rng.uniform(0, 1, 6)
    fast = costs.buffered_iou_cxcywh(xyxy_to_cxcywh(tb), xyxy_to_cxcywh(db), buf)
    slow = np.array(
        [
            [
                costs.iou_matrix(
                    costs.expand_boxes(tb[i : i + 1], buf[i]), costs.expand_boxes(db[j : j + 1], buf[i])
                )[0, 0]
                for j in range(5)
            ]
            for i in range(6)
        ]
    )
    np.testing.assert_allclose(fast, slow, atol=1e-12)
    np.testing.assert_allclose(1.0 - costs.iou_distance(tb, db, buf), slow, atol=1e-12)
    np.testing.assert_allclose(
        costs.buffered_iou_cxcywh(xyxy_to_cxcywh(tb), xyxy_to_cxcywh(db)),
        costs.iou_matrix(tb, db),
        atol=1e-12,
    )


def test_height_modulated_iou_is_the_product_of_its_two_parts_against_a_slow_reference():
    """The tracker's one-pass height-modulated IoU equals IoU x vertical IoU, each checked box by box."""
    from tracker_core.tracking.kalman import xyxy_to_cxcywh

    rng = np.random.default_rng(7)
    tb = np.hstack([tl := rng.uniform(0, 200, (9, 2)), tl + rng.uniform(5, 60, (9, 2))])
    db = np.hstack([dl := rng.uniform(0, 200, (7, 2)), dl + rng.uniform(5, 60, (7, 2))])
    db[:4] = tb[:4] + rng.normal(0, 4, (4, 4))  # overlapping pairs as well as disjoint ones
    buf = rng.uniform(0, 1, 9)
    got = costs.height_modulated_iou_cxcywh(xyxy_to_cxcywh(tb), xyxy_to_cxcywh(db), buf)
    slow = np.zeros((9, 7))
    for i in range(9):
        for j in range(7):
            a = costs.expand_boxes(tb[i : i + 1], buf[i])[0]
            b = costs.expand_boxes(db[j : j + 1], buf[i])[0]
            iou = costs.iou_matrix(a[None], b[None])[0, 0]
            inter = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
            slow[i, j] = iou * inter / ((a[3] - a[1]) + (b[3] - b[1]) - inter)
    np.testing.assert_allclose(got, slow, atol=1e-12)
    assert (got[:4].diagonal() > 0).all() and (got == 0).any()
    assert costs.height_modulated_iou_cxcywh(np.zeros((0, 4)), xyxy_to_cxcywh(db)).shape == (0, 7)


def test_appearance_weight_has_a_dead_zone_and_reliability_scales_it_to_zero():
    assert costs.appearance_weight(0.04, 0.5, 0.2, min_margin=0.05) == 0.0  # exactly off below the dead zone
    assert costs.appearance_weight(0.125, 0.5, 0.2, min_margin=0.05) == pytest.approx(0.25)
    assert costs.appearance_weight(0.3, 0.5, 0.2, min_margin=0.05) == pytest.approx(0.5)
    assert costs.reliability(0.0, 0.3) == 1.0
    assert costs.reliability(0.15, 0.3) == pytest.approx(0.5)
    assert costs.reliability(0.3, 0.3) == 0.0 and costs.reliability(0.9, 0.3) == 0.0


def test_fused_gated_only_reranks_pairs_motion_allows():
    motion = np.array([[0.1, 0.5, 1.0], [0.6, 0.2, 0.95]])
    app = np.array([[0.5, 0.0, 0.0], [np.nan, 0.5, 0.0]])
    before = (motion.copy(), app.copy())
    out = costs.fused_gated(motion, app, 0.5, max_motion=0.8)
    np.testing.assert_array_equal(motion, before[0])  # inputs untouched
    np.testing.assert_array_equal(app, before[1])
    # pairs beyond the motion ceiling stay forbidden however alike they look (app 0.0)
    assert np.isinf(out[0, 2]) and np.isinf(out[1, 2])
    np.testing.assert_allclose(out[0, :2], [0.3, 0.25])
    assert out[1, 0] == pytest.approx(0.6)  # no memory (NaN): the motion cost
    # appearance flips which of two plausible pairs wins, never whether a pair is possible
    m, _, _ = linear_assignment(out, 1.0)
    assert m.tolist() == [[0, 1], [1, 0]] or m.tolist() == [[0, 0], [1, 1]]
    forb = costs.fused_gated(motion, app, 0.5, 0.8, forbidden=np.array([[True, False, False], [False] * 3]))
    assert np.isinf(forb[0, 0]) and np.isfinite(forb[1, 1])
    np.testing.assert_array_equal(costs.fused_gated(motion, app, 0.0, 0.8)[:, :2], motion[:, :2])


def test_sure_pairs_and_veto_spare_sure_unambiguous_motion_matches():
    motion = np.array([[0.1, 0.9, 0.95], [0.9, 0.5, 0.6]])
    np.testing.assert_array_equal(
        costs.sure_pairs(motion, 0.3), [[True, False, False], [False, False, False]]
    )
    app = np.array([[0.9, 0.9, 0.9], [0.9, 0.9, np.nan]])
    veto = costs.appearance_veto(app, motion, sure_motion=0.3, max_motion=0.8, max_dist=0.35)
    # (0,0): sure and alone -> never vetoed; (1,1) unsure and far -> vetoed; NaN -> never
    assert not veto[0, 0] and veto[1, 1] and not veto[1, 2]
    # the same sure pair with a competitor within the motion ceiling is vetoable
    crowded = motion.copy()
    crowded[1, 0] = 0.5
    assert costs.appearance_veto(app, crowded, 0.3, 0.8, 0.35)[0, 0]
    assert costs.veto_error_rate(app, motion, 0.3, 0.35) == 1.0
    assert costs.veto_error_rate(np.zeros((2, 3)), motion, 0.3, 0.35) == 0.0
    assert costs.veto_error_rate(app, np.ones((2, 3)), 0.3, 0.35) is None


def test_motion_plausible_bounds_distance_by_time_lost():
    last = np.array([[0.0, 0.0, 20.0, 100.0]])  # centre (10, 50), height 100
    seen = np.array([0.0])
    near = np.array([[150.0, 0.0, 170.0, 100.0]])  # 150 px = 1.5 heights away
    assert not costs.motion_plausible(last, seen, near, 0.2, max_speed=1.0, min_radius=1.0)[0, 0]
    assert costs.motion_plausible(last, seen, near, 0.6, max_speed=1.0, min_radius=1.0)[0, 0]
    times = np.array([0.2, 0.6])
    got = costs.motion_plausible(last, seen, np.vstack([near, near]), times, 1.0, 1.0)
    assert got.tolist() == [[False, True]]
    assert costs.motion_plausible(last, seen, np.zeros((0, 4)), 1.0, 1.0, 1.0).shape == (1, 0)


def test_worst_cosine_distance_needs_every_observation_to_agree():
    e = costs.normalize(np.eye(3, 8))
    bank = np.stack([np.stack([e[0], e[0]]), np.stack([e[0], e[1]])])  # query 1 saw two different objects
    valid = np.array([[True, True], [True, True]])
    d = costs.worst_cosine_distance(bank, valid, e[:2])
    np.testing.assert_allclose(d, [[0.0, 0.5], [0.5, 0.5]])
    d = costs.worst_cosine_distance(bank, np.array([[True, False], [True, False]]), e[:2])
    np.testing.assert_allclose(d, [[0.0, 0.5], [0.0, 0.5]])  # invalid entries ignored
    assert costs.worst_cosine_distance(bank, np.zeros((2, 2), bool), e[:2]).tolist() == [[1.0, 1.0]] * 2


def test_decisive_veto_settles_only_contested_pairs_with_a_decisive_gap():
    # two tracks both plausible for detection 0; detection 1 plausible only for track 1
    plausible = np.array([[True, False], [True, True]])
    app = np.array([[0.05, 0.5], [0.5, 0.05]])
    veto = costs.decisive_veto(app, plausible, accept=0.2, gap=0.2)
    # detection 0: track 0 agrees (0.05), track 1 does not (0.5) -> track 1 ruled out for it; the lone
    # plausible pair (1, 1) is never touched
    assert veto.tolist() == [[False, False], [True, False]]
    # no decisive gap, or a best distance above accept (a wrong embedding agreeing with nobody): no decision
    close = np.array([[0.05, 0.5], [0.2, 0.05]])
    assert not costs.decisive_veto(close, plausible, 0.2, 0.2).any()
    nobody = np.array([[0.45, 0.5], [0.5, 0.45]])
    assert not costs.decisive_veto(nobody, plausible, 0.2, 0.2).any()
    # a lone pair is spared whatever its distance
    lone = np.array([[True, False], [False, True]])
    assert not costs.decisive_veto(np.full((2, 2), 0.5), lone, 0.2, 0.2).any()
    # accept 0 disables; a NaN (track without memory) among the candidates blocks that decision
    assert not costs.decisive_veto(app, plausible, 0.0, 0.2).any()
    nan = np.array([[0.05, 0.5], [np.nan, 0.05]])
    assert not costs.decisive_veto(nan, plausible, 0.2, 0.2)[:, 0].any()


def test_decisive_veto_needs_a_trusted_decider():
    plausible = np.ones((2, 2), bool)
    app = np.array([[0.05, 0.5], [0.5, 0.5]])  # only track 0 recognises anything (detection 0)
    both = costs.decisive_veto(app, plausible, 0.2, 0.2)
    assert both.tolist() == [[False, True], [True, False]]
    # track 0 untrusted (e.g. its memory started on a wrong embedding): nothing is decided
    assert not costs.decisive_veto(app, plausible, 0.2, 0.2, trusted=np.array([False, True])).any()
    assert (
        costs.decisive_veto(app, plausible, 0.2, 0.2, trusted=np.array([True, False])).tolist()
        == both.tolist()
    )
    before = app.copy()
    costs.decisive_veto(app, plausible, 0.2, 0.2)
    np.testing.assert_array_equal(app, before)  # pure: inputs are not modified


def test_decisive_veto_never_overrules_a_clear_motion_preference():
    # both tracks may take detection 0 (detection 1 is elsewhere); detection 0 overlaps track 1 far better
    # (motion cost 0.1) than track 0 (0.7), yet its embedding names track 0: one wrong embedding must not hand
    # track 0 the detection by ruling track 1 out
    plausible = np.array([[True, False], [True, False]])
    app = np.array([[0.05, 0.5], [0.5, 0.5]])
    motion = np.array([[0.7, 0.9], [0.1, 0.9]])
    assert costs.decisive_veto(app, plausible, 0.2, 0.2).tolist() == [[False, False], [True, False]]
    gated = costs.decisive_veto(app, plausible, 0.2, 0.2, motion=motion, motion_gap=0.4)
    assert not gated.any()  # 0.1 < 0.7 - 0.4: motion clearly prefers (1, 0), it stays
    # an ambiguous crossing (similar motion costs) is still settled by appearance
    even = np.array([[0.3, 0.9], [0.35, 0.9]])
    gated = costs.decisive_veto(app, plausible, 0.2, 0.2, motion=even, motion_gap=0.4)
    assert gated.tolist() == [[False, False], [True, False]]


def test_misleading_counts_only_embeddings_that_name_a_rival():
    from tracker_core.tracking.costs import misleading_counts

    motion = np.array([[0.1, 0.9, 0.9], [0.9, 0.1, 0.9]])  # sure pairs: (0, 0) and (1, 1)
    # (0, 0) disagrees (0.9) and detection 0 looks like track 1 (0.05): misleading; (1, 1) agrees
    app = np.array([[0.9, 0.5, 0.5], [0.05, 0.02, 0.5]])
    before = app.copy()
    assert misleading_counts(app, motion, 0.3, 0.35) == (1, 2)
    np.testing.assert_array_equal(app, before)  # inputs untouched
    # a disagreeing embedding that resembles nobody (a false-positive box, heavy noise) is not misleading
    nobody = np.array([[0.9, 0.5, 0.5], [0.5, 0.02, 0.5]])
    assert misleading_counts(nobody, motion, 0.3, 0.35) == (0, 2)
    # ... though the plain disagreement rate counts it against the embeddings
    assert costs.veto_error_rate(nobody, motion, 0.3, 0.35) == 0.5
    # nothing sure, or no rival at all: nothing judged
    assert misleading_counts(app, np.full((2, 3), 0.9), 0.3, 0.35) == (0, 0)
    assert misleading_counts(np.array([[0.9]]), np.array([[0.1]]), 0.3, 0.35) == (0, 0)


def test_switch_veto_needs_a_streak_a_far_memory_and_a_repeated_other_object():
    app = np.array([[0.5, 0.5, 0.02], [0.5, 0.5, 0.5]])  # distance of each detection to each track's memory
    alt = np.array([[0.01, 0.5, 0.5], [0.01, 0.5, 0.5]])  # ... and to the other object each track was fed
    veto = costs.switch_veto(app, alt, np.array([True, False]), accept=0.2, reject=0.35)
    # track 0 (suspicious) lets go of detection 0 (the other object again); detection 1 looks like neither,
    # detection 2 like its own memory; track 1 has no streak
    assert veto.tolist() == [[True, False, False], [False, False, False]]
    assert not costs.switch_veto(np.full((2, 3), np.nan), alt, np.ones(2, bool), 0.2, 0.35).any()


def test_confusion_counts_rank1_mistakes_on_sure_pairs_only():
    from tracker_core.tracking.costs import confusion_counts

    motion = np.array([[0.1, 0.9, 0.9], [0.9, 0.1, 0.9]])
    # track 0's sure partner (det 0) is farther in appearance than det 2: confused; track 1 is fine
    app = np.array([[0.10, 0.30, 0.05], [0.40, 0.02, 0.30]])
    before = app.copy()
    assert confusion_counts(app, motion, 0.3, 0.35) == (1, 2)
    np.testing.assert_array_equal(app, before)  # inputs untouched
    # a sure pair whose own distance disagrees (a false detection) is not judged here
    app2 = app.copy()
    app2[0, 0] = 0.6
    assert confusion_counts(app2, motion, 0.3, 0.35) == (0, 1)
    # nothing sure: nothing judged
    assert confusion_counts(app, np.full((2, 3), 0.9), 0.3, 0.35) == (0, 0)


def test_distinct_enough_needs_a_gap_over_every_rival():
    from tracker_core.tracking.costs import distinct_enough

    cost = np.array([[0.02, 0.30], [0.40, 0.28]])  # candidates x new tracks
    others = np.array([0.5, 0.5])  # nearest visible object per new track
    ok = distinct_enough(cost, others, 0.1)
    # new track 0: candidate 0 at 0.02 beats candidate 1 (0.40) and the visible 0.5 by > 0.1
    # new track 1: its two candidates are look-alikes (0.30 vs 0.28): nobody qualifies
    np.testing.assert_array_equal(ok, [[True, False], [False, False]])
    # a visible look-alike blocks an otherwise clear candidate
    assert not distinct_enough(cost, np.array([0.05, 0.5]), 0.1)[0, 0]
    assert distinct_enough(np.zeros((0, 2)), others, 0.1).shape == (0, 2)


def test_sure_match_evidence_matches_a_per_pair_reference():
    rng = np.random.default_rng(3)
    for _ in range(50):
        t, n = rng.integers(1, 6, size=2)
        motion = rng.uniform(0.0, 1.0, (t, n))
        app = rng.uniform(0.0, 1.0, (t, n))
        app[rng.random((t, n)) < 0.2] = np.nan
        ev = costs.sure_match_evidence(app, motion, 0.5, 0.35)
        want = [0] * 6
        for i, j in zip(*costs.sure_pairs(motion, 0.5).nonzero(), strict=True):
            own = app[i, j]
            if np.isnan(own):
                continue
            rivals = [app[i, k] for k in range(n) if k != j] + [app[k, j] for k in range(t) if k != i]
            rivals = [r for r in rivals if not np.isnan(r)]
            want[0] += own > 0.35
            want[1] += 1
            if rivals:
                want[5] += 1
                want[4] += own > 0.35 and min(rivals) <= 0.35
                if own <= 0.35:
                    want[3] += 1
                    want[2] += min(rivals) < own
        assert tuple(ev) == tuple(int(w) for w in want)


def test_height_iou_matches_a_slow_reference_and_modulates_iou():
    from tracker_core.tracking.kalman import xyxy_to_cxcywh

    rng = np.random.default_rng(5)
    tb = np.hstack([tl := rng.uniform(0, 200, (5, 2)), tl + rng.uniform(5, 80, (5, 2))])
    db = np.hstack([dl := rng.uniform(0, 200, (4, 2)), dl + rng.uniform(5, 80, (4, 2))])
    buf = rng.uniform(0, 0.5, 5)
    got = costs.height_iou_cxcywh(xyxy_to_cxcywh(tb), xyxy_to_cxcywh(db), buf)
    for i in range(5):
        t = costs.expand_boxes(tb[i : i + 1], buf[i])[0]
        for j in range(4):
            d = costs.expand_boxes(db[j : j + 1], buf[i])[0]
            inter = max(0.0, min(t[3], d[3]) - max(t[1], d[1]))
            union = (t[3] - t[1]) + (d[3] - d[1]) - inter
            assert got[i, j] == pytest.approx(inter / union)
    # same footprint, one person standing farther back (shorter, higher feet): plain IoU is high, HMIoU lower
    near, far = np.array([[100.0, 100, 140, 200]]), np.array([[100.0, 100, 140, 180]])
    iou = costs.iou_matrix(near, far)[0, 0]
    h = costs.height_iou_cxcywh(xyxy_to_cxcywh(near), xyxy_to_cxcywh(far))[0, 0]
    assert h == pytest.approx(0.8) and iou * h < iou


def test_direction_consistency_rewards_the_way_a_track_moves():
    prev = np.array([[100.0, 100, 20, 40], [300.0, 100, 20, 40], [500.0, 100, 20, 40]])
    last = prev + np.array([[10.0, 0, 0, 0], [0, 0, 0, 0], [10.0, 0, 0, 0]])  # right, still, right
    valid = np.array([True, True, False])
    dets = np.array([[125.0, 100, 20, 40], [80.0, 100, 20, 40], [110.0, 130, 20, 40]])  # ahead, behind, down
    out = costs.direction_consistency(prev, last, valid, dets)
    assert out[0, 0] == pytest.approx(0.5)  # straight ahead
    assert out[0, 1] == pytest.approx(-0.5)  # straight back
    assert -0.5 < out[0, 2] < 0.5 and out[0, 2] < out[0, 0]
    np.testing.assert_array_equal(out[1], 0.0)  # a track that did not move has no direction
    np.testing.assert_array_equal(out[2], 0.0)  # no earlier observation
    assert costs.direction_consistency(prev[:0], last[:0], valid[:0], dets).shape == (0, 3)
