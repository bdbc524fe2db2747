"""``roitrack make-pan``: a moving camera made from a static sequence (a panning, zooming window) with its true
camera motion, for testing camera motion compensation (``tracker_core.evaluation.synthetic_pan``)."""

from __future__ import annotations

import argparse

HELP = "synthetic pan/zoom over a static MOTChallenge sequence (frames, moved gt/det, true gmc.txt)"


def configure(parser: argparse.ArgumentParser) -> None:
    a = parser.add_argument
    a("src", help="source MOTChallenge sequence with images (e.g. ../shared/data/PETS09-S2L1-dev)")
    a("--out", required=True, help="new sequence folder (must not exist or be empty)")
    a("--frames", type=int, help="first N frames (default: all)")
    a(
        "--size",
        type=int,
        nargs=2,
        default=(640, 480),
        metavar=("W", "H"),
        help="output size (default 640 480)",
    )
    a("--seed", type=int, default=0, help="seed of the jerky path components")
    a(
        "--zoom",
        type=float,
        nargs=2,
        default=(0.55, 0.8),
        metavar=("MIN", "MAX"),
        help="window width range as a share of the source width (default 0.55 0.8)",
    )
    a("--speed", type=float, default=1.0, help="scale of the smooth pan (default 1)")
    a("--jerk", type=float, default=10.0, help="size of the sudden steps in source pixels (default 10)")
    a("--shake", type=float, default=1.5, help="per-frame shake in source pixels (default 1.5)")


def run(args: argparse.Namespace) -> int:
    from tracker_core.evaluation.synthetic_pan import make_pan_sequence

    out = make_pan_sequence(
        args.src,
        args.out,
        frames=args.frames,
        out_size=(args.size[0], args.size[1]),
        seed=args.seed,
        zoom=(args.zoom[0], args.zoom[1]),
        speed=args.speed,
        jerk_px=args.jerk,
        shake_px=args.shake,
    )
    print(f"wrote {out} (img1/, gt/gt.txt, det/det.txt, gmc.txt, seqinfo.ini)")
    return 0
