"""``roitrack`` entry point.

Every sub-command lives in its own module ``roitrack_cli/commands/<name>.py`` exposing ``HELP`` (one line),
``configure(parser)`` and ``run(args) -> int``. Modules are imported only when their command runs (or its
``--help`` is asked for), so ``roitrack --help`` is instant and never imports torch.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import os
import sys
from collections.abc import Sequence
from types import ModuleType

from tracker_core.errors import RoitrackError

# name -> (module, one-line help). The order is the order of ``roitrack --help``.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("roitrack_cli.commands.demo", "run the embedded end-to-end demo (server + streamed sample)"),
    "make-sample": ("roitrack_cli.commands.make_sample", "render a synthetic street scene with ground truth"),
    "serve": ("roitrack_cli.commands.serve", "start the gRPC tracking server"),
    "stream": ("roitrack_cli.commands.stream", "stream a video/camera/folder to a server and show tracks"),
    "loadgen": ("roitrack_cli.commands.loadgen", "N concurrent camera streams against a server"),
    "health": ("roitrack_cli.commands.health", "ask a server's gRPC health service (exit 0 if SERVING)"),
    "convert-weights": (
        "roitrack_cli.commands.convert_weights",
        "convert an official YOLOv7 .pt to safetensors",
    ),
    "download-weights": (
        "roitrack_cli.commands.download_weights",
        "download and convert official YOLOv7 weights",
    ),
    "train": ("roitrack_cli.commands.train", "train the ROI appearance encoder without identity labels"),
    "val": ("roitrack_cli.commands.val", "cross-frame matching metrics of an encoder (Top-1, MRR, Recall@K)"),
    "train-detector": (
        "roitrack_cli.commands.train_detector",
        "train YOLOv7 / YOLOv7-tiny on your labelled frames (MOTChallenge, YOLO datasets)",
    ),
    "export-onnx": ("roitrack_cli.commands.export_onnx", "export the ROI encoder to ONNX"),
    "eval-mot": (
        "roitrack_cli.commands.eval_mot",
        "track a MOTChallenge sequence and score it with TrackEval",
    ),
    "eval-det": (
        "roitrack_cli.commands.eval_det",
        "detection AP (COCO + VOC), precision / recall of detectors and det.txt files",
    ),
    "slice-seq": (
        "roitrack_cli.commands.slice_seq",
        "cut a frame range of a MOTChallenge sequence into a new sequence",
    ),
    "make-pan": (
        "roitrack_cli.commands.make_pan",
        "synthetic pan/zoom over a static sequence (frames, moved gt/det, true gmc.txt)",
    ),
    "bench": (
        "roitrack_cli.commands.bench",
        "benchmarks: stages, overhead, scaling, soak, floor, backends, oracle, mot, reid, ...",
    ),
    "info": ("roitrack_cli.commands.info", "print versions, devices and the installed commands"),
}

log = logging.getLogger("roitrack")


def _available() -> dict[str, tuple[str, str]]:
    """Commands whose module is installed (later issues add modules; the table lists the plan)."""
    out = {}
    for name, (mod, helptext) in COMMANDS.items():
        if importlib.util.find_spec(mod) is not None:
            out[name] = (mod, helptext)
    return out


def build_parser(load: str | None = None) -> tuple[argparse.ArgumentParser, dict[str, ModuleType]]:
    """Build the top-level parser. Only the module of command ``load`` is imported."""
    parser = argparse.ArgumentParser(
        prog="roitrack",
        description="roitrack: real-time multi-object tracking over bidirectional gRPC.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    loaded: dict[str, ModuleType] = {}
    for name, (modname, helptext) in _available().items():
        p = sub.add_parser(name, help=helptext, description=helptext)
        if name == load:
            mod = importlib.import_module(modname)
            mod.configure(p)
            loaded[name] = mod
    return parser, loaded


def thread_pool_defaults() -> None:
    """Idle OpenMP workers (PyTorch's CPU thread pool) sleep instead of spinning, unless the environment chose.

    Set before torch is imported (libgomp reads it once, when it loads). On a CPU shared with other busy
    processes, spinning workers that wait for a descheduled sibling made a yolov7-tiny forward 2-40x slower and
    erratic; passive ones kept it within 2x (docs/performance.md, "Shared CPU")."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def main(argv: Sequence[str] | None = None) -> int:
    thread_pool_defaults()
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser, loaded = build_parser(load=command)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.command is None:
        parser.print_help()
        return 2
    if args.command not in loaded:  # pragma: no cover - argparse already rejected unknown commands
        parser.error(f"unknown command {args.command!r}")
    try:
        rc = loaded[args.command].run(args)
    except RoitrackError as exc:
        print(f"roitrack {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"roitrack {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
