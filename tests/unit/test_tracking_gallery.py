"""Re-identification gallery bounds and tentative-track expiry."""

from __future__ import annotations

import numpy as np

from tracker_core.tracking import DEFAULT_CONFIG, Tracker
from tracker_core.tracking.costs import normalize
from tracker_core.tracking.gallery import Gallery


def _emb(rng: np.random.Generator, n: int, d: int = 32) -> np.ndarray:
    return normalize(rng.standard_normal((n, d)))


def test_gallery_is_bounded_in_size_and_age():
    rng = np.random.default_rng(0)
    g = Gallery(max_size=5, max_age_s=10.0)
    for i in range(20):
        g.add(np.array([i + 1]), np.array([0]), _emb(rng, 1), now=float(i))
        assert len(g) <= 5
    assert g.ids.tolist() == [16, 17, 18, 19, 20]  # the newest kept
    g.prune(now=27.5)  # entries older than 10 s go
    assert g.ids.tolist() == [19, 20]  # added at t = 18 and 19
    g.prune(now=100.0)
    assert len(g) == 0


def test_gallery_match_returns_the_closest_id_once_and_respects_class_and_distance():
    rng = np.random.default_rng(1)
    e = _emb(rng, 3)
    g = Gallery(max_size=10, max_age_s=100.0)
    g.add(np.array([7, 8, 9]), np.array([0, 0, 1]), e, now=0.0)
    q = normalize(e[[1, 2]] + 0.01 * rng.standard_normal((2, 32)))
    got = g.match(q, np.array([0, 0]), max_dist=0.1, class_aware=True)
    assert got.tolist() == [8, 0]  # 9 is another class
    assert sorted(g.ids.tolist()) == [7, 9]  # the matched entry left the gallery
    assert g.match(q[:1], np.array([0]), max_dist=0.1, class_aware=True).tolist() == [0]  # used only once
    far = _emb(rng, 1)
    assert g.match(far, np.array([0]), max_dist=0.05, class_aware=False).tolist() == [0]


def test_tentative_tracks_expire_after_their_time_limit():
    cfg = DEFAULT_CONFIG.replace(confirm_first_frame=False, confirm_hits=3, tentative_max_age_s=0.25)
    box = np.array([[100.0, 100.0, 130.0, 180.0]])
    tr = Tracker(cfg)
    tr.update(box, np.array([0.9]), 0.0)
    tr.update(np.zeros((0, 4)), np.zeros(0), 0.2)  # missed, still within 0.25 s
    assert tr.num_tracks == 1
    tr.update(box, np.array([0.9]), 0.3)  # second hit
    assert tr.num_tracks == 1 and tr.next_id == 1
    tr.update(np.zeros((0, 4)), np.zeros(0), 0.6)  # unmatched for 0.3 s > 0.25 s: dropped, no ID spent
    assert tr.num_tracks == 0 and tr.next_id == 1


def test_gallery_keeps_last_boxes_and_match_respects_an_allowed_mask():
    rng = np.random.default_rng(2)
    e = _emb(rng, 2)
    g = Gallery(max_size=10, max_age_s=100.0)
    g.add(
        np.array([3, 4]),
        np.array([0, 0]),
        e,
        5.0,
        np.array([[0, 0, 10, 20], [50, 0, 60, 20.0]]),
        np.array([4.0, 4.5]),
    )
    assert g.boxes.shape == (2, 4) and g.seen.tolist() == [4.0, 4.5]
    allowed = np.array([[False, True]])
    assert g.match(e[:1], np.array([0]), 0.1, True, allowed=allowed).tolist() == [
        0
    ]  # only 4 allowed: too far
    assert g.match(e[1:], np.array([0]), 0.1, True, allowed=allowed).tolist() == [4]
    assert g.ids.tolist() == [3] and g.boxes.shape == (1, 4) and g.seen.tolist() == [4.0]
