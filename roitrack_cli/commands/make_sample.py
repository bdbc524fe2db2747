"""``roitrack make-sample``: render the synthetic street scene (MOTChallenge layout, gt + imperfect detections)."""

from __future__ import annotations

import argparse

HELP = "render a synthetic street scene with ground truth"


def configure(parser: argparse.ArgumentParser) -> None:
    a = parser.add_argument
    a("--out", default="demo_out/sample", help="folder to write the sequence into (default demo_out/sample)")
    a("--name", default="roitrack-sample", help="sequence name (default roitrack-sample)")
    a("--frames", type=int, default=150, help="number of frames (default 150)")
    a("--width", type=int, default=320, help="frame width (default 320)")
    a("--height", type=int, default=240, help="frame height (default 240)")
    a("--fps", type=int, default=10, help="frame rate written to seqinfo.ini (default 10)")
    a("--seed", type=int, default=0, help="random seed (default 0)")


def run(args: argparse.Namespace) -> int:
    from client.sample import make_sample

    seq = make_sample(args.out, args.name, args.frames, args.width, args.height, args.seed, args.fps)
    gt = len((seq / "gt" / "gt.txt").read_text().splitlines())
    det = len((seq / "det" / "det.txt").read_text().splitlines())
    print(
        f"wrote {seq}: {args.frames} frames {args.width}x{args.height}, {gt} ground-truth boxes, {det} detections"
    )
    return 0
