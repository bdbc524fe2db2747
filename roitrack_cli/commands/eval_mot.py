"""``roitrack eval-mot``: track a MOTChallenge sequence and score it with TrackEval."""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

HELP = "track a MOTChallenge sequence and score it with TrackEval"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seq", required=True, help="sequence folder: seqinfo.ini, img1/, gt/gt.txt")
    parser.add_argument(
        "--det", help="detections (MOTChallenge det.txt); omit to run the detector (--weights)"
    )
    parser.add_argument(
        "--score-scale",
        default="1",
        help="divide det scores by this (default 1: scores already in [0, 1]; 100 for MOT15's 0..100; "
        "'max': by the file's largest score)",
    )
    parser.add_argument(
        "--score-clip",
        action="store_true",
        help="clip scaled scores to [0, 1] (without it a score outside [0, 1] is an error)",
    )
    parser.add_argument(
        "--min-score", type=float, default=0.0, help="drop detections below this (after scaling)"
    )
    parser.add_argument(
        "--appearance",
        choices=("off", "on", "auto"),
        default="auto",
        help="ROI appearance embeddings: on (needs --weights and --encoder), off, or auto (default: on when an "
        "encoder is given, as the server does); the tracker weighs them by how informative they prove",
    )
    parser.add_argument("--weights", help="detector .safetensors (for --appearance on, or without --det)")
    parser.add_argument("--encoder", help="ROI encoder .safetensors (for --appearance on)")
    parser.add_argument("--device", default="cpu", help="torch device for the detector/encoder")
    parser.add_argument("--size", type=int, default=640, help="detector input size (multiple of 32)")
    parser.add_argument(
        "--conf", type=float, default=0.25, help="detector confidence threshold (without --det)"
    )
    parser.add_argument(
        "--no-fuse",
        action="store_true",
        help="run the detector unfused (default: fused for inference, as `roitrack serve` runs it)",
    )
    parser.add_argument("--config", help="JSON file of TrackerConfig overrides (default: DEFAULT_CONFIG)")
    parser.add_argument("--out", help="write the results here (MOTChallenge format)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from tracker_core.errors import InvalidInputError
    from tracker_core.evaluation import (
        METRIC_KEYS,
        evaluate_results,
        read_detections,
        read_seqinfo,
        track_sequence,
        write_results,
    )
    from tracker_core.tracking import DEFAULT_CONFIG, TrackerConfig

    seq = Path(args.seq)
    info = read_seqinfo(seq)
    if args.appearance == "auto":
        args.appearance = "on" if args.encoder else "off"
    if args.appearance == "on" and not (args.weights and args.encoder):
        raise InvalidInputError("--appearance on needs --weights (detector) and --encoder (ROI encoder)")
    if not args.det and not args.weights:
        raise InvalidInputError("give --det (a detections file) or --weights (run the detector)")
    config = TrackerConfig.from_json_file(args.config) if args.config else DEFAULT_CONFIG

    frames = (
        read_detections(args.det, info.seq_length, args.score_scale, args.min_score, args.score_clip)
        if args.det
        else None
    )
    embeddings = None
    t0 = time.perf_counter()
    if args.weights and (frames is None or args.appearance == "on"):
        from tracker_core.evaluation.image_source import frames_from_images

        frames, embeddings = frames_from_images(
            seq,
            info,
            args.weights,
            encoder=args.encoder if args.appearance == "on" else None,
            detections=frames,
            device=args.device,
            size=args.size,
            conf=args.conf,
            fuse=not args.no_fuse,
        )
    image_s = time.perf_counter() - t0
    assert frames is not None
    run_ = track_sequence(frames, info.frame_rate, config, embeddings)

    with tempfile.TemporaryDirectory(prefix="roitrack-evalmot-") as tmp:
        out = Path(args.out) if args.out else Path(tmp) / f"{info.name}.txt"
        write_results(out, run_.lines)
        scores = evaluate_results(seq, {"roitrack": out})["roitrack"]
    result: dict[str, object] = {k: scores[k] for k in METRIC_KEYS}
    result.update(
        {
            "frames": run_.frames,
            "tracker_ms_per_frame": run_.ms_per_frame,
            "sequence": info.name,
            "appearance": args.appearance,
            "detections": args.det or f"detector {args.weights}",
            "image_pipeline_s": image_s,
            # how informative the tracker judged the embeddings at the end (docs/tracking.md, look-alikes)
            "appearance_margin": run_.appearance_margin,
            "appearance_confusion": run_.appearance_confusion,
            "appearance_informative": run_.appearance_informative,
            "appearance_misleading": run_.appearance_misleading,
        }
    )
    if args.out:
        result["results"] = str(args.out)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{info.name}: {run_.frames} frames, tracker {run_.ms_per_frame:.3f} ms/frame")
        for k in METRIC_KEYS:
            v = result[k]
            print(f"  {k:>5}: {v:.2f}" if isinstance(v, float) else f"  {k:>5}: {v}")
        if args.out:
            print(f"results written to {args.out}")
    return 0
