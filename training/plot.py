"""PNG of the training loss and the per-epoch validation metrics, read back from the JSONL log."""

from __future__ import annotations

import json
from pathlib import Path


def plot_log(log_path: Path, png_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps: list[int] = []
    losses: list[float] = []
    epochs: list[int] = []
    val: dict[str, list[tuple[float, float]]] = {"encoder": [], "raw_features": []}
    for line in log_path.read_text().splitlines():
        rec = json.loads(line)
        if rec.get("type") == "step":
            steps.append(rec["step"])
            losses.append(rec["loss"])
        elif rec.get("type") == "epoch" and rec.get("val"):
            epochs.append(rec["epoch"])
            for k in val:
                val[k].append((rec["val"][k]["pooled"]["top1"], rec["val"][k]["pooled"]["mrr"]))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    axes[0].plot(steps, losses, lw=0.8)
    axes[0].set_xlabel("step")
    axes[0].set_ylabel("InfoNCE loss")
    axes[0].set_title("training loss")
    if epochs:
        for k, style in (("encoder", "-"), ("raw_features", "--")):
            axes[1].plot(epochs, [v[0] for v in val[k]], style, label=f"{k} Top-1", color="C0")
            axes[1].plot(epochs, [v[1] for v in val[k]], style, label=f"{k} MRR", color="C1")
        axes[1].legend(fontsize=8)
    axes[1].set_xlabel("epoch")
    axes[1].set_title("validation (pooled)")
    fig.tight_layout()
    fig.savefig(png_path, dpi=90)
    plt.close(fig)
