"""Oracle harness: the tracker with embeddings derived from ground truth, to judge association on its own.

Each detection of a MOTChallenge sequence is matched to that frame's ground truth (IoU >= ``match_iou``,
Hungarian per frame). A matched detection gets its identity's random unit vector (fixed per seed), plus
Gaussian noise of norm ~``noise`` (each component ``N(0, noise^2 / D)``, then renormalised), and with
probability ``wrong`` the vector of another identity instead; a false positive gets a fresh random vector.
Two inert controls: ``random`` (an independent random vector per detection) and ``constant`` (one vector for
all). Every run is scored by the real TrackEval (``tracker_core.evaluation``) beside the motion-only run of the
same sequence, measured in the same call. Stochastic modes run over several seeds; the table gives the mean.

``roitrack bench oracle --seq DIR [--frames 251-400 ...]`` (or ``python -m benchmarks.oracle``) prints JSON
with ``--json`` and writes ``<out>/<name>.json`` and ``<out>/<name>.md``. See ``docs/tracking.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:  # the heavy imports wait until a run, so ``roitrack bench --help`` stays instant
    from tracker_core.evaluation import FrameDetections
    from tracker_core.tracking import TrackerConfig

DEFAULT_NOISES = (0.5, 1.0, 2.0, 4.0)
DEFAULT_WRONGS = (0.1, 0.2, 0.3, 0.5)
REPORT_KEYS = ("HOTA", "AssA", "MOTA", "IDF1", "IDSW")


@dataclass(frozen=True)
class EmbeddingSpec:
    """One way of deriving embeddings: ``mode`` in ``motion`` (none), ``oracle``, ``random``, ``constant``."""

    mode: str
    noise: float = 0.0
    wrong: float = 0.0

    @property
    def label(self) -> str:
        if self.mode != "oracle":
            return self.mode
        if self.noise == 0 and self.wrong == 0:
            return "perfect"
        return f"oracle noise={self.noise:g} wrong={self.wrong:g}"


def gt_identities(
    frames: Sequence[FrameDetections], gt: NDArray[np.float64], match_iou: float = 0.5
) -> list[NDArray[np.int64]]:
    """Per frame, the ground-truth identity of each detection (``-1``: false positive).

    Ground-truth rows with flag 0 (column 7) are ignored, as TrackEval ignores them for MOT15. Detections and
    ground truth are matched by a per-frame Hungarian assignment on ``1 - IoU``, pairs below ``match_iou`` never.
    """
    from tracker_core.tracking import linear_assignment
    from tracker_core.tracking.costs import iou_matrix

    rows = gt[gt[:, 6] > 0] if gt.shape[0] else gt
    out: list[NDArray[np.int64]] = []
    for i, det in enumerate(frames):
        ids = np.full(det.boxes.shape[0], -1, np.int64)
        g = rows[rows[:, 0] == i + 1]
        if g.shape[0] and det.boxes.shape[0]:
            gbox = np.concatenate([g[:, 2:4], g[:, 2:4] + g[:, 4:6]], axis=1)
            m, _, _ = linear_assignment(1.0 - iou_matrix(det.boxes, gbox), 1.0 - match_iou)
            ids[m[:, 0]] = g[m[:, 1], 1].astype(np.int64)
        out.append(ids)
    return out


def _unit(v: NDArray[np.float64]) -> NDArray[np.float32]:
    return (v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)).astype(np.float32)


def oracle_embeddings(
    ids: Sequence[NDArray[np.int64]], spec: EmbeddingSpec, seed: int, dim: int = 128
) -> list[NDArray[np.float32]] | None:
    """Embeddings ``[N,D]`` per frame for detections with identities ``ids`` (``-1`` = false positive)."""
    if spec.mode == "motion":
        return None
    rng = np.random.default_rng(seed)
    if spec.mode == "constant":
        v = _unit(rng.standard_normal(dim))
        return [np.repeat(v[None, :], f.shape[0], axis=0) for f in ids]
    if spec.mode == "random":
        return [_unit(rng.standard_normal((f.shape[0], dim))) for f in ids]
    if spec.mode != "oracle":
        raise ValueError(f"unknown embedding mode {spec.mode!r}")
    identities = np.unique(np.concatenate([f[f >= 0] for f in ids] + [np.zeros(0, np.int64)]))
    table = _unit(rng.standard_normal((identities.size, dim)))
    out = []
    for f in ids:
        n = f.shape[0]
        pos = np.searchsorted(identities, f)
        known = f >= 0
        if spec.wrong > 0 and identities.size > 1:
            flip = known & (rng.random(n) < spec.wrong)
            shift = rng.integers(1, identities.size, size=n)  # any identity but the true one
            pos = np.where(flip, (pos + shift) % identities.size, pos)
        e = np.where(known[:, None], table[np.minimum(pos, identities.size - 1)], 0.0).astype(np.float64)
        fresh = ~known
        if fresh.any():
            e[fresh] = rng.standard_normal((int(fresh.sum()), dim))
        if spec.noise > 0:
            e[known] = _unit(e[known]) + rng.standard_normal((int(known.sum()), dim)) * (
                spec.noise / dim**0.5
            )
        out.append(_unit(e))
    return out


def _result_array(lines: Sequence[str]) -> NDArray[np.float64]:
    """MOTChallenge result lines as ``[R,7]``: frame, id, left, top, width, height, score."""
    return np.array([[float(v) for v in ln.split(",")[:7]] for ln in lines]).reshape(-1, 7)


def relabel_with_gt(lines: Sequence[str], gt: NDArray[np.float64], match_iou: float = 0.5) -> list[str]:
    """The identity ceiling of a result file: each output box that overlaps a ground-truth box (IoU >=
    ``match_iou``, Hungarian per frame) takes that box's identity; the others keep a track ID of their own.

    The boxes, and so detection errors, stay as they are: the score is the best any association could do with
    them, so a gain beyond it cannot come from association."""
    if not lines:
        return []
    rows = _result_array(lines)
    frames = [int(f) for f in np.unique(rows[:, 0])]
    per_frame = []
    for f in frames:
        r = rows[rows[:, 0] == f]
        boxes = np.concatenate([r[:, 2:4], r[:, 2:4] + r[:, 4:6]], axis=1).astype(np.float32)
        per_frame.append((f, r, boxes))
    from tracker_core.evaluation import FrameDetections, results_rows

    out: list[str] = []
    for f, r, boxes in per_frame:
        g = gt[gt[:, 0] == f].copy()
        g[:, 0] = 1
        (ids,) = gt_identities([FrameDetections(boxes, r[:, 6].astype(np.float32))], g, match_iou)
        new_ids = np.where(ids >= 0, ids, 1_000_000 + r[:, 1].astype(np.int64))
        out += results_rows(f, [int(v) for v in new_ids], boxes, r[:, 6].tolist())
    return out


def detection_ceiling(
    frames: Sequence[FrameDetections], ids: Sequence[NDArray[np.int64]], min_score: float
) -> list[str]:
    """The detection ceiling: every detection scoring at least ``min_score`` that matches ground truth
    (``ids >= 0``, from ``gt_identities``) output with its identity; false positives dropped.

    It is the best a tracker that outputs only these detections' boxes could score, with association *and*
    false-positive rejection both perfect. Its distance to the identity ceiling is what association alone cannot
    reach: choosing which detections to keep (weak ones, false positives) decides it."""
    from tracker_core.evaluation import results_rows

    out: list[str] = []
    for i, (det, f_ids) in enumerate(zip(frames, ids, strict=True)):
        keep = (f_ids >= 0) & (det.scores >= min_score)
        if keep.any():
            out += results_rows(i + 1, f_ids[keep].tolist(), det.boxes[keep], det.scores[keep].tolist())
    return out


def motion_breakdown(
    lines: Sequence[str],
    frames: Sequence[FrameDetections],
    ids: Sequence[NDArray[np.int64]],
    min_score: float,
    weak_below: float,
) -> dict[str, int]:
    """Where a run stands against the detection ceiling, in boxes.

    ``output_off_gt``: output boxes that are a detection matching no ground truth (``ids < 0``), and how many of
    them sit on *ghost* tracks (tracks most of whose boxes match no ground truth) rather than on tracks following a
    real person (loose or duplicate boxes). ``gt_detections_left_out``: detections scoring at least ``min_score``
    that match ground truth but were not output, and how many of those score below ``weak_below``. An output box
    is the detection it was made from (the detection smoothed by its track's filter, ``output_blend``): output
    boxes and detections are paired one to one by IoU (at least 0.5)."""
    from tracker_core.tracking.costs import iou_matrix
    from tracker_core.tracking.matching import linear_assignment

    rows = _result_array(lines)
    track_gt: dict[int, list[bool]] = {}
    off: list[int] = []  # track of each output box off ground truth
    left_out = weak = total = 0
    for i, (det, f_ids) in enumerate(zip(frames, ids, strict=True)):
        r = rows[rows[:, 0] == i + 1]
        used = np.zeros(det.boxes.shape[0], bool)
        if r.shape[0] and det.boxes.shape[0]:
            out_boxes = np.concatenate([r[:, 2:4], r[:, 2:4] + r[:, 4:6]], axis=1)
            m, _, _ = linear_assignment(1.0 - iou_matrix(out_boxes, det.boxes), 0.5)
            k = m[:, 1]
            used[k] = True
            for tid, on_gt in zip(r[m[:, 0], 1].astype(int).tolist(), (f_ids[k] >= 0).tolist(), strict=True):
                track_gt.setdefault(tid, []).append(on_gt)
                if not on_gt:
                    off.append(tid)
        want = (f_ids >= 0) & (det.scores >= min_score)
        total += int(want.sum())
        miss = want & ~used
        left_out += int(miss.sum())
        weak += int((miss & (det.scores < weak_below)).sum())
    ghost = {t for t, v in track_gt.items() if np.mean(v) < 0.5}
    return {
        "output_off_gt": len(off),
        "output_off_gt_on_ghost_tracks": sum(t in ghost for t in off),
        "gt_detections": total,
        "gt_detections_left_out": left_out,
        "gt_detections_left_out_weak": weak,
    }


def default_specs(noises: Sequence[float], wrongs: Sequence[float]) -> list[EmbeddingSpec]:
    specs = [EmbeddingSpec("motion"), EmbeddingSpec("oracle")]
    specs += [EmbeddingSpec("oracle", noise=float(s)) for s in noises]
    specs += [EmbeddingSpec("oracle", wrong=float(w)) for w in wrongs]
    specs += [EmbeddingSpec("random"), EmbeddingSpec("constant")]
    return specs


def run_sequence(
    seq: str | Path,
    specs: Sequence[EmbeddingSpec],
    seeds: Sequence[int],
    *,
    det: str | Path | None = None,
    score_scale: float = 100.0,
    score_clip: bool = False,
    config: TrackerConfig | None = None,
    dim: int = 128,
    match_iou: float = 0.5,
) -> dict[str, Any]:
    """Track ``seq`` once per (spec, seed) and score every run in one TrackEval call.

    Returns ``{"sequence", "frames", "rows": [...]}``; each row holds the spec, the mean of ``METRIC_KEYS``
    over seeds, the per-seed values and ``equals_motion`` (result files identical to the motion-only run's).
    """
    from tracker_core.evaluation import (
        METRIC_KEYS,
        evaluate_results,
        read_detections,
        read_gt,
        read_seqinfo,
        track_sequence,
        write_results,
    )
    from tracker_core.tracking import DEFAULT_CONFIG

    config = config or DEFAULT_CONFIG
    seq = Path(seq)
    info = read_seqinfo(seq)
    frames = read_detections(
        det or seq / "det" / "det.txt", info.seq_length, score_scale, score_clip=score_clip
    )
    ids = gt_identities(frames, read_gt(seq / "gt" / "gt.txt"), match_iou)
    lines: dict[str, list[str]] = {}
    margins: dict[str, tuple[float | None, float | None, float | None]] = {}
    runs: list[tuple[EmbeddingSpec, list[str]]] = []
    for k, spec in enumerate(specs):
        spec_seeds = [0] if spec.mode in ("motion", "constant") else list(seeds)
        keys = []
        for seed in spec_seeds:
            emb = oracle_embeddings(ids, spec, seed, dim)
            key = f"r{k}s{seed}"
            tracked = track_sequence(frames, info.frame_rate, config, emb)
            lines[key] = tracked.lines
            margins[key] = (
                tracked.appearance_margin,
                tracked.appearance_confusion,
                tracked.appearance_misleading,
            )
            keys.append(key)
        runs.append((spec, keys))
    motion_key = next((keys[0] for spec, keys in runs if spec.mode == "motion"), None)
    if motion_key is not None:
        lines["ceiling"] = relabel_with_gt(lines[motion_key], read_gt(seq / "gt" / "gt.txt"), match_iou)
    lines["det_ceiling"] = detection_ceiling(frames, ids, config.low_score)
    breakdown = (
        motion_breakdown(lines[motion_key], frames, ids, config.low_score, config.high_score)
        if motion_key is not None
        else None
    )
    with tempfile.TemporaryDirectory(prefix="roitrack-oracle-") as tmp:
        paths = {}
        for key, ls in lines.items():
            paths[key] = Path(tmp) / f"{key}.txt"
            write_results(paths[key], ls)
        scores = evaluate_results(seq, paths)
    motion_lines = next((lines[keys[0]] for spec, keys in runs if spec.mode == "motion"), None)
    rows = []
    for spec, keys in runs:
        per_seed = {m: [float(scores[k][m]) for k in keys] for m in METRIC_KEYS}
        rows.append(
            {
                "label": spec.label,
                "mode": spec.mode,
                "noise": spec.noise,
                "wrong": spec.wrong,
                "seeds": len(keys),
                **{m: float(np.mean(v)) for m, v in per_seed.items()},
                "per_seed": per_seed,
                "equals_motion": motion_lines is not None and all(lines[k] == motion_lines for k in keys),
                # the tracker's smoothed appearance margin and rank-1 confusion rate at the end of each run
                "final_margin": None if spec.mode == "motion" else [margins[k][0] for k in keys],
                "final_confusion": None if spec.mode == "motion" else [margins[k][1] for k in keys],
                "final_misleading": None if spec.mode == "motion" else [margins[k][2] for k in keys],
            }
        )
    ceiling = {m: float(scores["ceiling"][m]) for m in METRIC_KEYS} if "ceiling" in scores else None
    det_ceiling = {m: float(scores["det_ceiling"][m]) for m in METRIC_KEYS}
    return {
        "sequence": info.name,
        "frames": info.seq_length,
        "rows": rows,
        "id_ceiling": ceiling,
        "det_ceiling": det_ceiling,
        "motion_breakdown": breakdown,
    }


def run(
    seq: str | Path,
    frame_ranges: Sequence[str] = (),
    *,
    noises: Sequence[float] = DEFAULT_NOISES,
    wrongs: Sequence[float] = DEFAULT_WRONGS,
    seeds: int = 3,
    score_scale: float = 100.0,
    score_clip: bool = False,
    config: TrackerConfig | None = None,
    dim: int = 128,
) -> dict[str, Any]:
    """The whole harness over ``seq`` (or each ``FIRST-LAST`` frame range of it, cut in time)."""
    from tracker_core.evaluation.mot_slice import parse_frame_range, slice_sequence
    from tracker_core.tracking import DEFAULT_CONFIG

    config = config or DEFAULT_CONFIG
    specs = default_specs(noises, wrongs)
    seed_list = list(range(seeds))
    results = []
    with tempfile.TemporaryDirectory(prefix="roitrack-oracle-seq-") as tmp:
        targets: list[tuple[str, Path]] = []
        if not frame_ranges:
            targets.append(("all", Path(seq)))
        for text in frame_ranges:
            first, last = parse_frame_range(text)
            targets.append(
                (f"{first}-{last}", slice_sequence(seq, first, last, Path(tmp) / f"f{first}-{last}"))
            )
        for span, path in targets:
            res = run_sequence(
                path, specs, seed_list, score_scale=score_scale, score_clip=score_clip, config=config, dim=dim
            )
            res["span"] = span
            results.append(res)
    return {
        "source": str(seq),
        "score_scale": score_scale,
        "score_clip": score_clip,
        "seeds": seeds,
        "dim": dim,
        "config": "DEFAULT_CONFIG" if config == DEFAULT_CONFIG else "custom",
        "sequences": results,
    }


def markdown(result: dict[str, Any]) -> str:
    """One table per sequence: metrics (mean over seeds) and the IDF1 change against motion only."""
    out = []
    for seq in result["sequences"]:
        motion = next(r for r in seq["rows"] if r["mode"] == "motion")
        out.append(f"### {seq['sequence']} (frames {seq['span']}, {seq['frames']} frames)\n")
        out.append("| embeddings | seeds | " + " | ".join(REPORT_KEYS) + " | IDF1 vs motion | = motion |")
        out.append("|---|---:|" + "---:|" * len(REPORT_KEYS) + "---:|---|")
        for r in seq["rows"]:
            vals = [
                f"{r[k]:.1f}" if k != "IDSW" else f"{r[k]:.1f}".rstrip("0").rstrip(".") for k in REPORT_KEYS
            ]
            same = "" if r["mode"] == "motion" else ("yes" if r["equals_motion"] else "no")
            out.append(
                f"| {r['label']} | {r['seeds']} | "
                + " | ".join(vals)
                + f" | {round(r['IDF1'] - motion['IDF1'], 9) + 0.0:+.1f} | {same} |"  # + 0.0: no "-0.0"
            )
        for key, title in (
            ("id_ceiling", "*identity ceiling* (motion-only boxes, ground-truth IDs)"),
            ("det_ceiling", "*detection ceiling* (every detection >= low_score on ground truth, its ID)"),
        ):
            ceil = seq.get(key)
            if ceil:
                vals = [f"{ceil[k]:.1f}" if k != "IDSW" else f"{ceil[k]:.0f}" for k in REPORT_KEYS]
                out.append(
                    f"| {title} | - | " + " | ".join(vals) + f" | {ceil['IDF1'] - motion['IDF1']:+.1f} | |"
                )
        bd = seq.get("motion_breakdown")
        if bd:
            out.append(
                f"\nMotion only against the detection ceiling: {bd['output_off_gt']} output boxes match no ground "
                f"truth ({bd['output_off_gt_on_ghost_tracks']} of them on ghost tracks, the rest loose or duplicate "
                f"boxes on tracks that follow a real person); {bd['gt_detections_left_out']} of "
                f"{bd['gt_detections']} detections that match ground truth were left out "
                f"({bd['gt_detections_left_out_weak']} of them below high_score)."
            )
        out.append("")
    return "\n".join(out)


def configure(parser: argparse.ArgumentParser) -> None:
    a = parser.add_argument
    a("--seq", required=True, help="MOTChallenge sequence folder (seqinfo.ini, gt/gt.txt, det/det.txt)")
    a("--frames", nargs="*", default=[], help="FIRST-LAST ranges to run separately (default: whole sequence)")
    a("--score-scale", type=float, default=100.0, help="divide det scores by this (default 100, MOT15)")
    a(
        "--score-clip",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="clip scaled scores to [0, 1] (default on: MOT15's PETS09 public detections reach 138.9 / 100); "
        "--no-score-clip: out of range = error",
    )
    a("--noise", type=float, nargs="*", default=list(DEFAULT_NOISES), help="noise levels to sweep")
    a("--wrong", type=float, nargs="*", default=list(DEFAULT_WRONGS), help="wrong-identity rates to sweep")
    a("--seeds", type=int, default=3, help="seeds per stochastic setting (default 3)")
    a("--dim", type=int, default=128, help="embedding width (default 128)")
    a("--config", help="JSON file of TrackerConfig overrides (default: DEFAULT_CONFIG)")
    a("--out", default="docs/bench", help="folder for <name>.json / .md (default docs/bench)")
    a("--name", default="oracle", help="file name stem (default oracle)")
    a("--no-write", action="store_true", help="do not write the JSON / Markdown files")
    a("--json", action="store_true", help="print one JSON object (else the Markdown table)")


def main_args(args: argparse.Namespace) -> int:
    from tracker_core.errors import InvalidInputError
    from tracker_core.tracking import DEFAULT_CONFIG, TrackerConfig

    if args.seeds < 1 or args.dim < 2:
        raise InvalidInputError("--seeds must be >= 1 and --dim >= 2")
    if any(v < 0 for v in args.noise) or any(not 0 <= v <= 1 for v in args.wrong):
        raise InvalidInputError("--noise must be >= 0 and --wrong in [0, 1]")
    config = TrackerConfig.from_json_file(args.config) if args.config else DEFAULT_CONFIG
    result = run(
        args.seq,
        args.frames,
        noises=args.noise,
        wrongs=args.wrong,
        seeds=args.seeds,
        score_scale=args.score_scale,
        score_clip=args.score_clip,
        config=config,
        dim=args.dim,
    )
    table = markdown(result)
    if not args.no_write:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{args.name}.json").write_text(json.dumps(result, indent=1) + "\n")
        (out / f"{args.name}.md").write_text(table + "\n")
    print(json.dumps(result) if args.json else table)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.oracle", description=__doc__.splitlines()[0])
    configure(parser)
    return main_args(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
