"""``roitrack val``: cross-frame matching metrics of an encoder against three baselines on the same queries.

Queries are the labelled objects of the later frame, the gallery those of the earlier frame; a query is valid
when its identity is in the gallery; ranking by cosine similarity. Reports Top-1, Mean Rank, MRR, Recall@5,
Recall@10 (no clipping of K), Num. Queries, Num. Valid; pooled over all valid queries and averaged per pair.
"""

from __future__ import annotations

import argparse
import json
from functools import partial
from pathlib import Path

from roitrack_cli.reid_args import add_reid_args, reid_options

HELP = "cross-frame matching metrics of an encoder (Top-1, MRR, Recall@K)"


def configure(parser: argparse.ArgumentParser) -> None:
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--mot", metavar="SEQDIR", help="MOTChallenge sequence (img1/, gt/gt.txt)")
    src.add_argument(
        "--pairs", metavar="DIR", help="folder with pre/ and now/, each pic/N.jpg + lable/N.json"
    )
    parser.add_argument("--gap", type=int, default=50, help="--mot: frames between gallery and query frame")
    parser.add_argument("--stride", type=int, default=10, help="--mot: frames between consecutive pairs")
    parser.add_argument("--weights", required=True, metavar="DETECTOR.safetensors", help="the detector")
    parser.add_argument(
        "--encoder",
        metavar="ENCODER.safetensors",
        help="the encoder checkpoint (omit to score only the baselines of --features on this detector)",
    )
    parser.add_argument(
        "--features",
        default="spp+s8",
        help="without --encoder: the taps whose pooled ROI features are the raw_features baseline (default spp+s8)",
    )
    parser.add_argument(
        "--input-size",
        type=int,
        default=None,
        metavar="N",
        help="long side of the detector input (default: the encoder's training value)",
    )
    parser.add_argument(
        "--square",
        dest="rect",
        action="store_false",
        default=None,
        help="letterbox to NxN (default: as trained)",
    )
    parser.add_argument(
        "--rect",
        dest="rect",
        action="store_true",
        help="letterbox to the frame's aspect (default: as trained)",
    )
    add_reid_args(
        parser,
        "an ONNX person-ReID model to score beside the encoder and the baselines, on each box's crop of the "
        "original frame (repeat for several: methods reid:<file stem>)",
        repeat=True,
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


_LABELS = (
    ("top1", "Top-1"),
    ("mean_rank", "Mean Rank"),
    ("mrr", "MRR"),
    ("recall@5", "Recall@5"),
    ("recall@10", "Recall@10"),
)


def _fmt(v: float | None) -> str:
    return "   n/a" if v is None else f"{v:6.3f}"


def format_table(result: dict) -> str:
    lines = []
    width = max(16, *(len(m) + 1 for m in result))
    for mode in ("pooled", "per_pair"):
        lines.append(f"[{mode}]")
        lines.append(f"{'method':<{width}}" + "".join(f"{name:>11}" for _, name in _LABELS))
        for method, m in result.items():
            lines.append(f"{method:<{width}}" + "".join(f"{_fmt(m[mode][k]):>11}" for k, _ in _LABELS))
    first = next(iter(result.values()))
    lines.append(
        f"Num. Queries {first['num_queries']}  Num. Valid {first['num_valid']}  Num. Pairs {first['num_pairs']}"
    )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from tracker_core.detector import load_detector
    from tracker_core.encoder import load_encoder
    from training.encoder.config import input_size_for
    from training.encoder.val_data import dir_pairs, mot_pairs
    from training.encoder.validate import extract_val_features, pair_reid_embeddings, validate

    detector = load_detector(args.weights, device=args.device)
    encoder = load_encoder(args.encoder, detector=detector, device=args.device) if args.encoder else None
    pairs = mot_pairs(args.mot, args.gap, args.stride) if args.mot else dir_pairs(args.pairs)
    reid_inputs = {}
    if args.reid_model:
        from tracker_core.reid import load_reid_model

        opts = reid_options(args)
        for path in args.reid_model:
            model = load_reid_model(path, opts, device=args.device)
            name = "reid" if len(args.reid_model) == 1 else f"reid:{Path(path).stem}"
            reid_inputs[name] = pair_reid_embeddings(pairs, model)
    if encoder is None:  # the detector's own features: baselines only
        from tracker_core.features import parse_feature_spec

        spec = parse_feature_spec(args.features)
        long_side = int(args.input_size or 640)
        rect = bool(args.rect)
        size_fn = partial(input_size_for, long_side=long_side, rect=rect)
        val = extract_val_features(pairs, detector, spec, size_fn)
        result = validate(val, None, args.device, reid_inputs)
        methods: tuple[str, ...] = ("raw_features", "center_distance", "color_histogram", *reid_inputs)
        title = f"no encoder: baselines on {args.weights} ({spec.name})"
    else:
        meta = encoder.meta
        long_side = int(args.input_size or meta.training.get("input_size", 640))
        rect = args.rect if args.rect is not None else bool(meta.training.get("rect", False))
        size_fn = partial(input_size_for, long_side=long_side, rect=rect)
        val = extract_val_features(pairs, detector, meta.spec, size_fn)
        result = validate(val, encoder, args.device, reid_inputs)
        methods = ("encoder", "raw_features", "center_distance", "color_histogram", *reid_inputs)
        title = f"encoder {args.encoder} ({meta.features})"
    result = {k: result[k] for k in methods}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{title}, {len(pairs)} pairs, input long side {long_side}{' rect' if rect else ' square'}")
        print(format_table(result))
    return 0
