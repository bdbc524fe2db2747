"""``roitrack slice-seq``: frames FIRST-LAST of a MOTChallenge sequence as a new sequence (time splits)."""

from __future__ import annotations

import argparse

HELP = "cut a frame range of a MOTChallenge sequence into a new sequence (train/test splits in time)"


def configure(parser: argparse.ArgumentParser) -> None:
    a = parser.add_argument
    a("seq", help="source MOTChallenge sequence folder (seqinfo.ini, img1/, gt/, det/)")
    a("--frames", required=True, help="FIRST-LAST, 1-based and inclusive (e.g. 251-400)")
    a("--out", required=True, help="new sequence folder (must not exist or be empty)")
    a("--copy", action="store_true", help="copy the images instead of linking to them")
    a(
        "--step",
        type=int,
        default=1,
        help="keep every STEP-th frame (frame rate / STEP): the scene as a lower-frame-rate camera sees it",
    )


def run(args: argparse.Namespace) -> int:
    from tracker_core.evaluation import read_seqinfo
    from tracker_core.evaluation.mot_slice import parse_frame_range, slice_sequence

    first, last = parse_frame_range(args.frames)
    out = slice_sequence(args.seq, first, last, args.out, copy_images=args.copy, step=args.step)
    every = f", one frame in {args.step}," if args.step > 1 else ""
    print(f"wrote {out}: frames {first}-{last} of {args.seq}{every} as 1-{read_seqinfo(out).seq_length}")
    return 0
