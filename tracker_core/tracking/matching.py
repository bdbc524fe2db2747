"""Hungarian assignment with a cost ceiling: the one matching contract of the tracker."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment

I64 = NDArray[np.int64]


def linear_assignment(cost: NDArray[np.floating], max_cost: float) -> tuple[I64, I64, I64]:
    """Minimum-cost assignment of rows (tracks) to columns (detections).

    Pairs whose cost is above ``max_cost`` (or ``inf``/NaN) are never matched.

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
    if allowed.all():
        rows, cols = linear_sum_assignment(c)
    else:
        if not allowed.any():
            return np.empty((0, 2), np.int64), np.arange(t, dtype=np.int64), np.arange(n, dtype=np.int64)
        # forbidden pairs get a cost larger than any difference of sums of allowed ones (so the most pairs are
        # matched first, then the cheapest), and are dropped after solving
        work = np.where(allowed, c, max_cost)
        big = (max_cost - min(0.0, float(work.min()))) * (min(t, n) + 1) + 1.0
        work[~allowed] = big
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
