"""PNG of a training run read back from its JSONL log: the loss per step and metrics per epoch (both trainers).

Records are JSON lines with ``"type": "step"`` (a ``step`` number and loss values) or ``"type": "epoch"`` (an
``epoch`` number and metrics, possibly nested); series are named by dotted paths into the records.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _get(rec: dict[str, Any], path: str) -> float | None:
    cur: Any = rec
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return float(cur) if isinstance(cur, int | float) and not isinstance(cur, bool) else None


def plot_curves(
    log_path: Path,
    png_path: Path,
    step_series: Sequence[tuple[str, str]],
    epoch_series: Sequence[tuple[str, str]],
    step_title: str = "training loss",
    epoch_title: str = "validation",
    step_ylabel: str = "loss",
) -> None:
    """Left: ``(label, path)`` series of the step records against ``step``; right: of the epoch records against
    ``epoch``. Missing values are skipped."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps: dict[str, tuple[list[float], list[float]]] = {label: ([], []) for label, _ in step_series}
    epochs: dict[str, tuple[list[float], list[float]]] = {label: ([], []) for label, _ in epoch_series}
    for line in log_path.read_text().splitlines():
        rec = json.loads(line)
        kind = rec.get("type")
        series, table, xkey = (
            (step_series, steps, "step") if kind == "step" else (epoch_series, epochs, "epoch")
        )
        if kind not in ("step", "epoch"):
            continue
        for label, path in series:
            val, at = _get(rec, path), _get(rec, xkey)
            if val is not None and at is not None:
                table[label][0].append(at)
                table[label][1].append(val)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for k, (label, (xs, ys)) in enumerate(steps.items()):
        if xs:
            axes[0].plot(xs, ys, lw=0.8, label=label, color=f"C{k}")
    axes[0].set_xlabel("step")
    axes[0].set_ylabel(step_ylabel)
    axes[0].set_title(step_title)
    if len(steps) > 1:
        axes[0].legend(fontsize=8)
    for k, (label, (xs, ys)) in enumerate(epochs.items()):
        if xs:
            axes[1].plot(xs, ys, "-o" if len(xs) < 30 else "-", ms=3, label=label, color=f"C{k}")
    if any(xs for xs, _ in epochs.values()):
        axes[1].legend(fontsize=8)
    axes[1].set_xlabel("epoch")
    axes[1].set_title(epoch_title)
    fig.tight_layout()
    fig.savefig(png_path, dpi=90)
    plt.close(fig)


def plot_log(log_path: Path, png_path: Path) -> None:
    """The encoder trainer's plot: InfoNCE loss, and per epoch the encoder's and raw features' Top-1 / MRR."""
    plot_curves(
        log_path,
        png_path,
        [("InfoNCE loss", "loss")],
        [
            ("encoder Top-1", "val.encoder.pooled.top1"),
            ("encoder MRR", "val.encoder.pooled.mrr"),
            ("raw_features Top-1", "val.raw_features.pooled.top1"),
            ("raw_features MRR", "val.raw_features.pooled.mrr"),
        ],
        epoch_title="validation (pooled)",
        step_ylabel="InfoNCE loss",
    )
