"""``roitrack download-weights {yolov7,yolov7-tiny}``: fetch the official release file and convert it."""

from __future__ import annotations

import argparse

HELP = "download and convert official YOLOv7 weights"

ARCH_CHOICES = ("yolov7", "yolov7-tiny")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("arch", choices=ARCH_CHOICES, help="which official release file")
    parser.add_argument(
        "--dir", default="weights", help="folder for the .pt and the .safetensors (default: weights)"
    )
    parser.add_argument(
        "--url-base",
        default=None,
        help="where the release files live (default: the official GitHub release v0.1)",
    )
    parser.add_argument(
        "--force", action="store_true", help="download again even if the .pt is already there"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from tracker_core.detector.download import OFFICIAL_URL_BASE, download_weights

    result = download_weights(
        args.arch,
        folder=args.dir,
        url_base=args.url_base or OFFICIAL_URL_BASE,
        progress=not args.no_progress,
        force=args.force,
    )
    print(
        f"wrote {result.weights}: arch={result.meta.arch} nc={result.meta.nc} "
        f"source={result.checkpoint} source_sha256={result.meta.source_sha256}"
    )
    return 0
