"""Run every peer over one MOTChallenge sequence's detections; score all with the same TrackEval call."""

from __future__ import annotations

import os
import platform
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from benchmarks.peers.adapters import PeerSpec, default_peers
from tracker_core.evaluation import (
    FrameDetections,
    evaluate_results,
    read_detections,
    read_seqinfo,
    results_rows,
    write_results,
)


def run_lockstep(
    specs: Sequence[PeerSpec],
    frames: Sequence[FrameDetections],
    frame_rate: float,
    embeddings: Sequence[NDArray[np.float32] | None] | None,
) -> dict[str, tuple[list[str], float, str, str]]:
    """Fresh trackers of every spec fed frame by frame in lockstep (frame i to each tracker, then frame i+1), so
    background load on a shared machine hits every tracker alike.

    Returns ``{key: (result lines, seconds inside update, name, note)}``; only ``update`` is timed."""
    adapters = {s.key: s.make(frame_rate) for s in specs}
    payloads = {
        k: [
            a.prepare(f.boxes, f.scores, embeddings[i] if embeddings is not None else None)
            for i, f in enumerate(frames)
        ]
        for k, a in adapters.items()
    }
    lines: dict[str, list[str]] = {k: [] for k in adapters}
    spent = dict.fromkeys(adapters, 0.0)
    for i in range(len(frames)):
        t = i / frame_rate
        for k, adapter in adapters.items():
            t0 = time.perf_counter()
            raw = adapter.update(payloads[k][i], t)
            spent[k] += time.perf_counter() - t0
            ids, boxes, scores = adapter.collect(raw)
            if ids:
                lines[k] += results_rows(i + 1, ids, boxes, scores)
    return {k: (lines[k], spent[k], a.name, a.note) for k, a in adapters.items()}


def run_peers(
    seq_dir: str | Path,
    det_path: str | Path,
    score_scale: float | str = 1.0,
    min_score: float = 0.0,
    repeats: int = 3,
    embeddings: Sequence[NDArray[np.float32] | None] | None = None,
    only: Sequence[str] | None = None,
    sequential: bool = False,
    score_clip: bool = False,
) -> dict[str, Any]:
    """Benchmark result: per tracker HOTA/DetA/AssA/MOTA/IDF1/IDSW/MT/ML and ms per frame (best of ``repeats``
    lockstep runs)."""
    info = read_seqinfo(seq_dir)
    frames = read_detections(det_path, info.seq_length, score_scale, min_score, score_clip)
    specs = [s for s in default_peers(embeddings is not None) if only is None or s.key in only]
    missing: dict[str, str] = {}
    for spec in list(specs):
        try:
            spec.make(info.frame_rate)
        except ImportError as exc:  # a peer library that is not installed is reported, not fatal
            missing[spec.key] = f"not installed ({exc.name or exc})"
            specs.remove(spec)
    best: dict[str, float] = {}
    meta: dict[str, tuple[str, str]] = {}
    with tempfile.TemporaryDirectory(prefix="roitrack-peers-") as tmp:
        files: dict[str, str] = {}
        for rep in range(max(1, repeats)):
            if sequential:  # each tracker alone over the whole sequence (warm caches), one after the other
                runs = {}
                for spec in specs:
                    runs.update(run_lockstep([spec], frames, info.frame_rate, embeddings))
            else:
                runs = run_lockstep(specs, frames, info.frame_rate, embeddings)
            for key, (lines, spent, name, note) in runs.items():
                best[key] = min(best.get(key, float("inf")), spent)
                meta[key] = (name, note)
                if rep == 0:
                    path = Path(tmp) / f"{key}.txt"
                    write_results(path, lines)
                    files[key] = str(path)
        scores = evaluate_results(seq_dir, files)
    rows = []
    for spec in specs:
        name, note = meta[spec.key]
        rows.append(
            {
                "key": spec.key,
                "tracker": name,
                **scores[spec.key],
                "ms_per_frame": 1000.0 * best[spec.key] / info.seq_length,
                "note": note,
            }
        )
    return {
        "sequence": info.name,
        "frames": info.seq_length,
        "frame_rate": info.frame_rate,
        "detections": str(det_path),
        "score_scale": score_scale,
        "score_clip": score_clip,
        "min_score": min_score,
        "repeats": repeats,
        "timing": "sequential" if sequential else "lockstep",
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_avg_1m_at_end": os.getloadavg()[0],
        "machine": platform.machine(),
        "rows": rows,
        "missing": missing,
    }


def markdown_table(result: dict[str, Any]) -> str:
    """The benchmark as a Markdown table (best value of each metric in bold)."""
    rows = result["rows"]
    cols = ["HOTA", "DetA", "AssA", "MOTA", "IDF1", "IDSW", "MT", "ML", "ms_per_frame"]
    higher = {"HOTA", "DetA", "AssA", "MOTA", "IDF1", "MT"}
    best = {}
    for c in cols:
        vals = [r[c] for r in rows]
        best[c] = max(vals) if c in higher else min(vals)
    head = "| tracker | " + " | ".join("ms/frame" if c == "ms_per_frame" else c for c in cols) + " | note |"
    sep = "|---|" + "---:|" * len(cols) + "---|"
    lines = [head, sep]
    for r in rows:
        cells = []
        for c in cols:
            v = r[c]
            txt = f"{v:.3f}" if c == "ms_per_frame" else (f"{v:.1f}" if isinstance(v, float) else str(v))
            cells.append(f"**{txt}**" if v == best[c] else txt)
        lines.append(f"| {r['tracker']} | " + " | ".join(cells) + f" | {r['note']} |")
    return "\n".join(lines) + "\n"
