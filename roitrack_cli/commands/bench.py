"""``roitrack bench <bench>``: the benchmarks (``benchmarks/``).

``mot`` is the multi-scene tracking benchmark against the peers (``benchmarks/mot/``, docs/tracking.md); ``oracle`` is
the association oracle (``benchmarks/oracle.py``, docs/tracking.md), ``embeddings`` the association with real
embedding files beside the controls and the oracle per span and frame rate (``benchmarks/embeddings.py``,
docs/tracking.md), ``appearance`` the encoder's
end-to-end benchmark (``benchmarks/appearance.py``, docs/encoder.md); the others are the performance benchmarks.

Each prints one JSON object with ``--json`` (else its Markdown table), writes ``<out>/<name>.md`` and, where a
curve says more than a table, ``<out>/<name>.png``. See ``docs/performance.md``.
"""

from __future__ import annotations

import argparse
import importlib

HELP = (
    "benchmarks: stages, overhead, scaling, soak, floor, snapshot, backends, contention, oracle, embeddings, "
    "appearance, mot, ablation, reid"
)

BENCHES = {
    "stages": "per-stage cost per frame (decode ... serialisation), yolov7 and tiny at 320 and 640",
    "overhead": "gRPC service on loopback vs the in-process pipeline, same frames (overhead_share)",
    "scaling": "1..16 concurrent streams, cross-stream batching on vs off (fps, p50/p95/p99, drops)",
    "soak": "8 streams for --duration seconds: server RSS and track counts over time",
    "floor": "detector FLOPs per frame vs a matmul rate measured in the same run",
    "snapshot": "stream snapshots: size, write/load time (Redis) for 10/100/1000 tracks, cost per frame",
    "appearance": "train an encoder on one time split, track the other with appearance off/on (eval-mot, serve)",
    "backends": "forward of every inference backend and precision vs torch fp32, quiet and beside busy processes",
    "contention": "each backend's forward quiet and beside busy processes, per thread count and wait policy",
    "reid": "ONNX ReID model cost per frame and per crop and its share of the frame time at 1, 4, 8 streams",
}


def _positive_int(text: str) -> int:
    v = int(text)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return v


def _positive_float(text: str) -> float:
    v = float(text)
    if not v > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return v


def _non_negative_float(text: str) -> float:
    v = float(text)
    if not v >= 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return v


