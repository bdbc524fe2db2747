"""``roitrack convert-weights SRC DST``: official YOLOv7 ``.pt`` -> our ``.safetensors`` (safely, no pickle code)."""

from __future__ import annotations

import argparse

HELP = "convert an official YOLOv7 .pt to safetensors"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src", help="official checkpoint (yolov7.pt / yolov7-tiny.pt, torch.save zip format)")
    parser.add_argument("dst", help="output .safetensors file (written atomically)")
    parser.add_argument("--json", action="store_true", help="print the written metadata as one JSON object")


def run(args: argparse.Namespace) -> int:
    from tracker_core.detector.convert import convert_weights

    meta = convert_weights(args.src, args.dst)
    if args.json:
        print(meta.to_json())
    else:
        print(
            f"wrote {args.dst}: arch={meta.arch} nc={meta.nc} strides={meta.strides} "
            f"source_sha256={meta.source_sha256}"
        )
    return 0
