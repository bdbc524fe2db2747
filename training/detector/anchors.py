"""Anchors fitted to the data's box statistics: k-means on box sizes, then a genetic evolution (autoanchor).

The criterion is the one YOLOv7's loss uses to pair a box with an anchor: the worst of the width and height
ratios, ``max(r, 1/r)``, must stay below ``thr`` (``anchor_t`` = 4). For a box ``b`` and anchor ``k``,
``x = min(r, 1/r)`` over both sides is its fit; a box's best fit is over all anchors.

- ``bpr`` (best possible recall): share of boxes whose best fit exceeds ``1/thr`` (could be matched at all);
- fitness: mean best fit over boxes, counting fits below ``1/thr`` as 0.

:func:`fit_anchors` runs k-means (``scipy.cluster.vq.kmeans`` on sizes divided by their standard deviation;
the training sizes jittered by +-10 % as the images are rescaled in training) and then ``generations`` rounds
of mutation (each anchor side multiplied by ``1 + N(0, sigma) * U`` with probability 0.9, clipped to
``[0.3, 3]``), keeping a mutant only when its fitness is higher. Anchors come back sorted by area and split
into ``levels`` rows of ``na`` (small ones to the finest stride), in pixels of the training input.
"""

from __future__ import annotations

import logging

import numpy as np
from numpy.typing import NDArray

log = logging.getLogger(__name__)


def best_fit(anchors: NDArray[np.floating], wh: NDArray[np.floating]) -> NDArray[np.float64]:
    """``[N]`` best fit of each box (``[N,2]``) over the anchors (``[K,2]``)."""
    r = np.asarray(wh, np.float64)[:, None, :] / np.asarray(anchors, np.float64)[None, :, :]
    x = np.minimum(r, 1 / r).min(2)
    return x.max(1)


def anchor_fitness(anchors: NDArray[np.floating], wh: NDArray[np.floating], thr: float = 4.0) -> float:
    best = best_fit(anchors, wh)
    return float((best * (best > 1 / thr)).mean())


def best_possible_recall(anchors: NDArray[np.floating], wh: NDArray[np.floating], thr: float = 4.0) -> float:
    """Share of boxes some anchor can be paired with (``max(r, 1/r) < thr`` on both sides)."""
    if len(wh) == 0:
        return 1.0
    return float((best_fit(anchors, wh) > 1 / thr).mean())


def fit_anchors(
    wh: NDArray[np.floating],
    levels: int = 3,
    na: int = 3,
    thr: float = 4.0,
    generations: int = 1000,
    seed: int = 0,
) -> list[list[float]]:
    """``levels`` rows of ``na`` anchors ``[w0,h0, w1,h1, ...]`` (pixels) fitted to box sizes ``wh`` ``[N,2]``."""
    from scipy.cluster.vq import kmeans

    n = levels * na
    rng = np.random.default_rng(seed)
    wh = np.asarray(wh, np.float64).reshape(-1, 2)
    wh = wh[(wh >= 2.0).all(1)]
    if len(wh) < n:
        raise ValueError(f"need at least {n} boxes of 2+ px to fit {n} anchors, got {len(wh)}")
    wh = wh * rng.uniform(0.9, 1.1, size=(len(wh), 1))
    sd = wh.std(0)
    sd[sd == 0] = 1.0
    rs = np.random.get_state()
    np.random.seed(seed)  # scipy's kmeans draws its initial centres from numpy's global generator
    try:
        k, _ = kmeans(wh / sd, n, iter=30)
    finally:
        np.random.set_state(rs)
    k = k * sd
    if len(k) < n:  # kmeans drops empty clusters; top up from the data
        k = np.concatenate([k, wh[rng.choice(len(wh), n - len(k), replace=False)]])
    f = anchor_fitness(k, wh, thr)
    for _ in range(generations):
        v = np.ones_like(k)
        while (v == 1).all():
            v = ((rng.random(k.shape) < 0.9) * rng.random() * rng.standard_normal(k.shape) * 0.1 + 1).clip(
                0.3, 3.0
            )
        kg = (k * v).clip(min=2.0)
        fg = anchor_fitness(kg, wh, thr)
        if fg > f:
            f, k = fg, kg
    k = k[np.argsort(k.prod(1))]
    log.info(
        "anchors fitted: fitness %.4f, best possible recall %.4f, %s",
        f,
        best_possible_recall(k, wh, thr),
        np.round(k).astype(int).tolist(),
    )
    return [[float(round(v, 2)) for v in k[i * na : (i + 1) * na].reshape(-1)] for i in range(levels)]


def anchors_array(rows: list[list[float]]) -> NDArray[np.float64]:
    """Anchor rows ``[[w0,h0,...], ...]`` -> ``[levels*na, 2]``."""
    return np.asarray(rows, np.float64).reshape(-1, 2)
