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
    allowed = np.isfinite(c) & (c <= max_cost)
    if not allowed.any():
        return np.empty((0, 2), np.int64), np.arange(t, dtype=np.int64), np.arange(n, dtype=np.int64)
    # forbidden pairs get a cost larger than any sum of allowed ones, then are dropped after solving
    big = max_cost + 1.0 + float(np.abs(c[allowed]).max()) * (min(t, n) + 1)
    work = np.where(allowed, c, big)
    rows, cols = linear_sum_assignment(work)
    keep = allowed[rows, cols]
    rows, cols = rows[keep], cols[keep]
    matches = np.stack([rows, cols], axis=1).astype(np.int64)
    row_mask = np.ones(t, dtype=bool)
    row_mask[rows] = False
    col_mask = np.ones(n, dtype=bool)
    col_mask[cols] = False
    return matches, np.flatnonzero(row_mask).astype(np.int64), np.flatnonzero(col_mask).astype(np.int64)
