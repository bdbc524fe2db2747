"""``roitrack bench ablation``: our tracker with one global configuration and with single changes to it, on every
group of sequences, scored by TrackEval per group - the table behind the defaults (docs/tracking.md)."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.mot.discover import discover
from tracker_core.errors import InvalidInputError
from tracker_core.evaluation import (
    evaluate_sequences,
    read_camera_motion,
    read_detections,
    track_sequence,
    write_results,
)
from tracker_core.motion import gate_known_motion
from tracker_core.tracking import DEFAULT_CONFIG, TrackerConfig

# each kept rule of issue 18 switched off, and the former defaults: what the defaults table documents
DEFAULT_VARIANTS: tuple[dict[str, Any], ...] = (
    {"height_modulated": False},
    {"direction_weight": 0.0},
    {"stale_cost": 0.0},
    {"score_weight": 0.0},
    {"match_cost_low_lost": 1.0},
    {"output_blend": 0.0, "output_blend_shape": 0.0},
    {"output_blend_shape": 0.0},
    {"confirm_hits": 2},
    {"max_lost_s": 3.0},
    {"q_vel": 0.1},
    {"high_score": 0.5, "new_track_score": 0.6},
)
FIGURES = ("HOTA", "IDF1", "IDSW", "MOTA", "AssA", "DetA")


def _label(change: dict[str, Any]) -> str:
    return ", ".join(f"{k}={json.dumps(v)}" for k, v in change.items()) or "defaults"


def run_ablation(
    roots: Sequence[str | Path],
    variants: Sequence[dict[str, Any]] = DEFAULT_VARIANTS,
    base: TrackerConfig = DEFAULT_CONFIG,
    gmc: str = "auto",
) -> dict[str, Any]:
    """``{groups: [{group, protocol, rows: [{change, HOTA, ..., d_HOTA, ...}]}]}``: the base first, then each
    variant (the base with that change), every group scored in one TrackEval call for all of them."""
    configs: list[tuple[dict[str, Any], TrackerConfig]] = [({}, base)]
    configs += [(dict(v), base.replace(**v)) for v in variants]
    entries = discover(roots, gmc=gmc)
    groups: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="roitrack-ablation-") as tmp:
        for g in dict.fromkeys(e.group for e in entries):
            members = [e for e in entries if e.group == g]
            results: dict[str, dict[str, str | Path]] = {str(i): {} for i in range(len(configs))}
            t0 = time.perf_counter()
            for e in members:
                rule = e.score_rule
                frames = read_detections(
                    e.det, e.info.seq_length, "max" if rule.by_max else rule.scale, score_clip=rule.clip
                )
                warps = None
                if e.gmc is not None:  # as the server applies it: only while the camera is seen moving
                    known = read_camera_motion(e.gmc, e.info.seq_length)
                    warps = gate_known_motion(known, e.info.im_width, e.info.im_height, e.info.frame_rate)
                for i, (_, cfg) in enumerate(configs):
                    out = Path(tmp) / str(i) / g / f"{e.info.name}.txt"
                    write_results(out, track_sequence(frames, e.info.frame_rate, cfg, None, warps).lines)
                    results[str(i)][e.info.name] = out
            scored = evaluate_sequences([e.path for e in members], results, members[0].protocol.name)
            rows: list[dict[str, Any]] = []
            for i, (change, _) in enumerate(configs):
                fig = {k: scored[str(i)].combined[k] for k in FIGURES}
                row: dict[str, Any] = {"change": _label(change), **fig}
                if i:
                    row.update({f"d_{k}": fig[k] - rows[0][k] for k in FIGURES})
                rows.append(row)
            groups.append(
                {
                    "group": g,
                    "protocol": members[0].protocol.name,
                    "sequences": [e.info.name for e in members],
                    "seconds": time.perf_counter() - t0,
                    "rows": rows,
                }
            )
            print(f"{g}: {len(configs)} configurations ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    return {
        "base": _label({k: v for k, v in base.__dict__.items() if getattr(DEFAULT_CONFIG, k) != v}),
        "groups": groups,
    }


def markdown(result: dict[str, Any]) -> str:
    groups = result["groups"]
    head = "| change | " + " | ".join(f"{g['group']} HOTA / IDF1 / IDSW" for g in groups) + " |"
    lines = [
        f"Base: {result['base']}. Rows after the first: the difference from it (HOTA and IDF1 in points, IDSW in "
        "switches).",
        "",
        head,
        "|" + " --- |" * (len(groups) + 1),
    ]
    for i, row in enumerate(groups[0]["rows"]):
        cells = []
        for g in groups:
            r = g["rows"][i]
            if i == 0:
                cells.append(f"{r['HOTA']:.2f} / {r['IDF1']:.2f} / {r['IDSW']}")
            else:
                cells.append(f"{r['d_HOTA']:+.2f} / {r['d_IDF1']:+.2f} / {r['d_IDSW']:+d}")
        lines.append(f"| {row['change']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("roots", nargs="+", help="folders holding MOTChallenge sequences, or sequences")
    p.add_argument(
        "--variant",
        action="append",
        help="a JSON object of TrackerConfig changes to try (repeatable; default: each of issue 18's rules off)",
    )
    p.add_argument(
        "--config", help="JSON file of TrackerConfig overrides for the base (default: the defaults)"
    )
    p.add_argument(
        "--gmc", default="auto", choices=("auto", "off"), help="a sequence's gmc.txt (auto) or none"
    )
    p.add_argument("--out", default="docs/bench/ablation", help="write OUT.md and OUT.json")
    p.add_argument("--no-write", action="store_true", help="do not write OUT.md / OUT.json")
    p.add_argument("--json", action="store_true", help="print the JSON instead of the table")


def main_args(args: argparse.Namespace) -> int:
    variants: list[dict[str, Any]] = list(DEFAULT_VARIANTS)
    if args.variant:
        variants = []
        for text in args.variant:
            try:
                v = json.loads(text)
            except json.JSONDecodeError as exc:
                raise InvalidInputError(f"--variant {text!r} is not JSON: {exc}") from None
            if not isinstance(v, dict):
                raise InvalidInputError(f"--variant {text!r} must be a JSON object of TrackerConfig fields")
            DEFAULT_CONFIG.replace(**v)  # ConfigError naming an unknown field or bad value
            variants.append(v)
    base = TrackerConfig.from_json_file(args.config) if args.config else DEFAULT_CONFIG
    result = run_ablation(args.roots, variants, base, args.gmc)
    md = markdown(result)
    if not args.no_write:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
        out.with_suffix(".md").write_text(md)
    print(json.dumps(result) if args.json else md)
    return 0
