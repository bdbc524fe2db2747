"""Hungarian assignment with a cost ceiling: the one matching contract of the tracker."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment

I64 = NDArray[np.int64]


def linear_assignment(cost: NDArray[np.floating], max_cost: float) -> tuple[I64, I64, I64]:
    """Assignment of rows (tracks) to columns (detections) that maximises the total slack below the ceiling.

    Each allowed pair is worth ``max_cost - cost`` (pairs whose cost is above ``max_cost``, ``inf`` or NaN are never
    matched), and the matching with the largest total worth wins: one close match beats two poor ones, as in
    ByteTrack's and OC-SORT's ``lapjv(..., cost_limit)``. (Matching the most pairs first, as this contract did
    before, let a track take a poor detection to free its good one for a neighbour: 2.3 HOTA on DanceTrack-val.)
    A pair exactly at the ceiling is still matched when nothing better competes for it.

    Returns ``(matches [K,2] (row, col), unmatched_rows [R], unmatched_cols [C])``, all int64 and sorted.
    The input is not modified.
    """
    c = np.asarray(cost, dtype=np.float64)
    if c.ndim != 2:
        raise ValueError(f"cost must be a 2-d matrix, got shape {c.shape}")
    t, n = c.shape
    if t == 0 or n == 0:
        return np.empty((0, 2), np.int64), np.arange(t, dtype=np.int64), np.arange(n, dtype=np.int64)
    allowed = c <= max_cost  # False for NaN and inf
    if not allowed.any():
        return np.empty((0, 2), np.int64), np.arange(t, dtype=np.int64), np.arange(n, dtype=np.int64)
    # minimise the sum of (cost - ceiling) over matched pairs: forbidden pairs count 0 (as good as unmatched) and
    # are dropped after solving; the tiny epsilon makes a pair at the ceiling still better than none
    work = np.where(allowed, c - max_cost - 1e-9, 0.0)
    rows, cols = linear_sum_assignment(work)
    keep = allowed[rows, cols]
    rows, cols = rows[keep], cols[keep]
    matches = np.empty((rows.shape[0], 2), np.int64)
    matches[:, 0] = rows
    matches[:, 1] = cols
    row_hit = np.zeros(t, dtype=bool)
    row_hit[rows] = True
    col_hit = np.zeros(n, dtype=bool)
    col_hit[cols] = True
    return matches, (~row_hit).nonzero()[0], (~col_hit).nonzero()[0]
