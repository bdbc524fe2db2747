"""``roitrack bench mot``'s options and entry point."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.mot.cache import DEFAULT_CACHE


def configure(p: argparse.ArgumentParser) -> None:
    from benchmarks.mot.run import ALL_TRACKERS, DEFAULT_TRACKERS

    p.add_argument(
        "roots",
        nargs="+",
        help="folders holding MOTChallenge sequences (seqinfo.ini + det/det.txt + gt/gt.txt), or sequences",
    )
    p.add_argument(
        "--trackers",
        nargs="+",
        choices=ALL_TRACKERS,
        metavar="KEY",
        help=f"trackers to run (ours always runs; default: {' '.join(DEFAULT_TRACKERS)}; also: deep_sort_realtime)",
    )
    p.add_argument(
        "--out", default="docs/bench/mot", help="write OUT.md and OUT.json (default docs/bench/mot)"
    )
    p.add_argument("--no-write", action="store_true", help="do not write OUT.md / OUT.json")
    p.add_argument("--json", action="store_true", help="print the JSON instead of the tables")
    p.add_argument(
        "--protocol",
        default="auto",
        choices=("auto", "mot15", "mot17", "mot20"),
        help="TrackEval protocol for every sequence (default auto: from each sequence's gt and name)",
    )
    p.add_argument(
        "--score-scale",
        default="auto",
        help="detection scores: auto (default: a file whose largest score is > 1 is divided by 100 and clipped), "
        "a number to divide by, or 'max'",
    )
    p.add_argument("--score-clip", action="store_true", help="clip scaled scores to [0, 1]")
    p.add_argument(
        "--gmc",
        default="auto",
        choices=("auto", "off"),
        help="camera motion: auto (default) gives a sequence's gmc.txt to ours and the peers with a CMC hook; off",
    )
    p.add_argument("--det-name", default="det.txt", help="detections file under det/ (default det.txt)")
    p.add_argument("--cache", default=str(DEFAULT_CACHE), help=f"peer result cache (default {DEFAULT_CACHE})")
    p.add_argument("--no-cache", action="store_true", help="rerun and rescore every peer, store nothing")


def main_args(args: argparse.Namespace) -> int:
    from benchmarks.mot.report import markdown
    from benchmarks.mot.run import run_bench

    result = run_bench(
        args.roots,
        trackers=args.trackers,
        protocol=args.protocol,
        score_scale=args.score_scale,
        score_clip=args.score_clip,
        gmc=args.gmc,
        cache_dir=None if args.no_cache else args.cache,
        det_name=args.det_name,
    )
    md = markdown(result)
    if not args.no_write:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
        out.with_suffix(".md").write_text(md)
    print(json.dumps(result) if args.json else md)
    return 0
