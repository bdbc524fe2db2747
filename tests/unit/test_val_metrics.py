"""Cross-frame matching metrics on hand-made rankings."""

from __future__ import annotations

import numpy as np
import pytest

from training.encoder.val_metrics import evaluate_pairs, query_ranks, summarize


def test_ranks_by_hand():
    gallery = np.array([10, 11, 12])
    queries = np.array([11, 12, 99, 10])  # 99 is not in the gallery: not a valid query
    scores = np.array(
        [
            [0.1, 0.9, 0.2],  # rank 1
            [0.8, 0.5, 0.3],  # 12 scores 0.3 < 0.8, 0.5 -> rank 3
            [0.5, 0.5, 0.5],
            [0.4, 0.4, 0.1],  # tie with a wrong one counts against the query -> rank 2
        ]
    )
    np.testing.assert_array_equal(query_ranks(scores, queries, gallery), [1, 3, 2])


def test_constant_scores_are_not_rewarded():
    ranks = query_ranks(np.zeros((3, 3)), np.array([1, 2, 3]), np.array([1, 2, 3]))
    np.testing.assert_array_equal(ranks, [3, 3, 3])


def test_summary_values():
    m = summarize(np.array([1, 2, 4, 11]))
    assert m["top1"] == pytest.approx(0.25)
    assert m["mean_rank"] == pytest.approx(4.5)
    assert m["mrr"] == pytest.approx((1 + 0.5 + 0.25 + 1 / 11) / 4)
    assert m["recall@5"] == pytest.approx(0.75)
    assert m["recall@10"] == pytest.approx(0.75)  # rank 11 is outside the top 10


def test_recall_k_is_not_clipped_to_gallery():
    """12 gallery objects: a rank-11 query is a miss at K=10; K is never lowered to the gallery size."""
    g = np.arange(12)
    s = np.tile(np.linspace(1, 0, 12), (1, 1))  # gallery 0 best ... 11 worst
    r = query_ranks(s, np.array([10]), g)
    assert r.tolist() == [11]
    assert summarize(r)["recall@10"] == 0.0
    # 3 gallery objects, query at rank 3: Recall@5 counts it because 3 <= 5, not because K was clipped
    r3 = query_ranks(np.array([[0.9, 0.5, 0.1]]), np.array([2]), np.array([0, 1, 2]))
    assert summarize(r3)["recall@5"] == 1.0 and summarize(r3)["top1"] == 0.0


def test_pooled_vs_per_pair_and_counts():
    # pair A: 3 valid queries, ranks 1,1,1 ; pair B: 1 valid query of rank 2, 1 invalid ; pair C: no valid queries
    sa = np.eye(3)
    sb = np.array([[0.2, 0.9], [0.5, 0.5]])
    sc = np.ones((1, 1))
    res = evaluate_pairs(
        [sa, sb, sc],
        [np.array([1, 2, 3]), np.array([5, 77]), np.array([8])],
        [np.array([1, 2, 3]), np.array([5, 6]), np.array([9])],
    ).to_dict()
    assert res["num_queries"] == 6 and res["num_valid"] == 4 and res["num_pairs"] == 3
    assert res["pooled"]["top1"] == pytest.approx(3 / 4)
    assert res["per_pair"]["top1"] == pytest.approx((1.0 + 0.0) / 2)
    assert res["pooled"]["mrr"] == pytest.approx((3 + 0.5) / 4)
    assert res["per_pair"]["mean_rank"] == pytest.approx((1 + 2) / 2)
    assert set(res["pooled"]) == {"top1", "mean_rank", "mrr", "recall@5", "recall@10"}


def test_no_valid_query_gives_none():
    res = evaluate_pairs([np.ones((1, 1))], [np.array([1])], [np.array([2])]).to_dict()
    assert res["pooled"]["top1"] is None and res["per_pair"]["mrr"] is None and res["num_valid"] == 0