def _size(text: str) -> int:
    v = _positive_int(text)
    if v % 32:
        raise argparse.ArgumentTypeError(f"must be a multiple of 32, got {text}")
    return v


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bench", metavar="<bench>", required=True)
    for name, helptext in BENCHES.items():
        p = sub.add_parser(name, help=helptext, description=helptext)
        if name == "appearance":  # its own options (sequences, encoder), not the performance benches'
            from benchmarks.appearance import configure as configure_appearance

            configure_appearance(p)
            continue
        p.add_argument("--weights", help="detector .safetensors (default: a randomly initialised detector)")
        p.add_argument(
            "--arch", choices=("yolov7", "yolov7-tiny"), help="random detector arch (default: per bench)"
        )
        p.add_argument("--size", type=_size, help="input size (square, multiple of 32; default: per bench)")
        p.add_argument(
            "--frames", type=_positive_int, help="timed frames per measurement (default: per bench)"
        )
        p.add_argument(
            "--streams", type=_positive_int, help="concurrent streams (scaling: the largest count)"
        )
        p.add_argument("--duration", type=_positive_float, help="seconds per measurement (scaling, soak)")
        p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
        p.add_argument("--dets", type=_positive_int, help="boxes per frame (default 50; reid: 10)")
        p.add_argument("--source", help="a folder of images to use instead of the synthetic scene (stages)")
        p.add_argument(
            "--fps", type=_positive_float, help="per-stream camera rate (scaling, soak; default 10)"
        )
        p.add_argument("--seed", type=int, default=0, help="seed of the random detector and scene")
        from tracker_core.inference.options import BACKENDS, PRECISIONS

        p.add_argument(
            "--backend",
            choices=BACKENDS,
            default="auto",
            help="inference backend (default auto: measured once by the benchmark, as serve does at start-up)",
        )
        p.add_argument("--precision", choices=PRECISIONS, default="auto", help="precision (default auto)")
        if name in ("stages", "overhead", "scaling"):
            p.add_argument(
                "--vs-reference",
                action="store_true",
                help="also measure torch fp32 (NCHW, the models as they are) in the same run and report the speedup",
            )
        if name in ("backends", "contention"):
            p.add_argument(
                "--busy",
                type=int,
                default=2,
                help="busy processes (python -c 'while True: pass') beside the contended measurement (default 2)",
            )
        if name in ("scaling", "soak", "reid"):
            p.add_argument("--max-batch", type=_positive_int, default=8, help="server max batch (default 8)")
        if name in ("reid", "stages"):
            p.add_argument(
                "--reid-model",
                metavar="FILE.onnx",
                help="the ONNX ReID model (reid: default ../shared/models/osnet_x0_25_msmt17.onnx; stages: also "
                "time it on the same boxes)",
            )
        if name in ("scaling", "reid"):
            p.add_argument(
                "--warmup", type=float, default=2.0, help="untimed seconds before each point (default 2)"
            )
        p.add_argument("--json", action="store_true", help="print one JSON object")
        p.add_argument(
            "--out", default="docs/bench", help="folder for <bench>.md / .png (default docs/bench)"
        )
        p.add_argument("--no-write", action="store_true", help="do not write the Markdown table / plot")
    from benchmarks.oracle import configure as configure_oracle

    oracle_help = "tracker with ground-truth-derived embeddings (noise, wrong identities) vs motion only"
    configure_oracle(sub.add_parser("oracle", help=oracle_help, description=oracle_help))
    from benchmarks.embeddings import configure as configure_embeddings

    embeddings_help = (
        "the tracker with real embedding files, random / constant controls and the oracle, per time span and frame "
        "rate, vs motion only"
    )
    configure_embeddings(sub.add_parser("embeddings", help=embeddings_help, description=embeddings_help))
    from benchmarks.mot.cli import configure as configure_mot

    mot_help = (
        "ours and the peers on every sequence under the roots, TrackEval per group (its own protocol), ranks"
    )
    configure_mot(sub.add_parser("mot", help=mot_help, description=mot_help))
    from benchmarks.mot.ablation import configure as configure_ablation

    ablation_help = "our tracker with single changes to its defaults on every group of sequences (TrackEval)"
    configure_ablation(sub.add_parser("ablation", help=ablation_help, description=ablation_help))


def _extra(args: argparse.Namespace) -> dict[str, float | str]:
    """Bench-specific options (only those this bench has)."""
    extra: dict[str, float | str] = {}
    if args.fps is not None:
        extra["fps"] = args.fps
    for flag, key in (
        ("max_batch", "max_batch"),
        ("warmup", "warmup_s"),
        ("busy", "busy"),
        ("reid_model", "reid_model"),
    ):
        if getattr(args, flag, None) is not None:
            extra[key] = getattr(args, flag)
    return extra


def run(args: argparse.Namespace) -> int:
    if args.bench == "oracle":
        from benchmarks.oracle import main_args

        return main_args(args)
    if args.bench == "embeddings":
        from benchmarks.embeddings import main_args as embeddings_main

        return embeddings_main(args)
    if args.bench == "mot":
        from benchmarks.mot.cli import main_args as mot_main

        return mot_main(args)
    if args.bench == "ablation":
        from benchmarks.mot.ablation import main_args as ablation_main

        return ablation_main(args)
    from benchmarks.common import BenchOptions, finish
    from tracker_core.errors import ConfigError

    if args.bench == "appearance":
        from benchmarks import appearance

        result = appearance.run_cli(args)
        opts = BenchOptions(out=args.out, write=not args.no_write)
        finish(args.name, result, appearance.markdown, opts, args.json)
        return 0
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(f"--device {args.device}: no CUDA device is available")
    opts = BenchOptions(
        weights=args.weights,
        arch=args.arch,
        size=args.size,
        frames=args.frames,
        streams=args.streams,
        duration=args.duration,
        device=args.device,
        dets=args.dets if args.dets is not None else (10 if args.bench == "reid" else 50),
        source=args.source,
        out=args.out,
        write=not args.no_write,
        seed=args.seed,
        backend=args.backend,
        precision=args.precision,
        vs_reference=bool(getattr(args, "vs_reference", False)),
        extra=_extra(args),
    )
    mod = importlib.import_module(f"benchmarks.{args.bench}")
    result = mod.run(opts)
    finish(args.bench, result, mod.markdown, opts, args.json, getattr(mod, "plot", None))
    return 0
