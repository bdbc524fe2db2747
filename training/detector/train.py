"""``roitrack train-detector`` / ``torchrun --nproc_per_node=N -m training.detector.train``: supervised YOLOv7 /
YOLOv7-tiny training for your camera (see ``docs/detector.md``, "Train for your camera").

Data: MOTChallenge sequences (``img1/`` + ``gt/gt.txt``; rows that are not scored become ignore regions) and YOLO
datasets (``data.yaml``), ``--data`` repeatable. The last ``--holdout`` part of every sequence (a YOLO dataset's
``val`` split) is never trained on: it scores every epoch, picks the weights written and stops training early.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import fields
from pathlib import Path

import torch

from tracker_core.errors import ConfigError, InvalidInputError
from training.detector.config import AMP_MODES, ANCHOR_MODES, ASSIGNERS, OPTIMIZERS, DetTrainConfig

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = DetTrainConfig()
    p.add_argument(
        "--data",
        action="append",
        required=True,
        metavar="PATH",
        help="MOTChallenge sequence folder (img1/ + gt/gt.txt) or YOLO data.yaml (repeatable)",
    )
    p.add_argument(
        "--out", required=True, metavar="OUTDIR", help="writes OUTDIR/detector.safetensors, log, plot"
    )
    p.add_argument(
        "--weights",
        default=None,
        metavar="W",
        help="start from these weights (our .safetensors or an official .pt); default: from scratch",
    )
    p.add_argument(
        "--arch", default=None, choices=("yolov7", "yolov7-tiny"), help=f"default {d.arch} (or the weights')"
    )
    p.add_argument(
        "--epochs",
        type=int,
        default=d.epochs,
        help="most epochs (time budget / early stopping may end sooner)",
    )
    p.add_argument("--batch", type=int, default=d.batch, help="images per step and process")
    p.add_argument(
        "--img-size", type=int, default=d.img_size, help="long side of the training input (as served)"
    )
    p.add_argument(
        "--square",
        action="store_true",
        help="train on img-size x img-size inputs instead of the frames' aspect (rectangular letterbox)",
    )
    p.add_argument(
        "--time-budget",
        type=float,
        default=d.time_budget_min,
        metavar="MIN",
        help="the LR schedule also runs on wall time and ends after MIN minutes (0: epochs only)",
    )
    p.add_argument("--optimizer", default=d.optimizer, choices=OPTIMIZERS)
    p.add_argument("--lr0", type=float, default=d.lr0)
    p.add_argument(
        "--assigner", default=d.assigner, choices=ASSIGNERS, help="label assignment: ota (official) or simple"
    )
    p.add_argument(
        "--anchors",
        default=d.anchors,
        choices=ANCHOR_MODES,
        help="fit anchors to the boxes (auto/fit) or keep",
    )
    p.add_argument(
        "--holdout", type=float, default=d.holdout, help="held-out tail of every sequence (0: off)"
    )
    p.add_argument(
        "--patience", type=int, default=d.patience, help="epochs without a better held-out score (0: off)"
    )
    p.add_argument(
        "--close-mosaic",
        type=float,
        default=d.close_mosaic,
        help="last fraction of the schedule on whole frames",
    )
    p.add_argument("--mosaic", type=float, default=d.mosaic, help="probability of a mosaic sample")
    p.add_argument("--scale", type=float, default=d.scale, help="random scale +- this fraction")
    p.add_argument(
        "--gt-format",
        default="auto",
        choices=("auto", "mot15", "mot17"),
        help="gt.txt columns 8-10: mot17 = class, visibility; mot15 = world coordinates (default: 10 columns = mot15)",
    )
    p.add_argument(
        "--min-visibility", type=float, default=d.min_visibility, help="MOT17 rows below: ignore regions"
    )
    p.add_argument(
        "--amp", default=d.amp, choices=AMP_MODES, help="auto: fp16 on CUDA, bf16 on AMX CPUs, else off"
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (torchrun: each rank takes its GPU)")
    p.add_argument(
        "--procs",
        default="auto",
        help="CPU: train in N local processes (DDP over gloo, one thread each; 'auto' = one per core). "
        "Under torchrun this is ignored",
    )
    p.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads per process (default: cores / procs)"
    )
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any other config field")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--no-resume", action="store_true", help="start over even if OUTDIR has a checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--stop-after-epochs", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--max-batches", type=int, default=None, help=argparse.SUPPRESS)


def _coerce(name: str, text: str) -> object:
    types = {f.name: f.type for f in fields(DetTrainConfig)}
    if name not in types:
        raise ConfigError(f"--set {name}: no such config field (see training/detector/config.py)")
    t = str(types[name])
    try:
        if "bool" in t:
            return text.lower() in ("1", "true", "yes", "on")
        if "int" in t:
            return int(text)
        if "float" in t:
            return float(text)
    except ValueError:
        raise ConfigError(f"--set {name}={text}: not a {t}") from None
    return text


def config_from_args(args: argparse.Namespace, arch: str) -> DetTrainConfig:
    d = {
        "arch": arch,
        "epochs": args.epochs,
        "batch": args.batch,
        "img_size": args.img_size,
        "time_budget_min": args.time_budget,
        "optimizer": args.optimizer,
        "lr0": args.lr0,
        "assigner": args.assigner,
        "anchors": args.anchors,
        "holdout": args.holdout,
        "patience": args.patience,
        "close_mosaic": args.close_mosaic,
        "rect": not args.square,
        "mosaic": args.mosaic,
        "scale": args.scale,
        "min_visibility": args.min_visibility,
        "amp": args.amp,
        "seed": args.seed,
    }
    for kv in args.set:
        k, sep, v = kv.partition("=")
        if not sep:
            raise ConfigError(f"--set wants KEY=VALUE, got {kv!r}")
        d[k.strip().replace("-", "_")] = _coerce(k.strip().replace("-", "_"), v.strip())
    return DetTrainConfig.from_dict(d)


def _device(name: str, local_rank: int, world: int) -> torch.device:
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InvalidInputError(f"--device {name}: CUDA is not available")
        return torch.device(f"cuda:{local_rank}") if world > 1 else torch.device(name)
    if name != "cpu":
        raise InvalidInputError(f"--device must be cpu, cuda or cuda:N, got {name!r}")
    return torch.device("cpu")


def resolve_procs(value: str, device: str) -> int:
    """Local processes to train in: on CPU ``auto`` is one per core (each single-threaded: on a shared machine
    two OpenMP threads of one process wait on each other at every layer, two processes do not); 1 on CUDA."""
    if value == "auto":
        return max(1, os.cpu_count() or 1) if device == "cpu" else 1
    try:
        n = int(value)
    except ValueError:
        raise InvalidInputError(f"--procs must be a number or 'auto', got {value!r}") from None
    if n < 1:
        raise InvalidInputError("--procs must be >= 1")
    if n > 1 and device != "cpu":
        raise InvalidInputError("--procs > 1 is for CPU training; on GPUs use torchrun --nproc_per_node=N")
    return n


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    """Linux: end this worker when the launching process ends (killed or not), so no orphan keeps training."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _worker(rank: int, args: argparse.Namespace, world: int, port: int) -> None:
    _die_with_parent()
    os.environ.update(
        {
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": str(world),
        }
    )
    if rank:
        args.no_progress = True
        logging.getLogger().setLevel(logging.WARNING)
    _run(args)


