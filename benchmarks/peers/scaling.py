"""Update time vs number of objects: ours against the ByteTrack implementations on a synthetic scene.

``python -m benchmarks.peers.scaling [--objects 10 50 200] [--frames 200]``: N boxes walk on straight lines through a
1920x1080 frame (each detected with probability 0.95, some box noise), fed in lockstep to every tracker; ms per
frame inside ``update`` (best of ``--repeats``). Shows what vectorising over all tracks buys as scenes get busy.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.peers.adapters import default_peers
from benchmarks.peers.run import run_lockstep
from tracker_core.evaluation import FrameDetections

KEYS = ("ours", "trackers_ByteTrack", "supervision_ByteTrack", "trackers_SORT")


def synthetic_frames(n: int, frames: int, seed: int = 0) -> list[FrameDetections]:
    rng = np.random.default_rng(seed)
    pos = rng.uniform([0, 0], [1880, 980], (n, 2))
    vel = rng.uniform(-3, 3, (n, 2))
    size = rng.uniform([20, 50], [50, 120], (n, 2))
    out = []
    for f in range(frames):
        p = (pos + vel * f) % [1880, 980]
        keep = rng.uniform(size=n) < 0.95
        boxes = np.hstack([p, p + size])[keep] + rng.normal(0, 1.0, (int(keep.sum()), 4))
        out.append(
            FrameDetections(
                boxes.astype(np.float32), rng.uniform(0.3, 1.0, int(keep.sum())).astype(np.float32)
            )
        )
    return out


def run(objects: list[int], frames: int, repeats: int) -> dict[str, Any]:
    specs = [s for s in default_peers(False) if s.key in KEYS]
    rows = []
    for n in objects:
        seq = synthetic_frames(n, frames)
        best: dict[str, float] = {}
        names: dict[str, str] = {}
        for _ in range(max(1, repeats)):
            for key, (_, spent, name, _) in run_lockstep(specs, seq, 30.0, None).items():
                best[key] = min(best.get(key, float("inf")), spent)
                names[key] = name
        rows.append({"objects": n, **{names[k]: 1000.0 * best[k] / frames for k in best}})
    return {"frames": frames, "repeats": repeats, "rows": rows}


def markdown(result: dict[str, Any]) -> str:
    names = [k for k in result["rows"][0] if k != "objects"]
    lines = [
        "| objects | " + " | ".join(f"{n} ms/frame" for n in names) + " |",
        "|---:|" + "---:|" * len(names),
    ]
    for r in result["rows"]:
        lines.append(f"| {r['objects']} | " + " | ".join(f"{r[n]:.3f}" for n in names) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.peers.scaling", description=__doc__)
    p.add_argument("--objects", type=int, nargs="+", default=[10, 50, 200])
    p.add_argument("--frames", type=int, default=200)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default="docs/bench/peers_scaling", help="write OUT.json and OUT.md ('' to skip)")
    args = p.parse_args(argv)
    result = run(args.objects, args.frames, args.repeats)
    table = markdown(result)
    print(table)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
        out.with_suffix(".md").write_text(
            f"Synthetic scene, {args.frames} frames at 30 fps, lockstep, best of {args.repeats}.\n\n" + table
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
