"""How early must a tracker undo one takeover, and what do the embeddings say on those frames?

    python scripts/takeover_bound.py --seq ../shared/data/PETS09-S2L1-dev --result runs/osnet.txt \
        --embeddings runs/emb/pets09_osnet_full.npz --emerging 9 --occluder 15 --first 31 --last 40 \
        [--score-scale 100 --score-clip] [--target 85.81]

A takeover: person ``--emerging`` steps out from behind person ``--occluder`` at frame ``--first`` and the
occluder's track carries on with him. The script reads a tracker's result file (``eval-mot --out``) and gives

- the identity ceiling of its boxes (every output box overlapping ground truth takes that identity:
  ``benchmarks.oracle.relabel_with_gt``), the best any association could do with these boxes;
- the same with the takeover kept as it happened (the occluder's boxes before ``--first`` under the emerging
  person's identity, his own under one of their own): what fixing every other error would give;
- the same ceiling when the emerging person's boxes on frames ``--first``..K still carry the occluder's identity,
  for each K up to ``--last``: what a tracker that corrects the takeover only after frame K can reach at best;
- per frame, the embedding file's cosine distance ``1 - cos`` from the emerging person's detection to the nearest
  detection of his own earlier look (before ``--first``) and of the occluder's: which identity the embeddings
  favour on each frame.

It is how the 7 fps target of issue 21 was judged (docs/tracking.md, "Where the 7 fps target stands").
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.oracle import gt_identities, relabel_with_gt
from tracker_core.evaluation import (
    evaluate_results,
    read_detections,
    read_gt,
    read_seqinfo,
    write_results,
)
from tracker_core.evaluation.embedding_file import check_matches, load_embeddings
from tracker_core.tracking.costs import normalize


def analyse(
    seq: Path,
    result: Path,
    embeddings: Path,
    emerging: int,
    occluder: int,
    first: int,
    last: int,
    score_scale: float = 100.0,
    score_clip: bool = False,
) -> dict[str, Any]:
    """The ceilings (``IDF1``: ``result``, ``ceiling``, ``K<k>`` for k in first..last) and the per-frame
    distances (``per_frame``); see the module docstring."""
    gt = read_gt(seq / "gt" / "gt.txt")
    lines = result.read_text().splitlines()
    relabelled = relabel_with_gt(lines, gt)
    rows = [ln.split(",") for ln in relabelled]
    frame = np.array([int(float(r[0])) for r in rows])
    label = np.array([int(float(r[1])) for r in rows])
    if not ((label == occluder) & (frame < first)).any():
        raise SystemExit(f"the result has no box of person {occluder} before frame {first}")

    # "kept": the takeover as it happened (the occluder's earlier boxes under the emerging person's identity, his
    # own earlier boxes under one of their own), every other box with its true identity
    fresh = str(int(label.max()) + 1)
    kept = []
    for ln, r, f, lab in zip(relabelled, rows, frame, label, strict=True):
        if f < first and lab in (occluder, emerging):
            ln = ",".join([r[0], str(emerging) if lab == occluder else fresh, *r[2:]])
        kept.append(ln)
    variants = {"ceiling": relabelled, "kept": kept}
    for k in range(first, last + 1):
        moved = (label == emerging) & (frame >= first) & (frame <= k)
        variants[f"K{k}"] = [
            ",".join([r[0], str(occluder), *r[2:]]) if m else ln
            for ln, r, m in zip(relabelled, rows, moved, strict=True)
        ]
    with tempfile.TemporaryDirectory(prefix="roitrack-takeover-") as tmp:
        paths = {}
        for name, ls in variants.items():
            paths[name] = Path(tmp) / f"{name}.txt"
            write_results(paths[name], ls)
        paths["result"] = result
        scores = evaluate_results(seq, paths)
    idf1 = {name: round(float(scores[name]["IDF1"]), 3) for name in paths}

    info = read_seqinfo(seq)
    frames = read_detections(seq / "det" / "det.txt", info.seq_length, score_scale, score_clip=score_clip)
    ef = load_embeddings(embeddings)
    check_matches(ef, frames, str(embeddings), str(seq / "det" / "det.txt"))
    ids = gt_identities(frames, gt)

    def looks(person: int, lo: int, hi: int) -> np.ndarray:
        picked = [ef.embeddings[i][ids[i] == person] for i in range(lo - 1, min(hi, len(frames)))]
        picked = [e for e in picked if e.size]
        return normalize(np.concatenate(picked)) if picked else np.zeros((0, ef.dim))

    own, occ = looks(emerging, 1, first - 1), looks(occluder, 1, first - 1)
    per_frame = []
    for f in range(first, last + 1):
        e = looks(emerging, f, f)
        if e.shape[0] and own.shape[0] and occ.shape[0]:
            per_frame.append(
                {
                    "frame": f,
                    "nearest_own": round(float(1.0 - (own @ e[0]).max()), 3),
                    "nearest_occluder": round(float(1.0 - (occ @ e[0]).max()), 3),
                }
            )
    return {"IDF1": idf1, "per_frame": per_frame}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seq", required=True, help="MOTChallenge sequence folder (gt/gt.txt, det/det.txt)")
    p.add_argument("--result", required=True, help="the tracker's result file (MOTChallenge lines)")
    p.add_argument(
        "--embeddings", required=True, help="embedding file of the sequence (eval-mot --save-embeddings)"
    )
    p.add_argument("--emerging", type=int, required=True, help="ground-truth ID of the person who emerges")
    p.add_argument(
        "--occluder", type=int, required=True, help="ground-truth ID of the person he emerges behind"
    )
    p.add_argument("--first", type=int, required=True, help="frame he emerges at")
    p.add_argument("--last", type=int, required=True, help="last frame K to try")
    p.add_argument("--score-scale", type=float, default=100.0, help="divide det scores by this (default 100)")
    p.add_argument("--score-clip", action="store_true", help="clip scaled scores to [0, 1]")
    p.add_argument("--target", type=float, help="an IDF1 to compare each ceiling with")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    a = p.parse_args(argv)
    if not 1 <= a.first <= a.last:
        p.error("need 1 <= --first <= --last")
    out = analyse(
        Path(a.seq),
        Path(a.result),
        Path(a.embeddings),
        a.emerging,
        a.occluder,
        a.first,
        a.last,
        a.score_scale,
        a.score_clip,
    )
    idf1 = out["IDF1"]
    if a.json:
        print(json.dumps({**out, "target": a.target}))
        return
    print(f"result IDF1 {idf1['result']}, identity ceiling of its boxes {idf1['ceiling']}")
    print(f"  every identity true but the takeover kept: {idf1['kept']}")
    for k in range(a.first, a.last + 1):
        v = idf1[f"K{k}"]
        mark = "" if a.target is None else (" >= target" if v >= a.target else " < target")
        print(f"  takeover undone after frame {k}: ceiling {v}{mark}")
    print("frame  nearest own earlier look  nearest occluder's look  favours")
    for r in out["per_frame"]:
        fav = "own" if r["nearest_own"] < r["nearest_occluder"] else "occluder"
        print(f"{r['frame']:5d}  {r['nearest_own']:24.3f}  {r['nearest_occluder']:23.3f}  {fav}")


if __name__ == "__main__":
    main()
