"""Learning rates of both trainers, pure functions of the step or the progress (so resume is exact): the encoder's
linear warm-up + cosine (:func:`lr_at`), the detector's one-cycle cosine (:func:`cosine_factor`) and warm-up ramps
(:func:`ramp`)."""

from __future__ import annotations

import math


def lr_at(step: int, total: int, base: float, warmup_frac: float = 0.1, min_frac: float = 0.02) -> float:
    """LR of optimizer step ``step`` (0-based) of ``total``."""
    total = max(1, total)
    warm = max(1, round(warmup_frac * total)) if warmup_frac > 0 else 0
    if step < warm:
        return base * (step + 1) / warm
    t = min(1.0, (step - warm) / max(1, total - warm))
    return base * (min_frac + (1 - min_frac) * 0.5 * (1 + math.cos(math.pi * t)))


def cosine_factor(progress: float, final: float) -> float:
    """The LR multiplier of YOLOv7's one-cycle schedule: 1 at ``progress`` 0 down to ``final`` at 1 along half a
    cosine (progress is clipped to [0, 1])."""
    p = min(max(float(progress), 0.0), 1.0)
    return ((1 - math.cos(p * math.pi)) / 2) * (final - 1) + 1


def ramp(x: float, x1: float, y0: float, y1: float) -> float:
    """Linear from ``y0`` at 0 to ``y1`` at ``x1`` (warm-up); ``y1`` from ``x1`` on."""
    if x1 <= 0 or x >= x1:
        return y1
    return y0 + (y1 - y0) * max(0.0, x) / x1
