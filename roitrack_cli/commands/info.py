"""``roitrack info``: versions, devices and installed commands (a quick install check)."""

from __future__ import annotations

import argparse
import json
import platform

HELP = "print versions, devices and the installed commands"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    import grpc
    import numpy
    import torch
    import torchvision

    from roitrack_cli.main import _available
    from tracker_core import __version__
    from tracker_core.inference import hardware, installed_backends, supported_precisions

    info = {
        "roitrack": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "grpcio": grpc.__version__,
        "numpy": numpy.__version__,
        "cuda_available": torch.cuda.is_available(),
        "cuda_devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "cpu": hardware.cpu_name(),
        "cpu_bf16": hardware.has_fast_bf16(),
        "cpu_amx": hardware.has_amx_bf16(),
        # inference backends installed here and the precisions each runs fast on this CPU (--backend auto)
        "inference_backends": {b: list(supported_precisions(b)) for b in installed_backends()},
        "commands": sorted(_available()),
    }
    if args.json:
        print(json.dumps(info))
    else:
        for k, v in info.items():
            print(f"{k:>14}: {v}")
    return 0
