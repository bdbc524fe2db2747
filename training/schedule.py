"""Learning rate: linear warm-up then cosine decay, a pure function of the step (so resume is exact)."""

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
