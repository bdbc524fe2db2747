"""Cross-frame matching metrics: Top-1, Mean Rank, MRR, Recall@5, Recall@10 (no clipping of K).

A pair is (gallery = labelled objects of the earlier frame, queries = labelled objects of the later frame). A
query is valid when its identity is in the gallery. Its rank is ``1 + (number of gallery objects of another
identity scoring >= the best-scoring object of its own identity)``: ties count against the query, so a constant
score cannot look good. ``Recall@K`` is ``rank <= K`` with K never clipped to the gallery size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tracker_core.errors import InvalidInputError

METRIC_KEYS = ("top1", "mean_rank", "mrr", "recall@5", "recall@10")


def query_ranks(scores: np.ndarray, query_ids: np.ndarray, gallery_ids: np.ndarray) -> np.ndarray:
    """Ranks of the valid queries of one pair.

    Args:
        scores: ``[Q,G]`` similarity, higher = more alike (cosine, or minus a distance).
        query_ids: ``[Q]`` identities of the later frame's objects; gallery_ids: ``[G]`` of the earlier frame's.
    Returns:
        ``[V]`` int ranks (1 = best) of the queries whose identity is in the gallery, in query order.
    """
    scores = np.asarray(scores, dtype=np.float64)
    q, g = np.asarray(query_ids), np.asarray(gallery_ids)
    if scores.shape != (len(q), len(g)):
        raise InvalidInputError(f"scores shape {scores.shape} != ({len(q)}, {len(g)})")
    ranks = []
    for i in range(len(q)):
        same = g == q[i]
        if not same.any():
            continue
        best = scores[i, same].max()
        ranks.append(1 + int((scores[i, ~same] >= best).sum()))
    return np.asarray(ranks, dtype=np.int64)


def summarize(ranks: np.ndarray) -> dict[str, float | None]:
    """The five metrics of a set of ranks (None when there are no valid queries)."""
    r = np.asarray(ranks, dtype=np.float64)
    if r.size == 0:
        return dict.fromkeys(METRIC_KEYS)
    return {
        "top1": float((r == 1).mean()),
        "mean_rank": float(r.mean()),
        "mrr": float((1.0 / r).mean()),
        "recall@5": float((r <= 5).mean()),
        "recall@10": float((r <= 10).mean()),
    }


@dataclass
class MatchingResult:
    """Ranks of every pair, plus how many queries each pair had."""

    ranks: list[np.ndarray]
    num_queries: list[int]

    def to_dict(self) -> dict:
        """``{"pooled", "per_pair", "num_queries", "num_valid", "num_pairs"}`` as ``roitrack val --json`` prints.

        ``pooled``: mean over all valid queries; ``per_pair``: mean over pairs (with >= 1 valid query) of each
        pair's mean.
        """
        pooled = summarize(np.concatenate(self.ranks) if self.ranks else np.zeros(0))
        per = [summarize(r) for r in self.ranks if len(r)]
        per_pair: dict[str, float | None] = {
            k: (float(np.mean([p[k] for p in per])) if per else None) for k in METRIC_KEYS
        }
        return {
            "pooled": pooled,
            "per_pair": per_pair,
            "num_queries": int(sum(self.num_queries)),
            "num_valid": int(sum(len(r) for r in self.ranks)),
            "num_pairs": len(self.ranks),
        }


def evaluate_pairs(
    scores: Sequence[np.ndarray], query_ids: Sequence[np.ndarray], gallery_ids: Sequence[np.ndarray]
) -> MatchingResult:
    ranks = [query_ranks(s, q, g) for s, q, g in zip(scores, query_ids, gallery_ids, strict=True)]
    return MatchingResult(ranks=ranks, num_queries=[len(q) for q in query_ids])
