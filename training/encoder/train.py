"""``roitrack train`` / ``torchrun --nproc_per_node=N -m training.encoder.train``: stage 1 (cache) then stage 2.

Inputs are videos, image folders or MOTChallenge sequences; identities are never read for training (a
sequence's ``det/det.txt`` is used as its detections when present). The last ``--holdout`` part of every
source (default 20 %) is not trained on: a label-free validation there (motion-only tracklets as pseudo-identities)
is scored every epoch, stops training early and selects the encoder written. ``--val SEQDIR`` (a MOTChallenge
sequence with ``gt/``) only reports metrics per epoch; nothing is selected by them.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import torch

from tracker_core.errors import ConfigError, InvalidInputError
from training.encoder.config import TrainConfig

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = TrainConfig()
    p.add_argument(
        "--data",
        action="append",
        required=True,
        metavar="PATH",
        help="video file, image folder or MOTChallenge sequence (repeatable)",
    )
    p.add_argument(
        "--weights", required=True, metavar="DETECTOR.safetensors", help="converted detector weights"
    )
    p.add_argument(
        "--out", required=True, metavar="OUTDIR", help="writes OUTDIR/encoder.safetensors, log, plot"
    )
    p.add_argument(
        "--score-scale",
        default="1",
        help="divide det/det.txt scores by this (default 1: already in [0, 1]; 100 for MOT15's 0..100; "
        "'max': by the file's largest score)",
    )
    p.add_argument(
        "--score-clip",
        action="store_true",
        help="clip scaled det.txt scores to [0, 1] (without it a score outside [0, 1] is an error)",
    )
    p.add_argument("--epochs", type=int, default=d.epochs, help="most epochs (early stopping may end sooner)")
    p.add_argument(
        "--arch",
        default=d.arch,
        choices=("mix", "conv"),
        help="mix (default): pooled input + colour histogram + learned residual; conv: the learned conv net only",
    )
    p.add_argument(
        "--blocks", default=d.blocks, help="mix blocks: raw, color, learned joined by + (color needs pixels)"
    )
    p.add_argument(
        "--holdout",
        type=float,
        default=d.holdout,
        help="last fraction of every source held out for label-free validation and early stopping (0: off)",
    )
    p.add_argument(
        "--patience", type=int, default=d.patience, help="epochs without improvement before stopping"
    )
    p.add_argument(
        "--holdout-gaps",
        default=",".join(str(g) for g in d.holdout_gaps),
        help="frames between gallery and query frames of the held-out validation (comma-separated)",
    )
    p.add_argument("--queue", type=int, default=d.queue, help="memory queue of negatives (0: off)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (torchrun: each rank takes its GPU)")
    p.add_argument(
        "--features",
        default=d.features,
        help=f"taps the encoder reads: spp, plus optional s16|s8 and pixels (default {d.features})",
    )
    p.add_argument(
        "--cache-features",
        default=None,
        help="taps to cache in stage 1 (a superset of --features lets several runs share a cache)",
    )
    p.add_argument("--cache-dir", default=None, help="stage-1 cache root (default OUTDIR/cache)")
    p.add_argument(
        "--input-size",
        type=int,
        default=d.input_size,
        metavar="N",
        help="long side of the detector input, a multiple of 32 (default 640, as the server)",
    )
    p.add_argument(
        "--rect",
        action="store_true",
        help="letterbox to the frame's aspect instead of NxN (cheaper; match how the encoder will be served)",
    )
    p.add_argument("--frame-step", type=int, default=d.frame_step, help="use every n-th frame")
    p.add_argument("--batch-frames", type=int, default=d.batch_frames)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument(
        "--val", default=None, metavar="SEQDIR", help="MOTChallenge sequence with gt/ for per-epoch val"
    )
    p.add_argument("--val-gap", type=int, default=d.val_gap)
    p.add_argument("--val-stride", type=int, default=d.val_stride)
    p.add_argument("--no-resume", action="store_true", help="start over even if OUTDIR has a checkpoint")
    p.add_argument("--stop-after-epochs", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        features=args.features,
        arch=args.arch,
        blocks=args.blocks,
        holdout=args.holdout,
        holdout_gaps=tuple(int(g) for g in str(args.holdout_gaps).split(",") if g.strip()),
        patience=args.patience,
        queue=args.queue,
        input_size=args.input_size,
        rect=args.rect,
        frame_step=args.frame_step,
        epochs=args.epochs,
        batch_frames=args.batch_frames,
        lr=args.lr,
        seed=args.seed,
        val_gap=args.val_gap,
        val_stride=args.val_stride,
    )


def _device(name: str, local_rank: int, world: int) -> torch.device:
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InvalidInputError(f"--device {name}: CUDA is not available")
        return torch.device(f"cuda:{local_rank}") if world > 1 else torch.device(name)
    if name != "cpu":
        raise InvalidInputError(f"--device must be cpu, cuda or cuda:N, got {name!r}")
    return torch.device("cpu")


def run(args: argparse.Namespace) -> int:
    from tracker_core.detector import load_detector
    from tracker_core.evaluation.mot_io import ScoreRule
    from tracker_core.features import parse_feature_spec
    from training.distributed import barrier, init_from_env, shutdown
    from training.encoder.cache import extract_source, load_cache
    from training.encoder.holdout import holdout_val, split_source
    from training.encoder.tracklets import link_tracklets, tracklet_stats
    from training.encoder.trainer import DetectorMeta, train_encoder
    from training.encoder.val_data import mot_pairs
    from training.encoder.validate import extract_val_features, val_features_from_cache
    from training.sources import frame_shape, open_source

    cfg = config_from_args(args)
    score_rule = ScoreRule.from_flags(args.score_scale, args.score_clip)
    torch.set_flush_denormal(True)  # denormal activations crawl on CPU; flushing them changes no map (tested)
    spec = parse_feature_spec(cfg.features)
    cache_spec = parse_feature_spec(args.cache_features) if args.cache_features else spec
    if not set(spec.strides) <= set(cache_spec.strides):
        raise ConfigError(
            f"--cache-features {cache_spec.name} must include every tap of --features {spec.name}"
        )
    dist = init_from_env(args.device)
    try:
        device = _device(args.device, dist.local_rank, dist.world)
        out = Path(args.out)
        cache_root = Path(args.cache_dir) if args.cache_dir else out / "cache"
        sources = [open_source(p) for p in args.data]
        sizes = {s.path: cfg.size_for(*frame_shape(s)) for s in sources}
        detector = load_detector(args.weights, device=device)
        t0 = time.monotonic()
        dirs = []
        for src in sources:  # rank 0 extracts; the others wait, then read the same files
            if dist.is_main:
                extract_source(
                    src,
                    detector,
                    cache_spec,
                    cache_root,
                    size=sizes[src.path],
                    frame_step=cfg.frame_step,
                    progress=not args.no_progress,
                    score_rule=score_rule,
                )
        barrier(dist)
        for src in sources:
            dirs.append(
                extract_source(
                    src,
                    detector,
                    cache_spec,
                    cache_root,
                    size=sizes[src.path],
                    frame_step=cfg.frame_step,
                    progress=False,
                    score_rule=score_rule,
                )
            )
        t_cache = time.monotonic() - t0
        loaded = [load_cache(d, spec.strides) for d in dirs]
        split = [split_source(c, cfg.holdout) for c in loaded]
        cached = [a for a, _ in split]
        tails = [b for _, b in split if b is not None]
        holdout = holdout_val(tails, spec, cfg.holdout_gaps, cfg.frame_step, cfg.min_score) if tails else None
        if cfg.holdout > 0 and not holdout:
            log.warning("no held-out validation pairs (sources too short?): no early stopping")
        nxt = 0
        for c in cached:
            c.labels, nxt = link_tracklets(c, cfg.min_score, cfg.tracklet_len, first_label=nxt)
        stats = tracklet_stats([lab for c in cached for lab in c.labels])
        log.info(
            "stage 1 done in %.1fs: %d frames, tracklets %s", t_cache, sum(len(c) for c in cached), stats
        )
        val = None
        if args.val and dist.is_main:
            pairs = mot_pairs(args.val, cfg.val_gap, cfg.val_stride)
            same = [k for k, s in enumerate(sources) if s.path.resolve() == Path(args.val).resolve()]
            val = val_features_from_cache(pairs, loaded[same[0]], spec) if same else None
            if val is None:
                val = extract_val_features(pairs, detector, spec, cfg.size_for)
        det_meta = DetectorMeta(detector.arch, detector.weights_sha256, int(detector.tap_channels))
        del detector
        t1 = time.monotonic()
        path = train_encoder(
            cfg,
            cached,
            det_meta,
            out,
            device,
            dist,
            val=val,
            holdout=holdout or None,
            resume=not args.no_resume,
            stop_after_epochs=args.stop_after_epochs,
        )
        if dist.is_main:
            log.info("stage 1 %.1fs, stage 2 %.1fs; wrote %s", t_cache, time.monotonic() - t1, path)
            print(f"encoder: {path}  (stage 1 {t_cache:.0f}s, stage 2 {time.monotonic() - t1:.0f}s)")
    finally:
        shutdown(dist)
    return 0


def main(argv: list[str] | None = None) -> int:
    from training.entrypoint import main as entry

    return entry("python -m training.encoder.train", "train", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