def run(args: argparse.Namespace) -> int:
    procs = resolve_procs(str(args.procs), args.device)
    if procs > 1 and int(os.environ.get("WORLD_SIZE", "1")) == 1:
        import torch.multiprocessing as mp

        from training.detector.data import load_sources

        cfg = config_from_args(args, args.arch or DetTrainConfig().arch)
        if cfg.batch % procs:
            raise ConfigError(f"--batch {cfg.batch} must be a multiple of --procs {procs}")
        load_sources(args.data, cfg.holdout, args.gt_format, cfg.min_visibility)  # bad input: exit 2 here
        if args.threads is None:
            args.threads = max(1, (os.cpu_count() or 1) // procs)
        try:
            mp.spawn(_worker, args=(args, procs, _free_port()), nprocs=procs, join=True)
        except mp.ProcessRaisedException as exc:
            raise ConfigError(f"a training process failed: {str(exc).strip().splitlines()[-1]}") from None
        return 0
    return _run(args)


def _run(args: argparse.Namespace) -> int:
    import numpy as np

    from training.detector.data import ImageStore, load_sources
    from training.detector.evaluate import HoldoutSet
    from training.detector.model_setup import build_train_net, read_start_weights
    from training.detector.trainer import train_detector
    from training.distributed import barrier, init_from_env, shutdown

    if args.threads:
        torch.set_num_threads(int(args.threads))
    arch = args.arch
    if args.weights and arch is None:
        arch = read_start_weights(args.weights)[1].arch if str(args.weights).endswith(".pt") else None
        if arch is None:
            from tracker_core.detector.weights_io import read_meta

            arch = read_meta(args.weights).arch
    cfg = config_from_args(args, arch or DetTrainConfig().arch)
    dist = init_from_env(args.device)
    try:
        device = _device(args.device, dist.local_rank, dist.world)
        torch.manual_seed(cfg.seed + dist.rank)
        np.random.seed(cfg.seed + dist.rank)
        data = load_sources(args.data, cfg.holdout, args.gt_format, cfg.min_visibility)
        store = ImageStore(data.train, cfg.img_size)
        wh = store.label_wh()
        net, info = build_train_net(
            cfg.arch, len(data.names), args.weights, cfg.anchors, wh, cfg.anchor_t, cfg.seed
        )
        holdout = HoldoutSet(data.holdout, cfg.img_size) if (dist.is_main and data.holdout) else None
        desc = ", ".join(
            f"{s.name} ({s.kind}: {len(s.train)} train, {len(s.holdout)} held out)" for s in data.sources
        )
        if dist.is_main:
            print(
                f"train-detector: {cfg.arch} nc={len(data.names)} {data.names[:5]}{'...' if len(data.names) > 5 else ''}; "
                f"{desc}; {len(wh)} boxes; anchors {'fitted' if info.anchors_fitted else 'kept'} "
                f"(best possible recall {info.bpr_before:.3f} -> {info.bpr_after:.3f}); start: {info.source}; "
                f"{dist.world} process(es) x {torch.get_num_threads()} thread(s)",
                flush=True,
            )
        barrier(dist)
        path = train_detector(
            cfg,
            net,
            info,
            data.names,
            store,
            holdout,
            Path(args.out),
            device,
            dist,
            desc,
            resume=not args.no_resume,
            progress_bar=not args.no_progress,
            stop_after_epochs=args.stop_after_epochs,
            max_batches=args.max_batches,
        )
        if dist.is_main:
            if path is None:
                print(
                    f"train-detector: stopped before the end; rerun the same command to resume ({args.out})"
                )
            else:
                import json

                s = json.loads((Path(args.out) / "detector.json").read_text())
                ho = s.get("holdout") or {}
                print(
                    f"detector: {path}  ({s['epochs_done']} epochs, ended: {s['ended']}, best epoch {s['best_epoch']}, "
                    f"held-out AP50 {ho.get('ap50', float('nan')):.4f} AP50:95 {ho.get('ap50_95', float('nan')):.4f}; "
                    f"{s['wall_s']:.0f} s wall, {s['cpu_s']:.0f} s CPU)"
                )
    finally:
        shutdown(dist)
    return 0


def main(argv: list[str] | None = None) -> int:
    from training.entrypoint import main as entry

    return entry("python -m training.detector.train", "train-detector", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
