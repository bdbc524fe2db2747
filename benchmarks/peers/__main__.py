"""``python -m benchmarks.peers``: run the peer benchmark, write JSON + Markdown, print the table."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchmarks.peers.run import markdown_table, run_peers
from tracker_core.errors import InvalidInputError, RoitrackError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.peers", description=__doc__)
    p.add_argument("--seq", required=True, help="MOTChallenge sequence folder (seqinfo.ini, gt/gt.txt)")
    p.add_argument("--det", help="detections file (default: SEQ/det/det.txt)")
    p.add_argument(
        "--score-scale",
        default="1",
        help="divide scores by this (100 for MOT15 det.txt; 'max': by the largest)",
    )
    p.add_argument(
        "--score-clip",
        action="store_true",
        help="clip scaled scores to [0, 1] (else out of range is an error)",
    )
    p.add_argument("--min-score", type=float, default=0.0, help="drop detections below this (after scaling)")
    p.add_argument("--repeats", type=int, default=3, help="timing: best of this many runs per tracker")
    p.add_argument("--only", nargs="*", help="keys of the trackers to run (default: all)")
    p.add_argument(
        "--sequential",
        action="store_true",
        help="time each tracker alone over the whole sequence (default: lockstep, frame i to every tracker first)",
    )
    p.add_argument("--out", default="docs/bench/peers", help="write OUT.json and OUT.md ('' to skip)")
    p.add_argument(
        "--weights", help="detector .safetensors: with --encoder, feed ROI embeddings (ours + DeepSORT)"
    )
    p.add_argument("--encoder", help="ROI encoder .safetensors (needs --weights)")
    p.add_argument("--device", default="cpu", help="torch device for the detector/encoder")
    p.add_argument("--size", type=int, default=640, help="detector input size (multiple of 32)")
    args = p.parse_args(argv)
    det = args.det or str(Path(args.seq) / "det" / "det.txt")
    try:
        embeddings = None
        if args.encoder or args.weights:
            if not (args.encoder and args.weights):
                raise InvalidInputError("--encoder and --weights go together")
            from tracker_core.evaluation import read_detections, read_seqinfo
            from tracker_core.evaluation.image_source import frames_from_images

            info = read_seqinfo(args.seq)
            frames = read_detections(det, info.seq_length, args.score_scale, args.min_score, args.score_clip)
            _, embeddings = frames_from_images(
                args.seq,
                info,
                args.weights,
                args.encoder,
                detections=frames,
                device=args.device,
                size=args.size,
            )
        result = run_peers(
            args.seq,
            det,
            args.score_scale,
            args.min_score,
            args.repeats,
            embeddings=embeddings,
            only=args.only,
            sequential=args.sequential,
            score_clip=args.score_clip,
        )
    except RoitrackError as exc:
        print(f"benchmarks.peers: error: {exc}", file=sys.stderr)
        return 2
    table = markdown_table(result)
    print(table)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
        how = (
            "each tracker alone over the whole sequence"
            if result["timing"] == "sequential"
            else "every tracker gets frame i before any gets frame i+1"
        )
        out.with_suffix(".md").write_text(
            f"Peer benchmark on {result['sequence']} ({result['frames']} frames, {result['frame_rate']} fps), "
            f"detections {result['detections']} (scores / {result['score_scale']}{', clipped' if result['score_clip'] else ''}), "
            f"ms/frame = time inside each tracker's update call, best of {result['repeats']} {result['timing']} "
            f"runs ({how}); {result['cpus']} CPUs, 1-min load average {result['load_avg_1m_at_end']:.1f} at the "
            "end.\n\n" + table
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
