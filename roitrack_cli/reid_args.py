"""The ``--reid-*`` flags every command that can run a ReID model shares (serve, eval-mot, demo, val, bench)."""

from __future__ import annotations

import argparse
from typing import Any

REID_FLAGS = ("reid_size", "reid_channels", "reid_mean", "reid_std", "reid_pixel_scale", "reid_config")


def add_reid_args(
    parser: argparse.ArgumentParser, model_help: str | None = None, repeat: bool = False
) -> None:
    """``--reid-model`` plus the input settings (each overrides the model's metadata / JSON sidecar)."""
    a = parser.add_argument
    a(
        "--reid-model",
        metavar="FILE.onnx",
        action="append" if repeat else "store",
        help=model_help
        or "ONNX person-ReID model on image crops (appearance embeddings beside the ROI encoder; docs/reid.md)",
    )
    a("--reid-size", metavar="HxW", help="ReID input height x width, e.g. 256x128 (default: the model's)")
    a("--reid-channels", choices=("rgb", "bgr"), help="channel order the ReID model expects (default rgb)")
    a("--reid-mean", metavar="R,G,B", help="ReID per-channel mean after pixel scaling (default ImageNet's)")
    a("--reid-std", metavar="R,G,B", help="ReID per-channel std after pixel scaling (default ImageNet's)")
    a("--reid-pixel-scale", type=float, help="pixels are divided by this first (default 255)")
    a(
        "--reid-config",
        metavar="FILE.json",
        help="ReID input settings as JSON (default: FILE.json beside the model)",
    )


def reid_options(args: argparse.Namespace) -> Any:
    """``tracker_core.reid.ReidOptions`` from the flags (``ConfigError`` for malformed values)."""
    from tracker_core.reid import ReidOptions

    return ReidOptions.from_strings(
        size=args.reid_size,
        channels=args.reid_channels,
        mean=args.reid_mean,
        std=args.reid_std,
        pixel_scale=args.reid_pixel_scale,
        config=args.reid_config,
    )


def reid_cli_args(args: argparse.Namespace) -> list[str]:
    """The given input flags again, as command-line arguments (for child commands)."""
    out: list[str] = []
    for name in REID_FLAGS:
        v = getattr(args, name, None)
        if v is not None:
            out += ["--" + name.replace("_", "-"), str(v)]
    return out
