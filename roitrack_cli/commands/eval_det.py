"""``roitrack eval-det``: detection quality of detectors and detection files, one table, one scoring code.

COCO-style AP50, AP50:95, AP75, AP by box size and AR@100 (pycocotools), VOC-style AP50 and precision / recall at
the operating threshold, on a MOTChallenge sequence (rows that are not scored are ignore regions) or a YOLO
dataset split. Every ``--weights`` detector runs as served (letterbox ``--size``, confidence 0.001 for AP,
NMS at IoU 0.45); every ``--det`` file is read by the one detection reader of the project.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = "detection AP (COCO + VOC), precision / recall of detectors and det.txt files"


def configure(parser: argparse.ArgumentParser) -> None:
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--seq", metavar="SEQDIR", help="MOTChallenge sequence (img1/, gt/gt.txt)")
    src.add_argument("--yolo", metavar="DATA.yaml", help="YOLO dataset (data.yaml)")
    parser.add_argument("--split", default="val", help="--yolo: the split to score (default val)")
    parser.add_argument(
        "--weights", action="append", default=[], metavar="W", help="detector .safetensors (repeatable)"
    )
    parser.add_argument(
        "--det", action="append", default=[], metavar="DET.txt", help="MOTChallenge detections (repeatable)"
    )
    parser.add_argument(
        "--score-scale", default="1", help="divide det.txt scores by this (100 for MOT15, 'max')"
    )
    parser.add_argument("--score-clip", action="store_true", help="clip scaled det.txt scores to [0, 1]")
    parser.add_argument(
        "--size", type=int, default=640, help="detector input size (square letterbox, as served)"
    )
    parser.add_argument(
        "--conf", type=float, default=0.25, help="operating threshold of --weights (P/R reported there)"
    )
    parser.add_argument(
        "--min-score", type=float, default=0.0, help="operating threshold of --det files (after scaling)"
    )
    parser.add_argument(
        "--gt-format", default="auto", choices=("auto", "mot15", "mot17"), help="gt.txt columns 8-10"
    )
    parser.add_argument("--min-visibility", type=float, default=0.0, help="MOT17 rows below: ignore regions")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from tracker_core.errors import InvalidInputError
    from tracker_core.evaluation.det_eval import evaluate_detections, format_table
    from tracker_core.evaluation.det_metrics import FrameDets, FrameTruth
    from tracker_core.evaluation.det_truth import image_size, read_mot_truth, read_yolo_data, read_yolo_split
    from tracker_core.evaluation.mot_io import read_detections, read_seqinfo

    if not args.weights and not args.det:
        raise InvalidInputError("give --weights (a detector) and/or --det (a detection file)")
    if args.size < 32 or args.size % 32:
        raise InvalidInputError(f"--size must be a multiple of 32, got {args.size}")
    if args.seq:
        items = read_mot_truth(args.seq, args.gt_format, (1,), args.min_visibility)
        info = read_seqinfo(args.seq)
        names = ["person"]
        sizes = (
            [(info.im_width, info.im_height)] * len(items)
            if info.im_width
            else [image_size(it.image) for it in items]
        )
        where = f"{args.seq} ({len(items)} frames)"
    else:
        if args.det:
            raise InvalidInputError("--det files are MOTChallenge detections: use them with --seq")
        data = read_yolo_data(args.yolo)
        items = read_yolo_split(data, args.split)
        names = data.names
        sizes = [image_size(it.image) for it in items]
        where = f"{args.yolo} split {args.split} ({len(items)} images)"
    truth = [FrameTruth(it.boxes, it.ignore, it.classes) for it in items]
    rows = []
    for w in args.weights:
        dets = _run_detector(w, [it.image for it in items], names, args.size, args.device)
        rows.append(
            evaluate_detections(
                f"{Path(w).name} (detector, {args.size})", dets, truth, sizes, args.conf, len(names)
            )
        )
    for d in args.det:
        frames = read_detections(d, len(items), args.score_scale, score_clip=args.score_clip)
        dets = [FrameDets(f.boxes, f.scores, np.zeros(len(f.scores), np.int64)) for f in frames]
        rows.append(evaluate_detections(f"{d} (file)", dets, truth, sizes, args.min_score, len(names)))
    if args.json:
        print(json.dumps({"data": where, "rows": [r.to_dict() for r in rows]}))
    else:
        print(f"eval-det on {where}; COCO figures by pycocotools, VOC AP50 all-point (IoU > 0.5), P/R at thr")
        print(format_table(rows))
    return 0


def _run_detector(weights: str, images: list[Path], names: list[str], size: int, device: str) -> list:
    """Detections of every image (original px) as served: letterbox ``size``, conf 0.001, NMS 0.45. A detector
    whose classes include ``person`` scoring a one-class (``person``) ground truth keeps only that class."""
    import numpy as np

    from tracker_core.detector import load_detector
    from tracker_core.evaluation.det_metrics import FrameDets
    from tracker_core.evaluation.det_truth import read_rgb

    det = load_detector(weights, device=device)
    keep: list[int] | None = None
    if names == ["person"] and "person" in det.names:
        keep = [det.names.index("person")]
    elif det.names != names and len(names) > 1:
        raise_mismatch(weights, det.names, names)
    out = []
    for img in images:
        d = det.detect([read_rgb(img)], size=(size, size), conf=0.001, iou=0.45, max_det=300, classes=keep)[0]
        cls = np.zeros(len(d.classes), np.int64) if keep is not None else d.classes.astype(np.int64)
        out.append(FrameDets(d.boxes, d.scores, cls))
    return out


def raise_mismatch(weights: str, got: list[str], want: list[str]) -> None:
    from tracker_core.errors import InvalidInputError

    raise InvalidInputError(
        f"{weights}: detector classes {got[:5]}... differ from the dataset's {want[:5]}..."
    )
