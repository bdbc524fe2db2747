"""Stage 2: unsupervised InfoNCE training of the ROI encoder (single process or torchrun DDP).

Per epoch and rank: :class:`ShardedSampler` gives each anchor frame to exactly one rank; batches are built by
:class:`TrainSet`; the encoder sees both views in one forward (``[2N,C,10,10]``); AdamW with warm-up + cosine
LR; bf16 autocast on CUDA. Rank 0 validates, writes the JSONL log, the PNG plot, the resumable checkpoint
(every epoch) and finally ``encoder.safetensors``. Uneven shards are handled by DDP ``join``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch.nn.parallel import DistributedDataParallel as DDP

from tracker_core.encoder import Encoder, EncoderMeta, MixEncoder, RoiEncoder, save_encoder
from tracker_core.features import PIXEL_STRIDE, FeatureSpec, parse_feature_spec, spec_roi_features
from training.checkpointing import load_train_state, save_train_state
from training.distributed import DistInfo, gather_objects, mean_across
from training.encoder.batches import AugmentConfig, TrainSet, augment_features, read_maps
from training.encoder.cache import CachedSource
from training.encoder.config import TrainConfig
from training.encoder.holdout import calibrate_weights, holdout_score
from training.encoder.loss import info_nce
from training.encoder.validate import ValFeatures, validate
from training.plot import plot_log
from training.sampler import ShardedSampler
from training.schedule import lr_at

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.safetensors"
ENCODER = "encoder.safetensors"
LOG = "train_log.jsonl"
PLOT = "train_curve.png"
BEST = "best_model.safetensors"


@dataclass
class DetectorMeta:
    arch: str
    weights_sha256: str
    tap_channels: int


def input_stats(
    sources: list[CachedSource], spec: FeatureSpec, max_frames: int = 96
) -> tuple[torch.Tensor, ...]:
    """Per-channel mean/std of un-augmented ROI features over an evenly spaced subset of frames."""
    feats = []
    for src in sources:
        frames = [i for i in range(len(src)) if len(src.boxes[i])]
        step = max(1, len(frames) // max(1, max_frames // max(1, len(sources))))
        chosen = frames[::step]
        for k in range(0, len(chosen), 16):
            fr = chosen[k : k + 16]
            maps = read_maps(src, fr, spec)
            tfs = [src.transforms[i] for i in fr]
            feats.append(spec_roi_features(spec, maps, [src.boxes[i] for i in fr], tfs))
    x = torch.cat(feats) if feats else torch.zeros(1, 1, 1, 1)
    return x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3))


def make_model(cfg: TrainConfig, tap_channels: dict[str, int]) -> Encoder:
    """A fresh encoder of ``cfg.arch`` for these taps (``{stride: channels}`` in spec order)."""
    if cfg.arch == "mix":
        taps = [(int(k), int(v)) for k, v in tap_channels.items()]
        return MixEncoder(
            taps, blocks=cfg.blocks.split("+"), head_dim=cfg.embed_dim, width=cfg.width, hidden=cfg.hidden
        )
    return RoiEncoder(sum(tap_channels.values()), embed_dim=cfg.embed_dim, width=cfg.width, hidden=cfg.hidden)


def _score_holdout(
    holdout: dict[int, ValFeatures], model: torch.nn.Module, device: torch.device
) -> tuple[dict, float]:
    """Held-out results per gap and the early-stopping score (MixEncoder: after choosing its block weights)."""
    weights = None
    if isinstance(model, MixEncoder):
        weights, _ = calibrate_weights(model, holdout, device)
    res = {str(g): validate(v, model, device) for g, v in holdout.items()}
    if weights is not None:
        res["block_weights"] = weights
    return res, holdout_score(res)


def _summary(res: dict) -> str:
    parts = []
    for g, r in res.items():
        if g == "block_weights":
            parts.append("weights " + ", ".join(f"{b} {w:g}" for b, w in r.items()))
            continue
        enc = r["encoder"]["pooled"]
        line = f"gap {g}: mrr {enc['mrr'] or 0:.3f}"
        for b, tag in (("raw_features", "raw"), ("color_histogram", "hist")):
            if b in r:
                line += f" {tag} {r[b]['pooled']['mrr'] or 0:.3f}"
        parts.append(line)
    return " | ".join(parts)


def _append_log(path: Path, rec: dict[str, Any]) -> None:
    with path.open("a") as f:
        f.write(json.dumps(rec) + "\n")


def train_encoder(
    cfg: TrainConfig,
    sources: list[CachedSource],
    detector: DetectorMeta,
    out: Path,
    device: torch.device,
    dist: DistInfo,
    val: ValFeatures | None = None,
    holdout: dict[int, ValFeatures] | None = None,
    resume: bool = True,
    stop_after_epochs: int | None = None,
) -> Path | None:
    """Train and write ``out/encoder.safetensors`` (rank 0). ``stop_after_epochs`` ends early (tests, resume).

    ``sources`` are the training parts; ``holdout`` the label-free validation on the held-out tails (per gap):
    scored before training and after every epoch; training stops after ``cfg.patience`` epochs without a better
    score and the encoder written is the best one (possibly the untrained start)."""
    spec = parse_feature_spec(cfg.features)
    data = TrainSet(sources, spec, partner_gap=cfg.partner_gap, max_rois=cfg.max_rois)
    tap_channels = {str(s): spec.channels(s, int(sources[0].maps[s].shape[1])) for s in spec.strides}
    torch.manual_seed(cfg.seed)
    model = make_model(cfg, tap_channels)
    mean, std = input_stats(sources, spec)
    model.set_input_stats(mean, std)
    model.to(device)
    # A MixEncoder trains its learned block alone (InfoNCE on that block's embedding); the block weights are
    # chosen on the held-out frames after every epoch (calibrate_weights). A conv encoder trains as a whole.
    trained: torch.nn.Module = model.learned if isinstance(model, MixEncoder) else model
    opt = torch.optim.AdamW(trained.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sampler = ShardedSampler(len(data), dist.rank, dist.world, shuffle=True, seed=cfg.seed)
    per_rank = (len(data) + dist.world - 1) // dist.world
    steps_per_epoch = (per_rank + cfg.batch_frames - 1) // cfg.batch_frames
    total = steps_per_epoch * cfg.epochs
    aug = AugmentConfig(cfg.jitter, cfg.noise, cfg.drop, cfg.illumination, cfg.blur, cfg.occlusion)
    pix_ch = int(tap_channels.get(str(PIXEL_STRIDE), 0))
    out.mkdir(parents=True, exist_ok=True)
    ckpt, log_path, best_path = out / CHECKPOINT, out / LOG, out / BEST
    start_epoch, step = 0, 0
    last_val: dict[str, Any] = {}
    best: dict[str, Any] = {"score": None, "epoch": None, "bad": 0, "holdout": {}}
    stopped = False
    if resume and ckpt.is_file():
        st = load_train_state(ckpt, model, opt)
        if st.get("config") != cfg.to_dict():
            log.warning("resuming with a different config than the checkpoint's")
        start_epoch, step, last_val = int(st["epoch"]) + 1, int(st["step"]), st.get("val") or {}
        best = st.get("best") or best
        stopped = bool(st.get("stopped", False))
        log.info("resumed from %s: epoch %d, step %d", ckpt, start_epoch, step)
    ddp: torch.nn.Module = DDP(trained) if dist.enabled else trained
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    if dist.is_main and start_epoch == 0:
        log_path.write_text("")
        _append_log(
            log_path,
            {
                "type": "start",
                "config": cfg.to_dict(),
                "num_samples": len(data),
                "world": dist.world,
                "params": model.num_parameters(),
                "steps_per_epoch": steps_per_epoch,
            },
        )
    if dist.is_main and holdout and start_epoch == 0:  # epoch -1: the untrained encoder (its fixed blocks)
        res, score = _score_holdout(holdout, model, device)
        best = {"score": score, "epoch": -1, "bad": 0, "holdout": res}
        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(best_path))
        _append_log(log_path, {"type": "holdout", "epoch": -1, "score": best["score"], "holdout": res})
        log.info("held-out before training: score %.4f | %s", best["score"], _summary(res))
    last_epoch = cfg.epochs if stop_after_epochs is None else min(cfg.epochs, start_epoch + stop_after_epochs)
    t_start = time.monotonic()
    queue_z = torch.zeros((0, int(getattr(trained, "embed_dim", 0))), device=device)
    queue_l = torch.zeros(0, dtype=torch.long, device=device)
    done = start_epoch
    for epoch in range(start_epoch, last_epoch):
        if stopped:
            break
        done = epoch + 1
        sampler.set_epoch(epoch)
        rng = np.random.default_rng([cfg.seed, epoch, dist.rank])
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch * 101 + dist.rank)
        seen: list[int] = []
        losses: list[float] = []
        ddp.train()
        join = ddp.join() if isinstance(ddp, DDP) else contextlib.nullcontext()
        t0 = time.monotonic()
        with join:
            for anchors in sampler.batches(cfg.batch_frames):
                seen += anchors
                batch = data.make_batch(anchors, rng, aug)
                x = torch.cat([augment_features(v, mean, std, aug, gen, pix_ch) for v in batch.views]).to(
                    device
                )
                labels = torch.cat([batch.labels, batch.labels]).to(device)
                lr = lr_at(step, total, cfg.lr, cfg.warmup_frac, cfg.min_lr_frac)
                for g in opt.param_groups:
                    g["lr"] = lr
                with amp:
                    z = ddp(x)
                loss = info_nce(z.float(), labels, cfg.temperature, queue_z, queue_l)
                if cfg.queue:
                    queue_z = torch.cat([z.detach().float(), queue_z])[: cfg.queue]
                    queue_l = torch.cat([labels, queue_l])[: cfg.queue]
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
                losses.append(float(loss.item()))
                if dist.is_main:
                    _append_log(
                        log_path,
                        {
                            "type": "step",
                            "epoch": epoch,
                            "step": step,
                            "loss": losses[-1],
                            "lr": lr,
                            "rois": int(batch.labels.numel()),
                            "cross_frame": batch.num_cross_frame,
                        },
                    )
        all_seen = gather_objects(dist, seen)
        epoch_loss = mean_across(dist, float(np.mean(losses)) if losses else 0.0, device)
        if dist.is_main:
            flat = [i for s in all_seen for i in s]
            rec: dict[str, Any] = {
                "type": "epoch",
                "epoch": epoch,
                "step": step,
                "loss": epoch_loss,
                "seconds": round(time.monotonic() - t0, 2),
                "samples": len(flat),
                "unique_samples": len(set(flat)),
                "dataset_size": len(data),
                "samples_per_rank": [len(s) for s in all_seen],
            }
            if val is not None:
                last_val = validate(val, model, device)
                rec["val"] = last_val
                enc, raw = last_val["encoder"]["pooled"], last_val["raw_features"]["pooled"]
                log.info(
                    "epoch %d loss %.4f | val top1 %.3f mrr %.3f (raw %.3f / %.3f)",
                    epoch,
                    epoch_loss,
                    enc["top1"] or 0,
                    enc["mrr"] or 0,
                    raw["top1"] or 0,
                    raw["mrr"] or 0,
                )
            else:
                log.info("epoch %d loss %.4f (%.1fs)", epoch, epoch_loss, rec["seconds"])
            if holdout:
                res, score = _score_holdout(holdout, model, device)
                rec["holdout"], rec["holdout_score"] = res, score
                if best["score"] is None or score > best["score"] + 1e-6:
                    best = {"score": score, "epoch": epoch, "bad": 0, "holdout": res}
                    save_file(
                        {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
                        str(best_path),
                    )
                else:
                    best["bad"] = int(best["bad"]) + 1
                    stopped = cfg.patience > 0 and best["bad"] >= cfg.patience
                rec["best_epoch"] = best["epoch"]
                log.info(
                    "epoch %d held-out score %.4f (best %.4f at epoch %s) | %s",
                    epoch,
                    score,
                    best["score"],
                    best["epoch"],
                    _summary(res),
                )
            _append_log(log_path, rec)
            save_train_state(
                ckpt,
                model,
                opt,
                {
                    "epoch": epoch,
                    "step": step,
                    "config": cfg.to_dict(),
                    "val": last_val,
                    "best": best,
                    "stopped": stopped,
                },
            )
            plot_log(log_path, out / PLOT)
        if dist.enabled:  # every rank stops with rank 0
            stopped = mean_across(dist, 1.0 if stopped else 0.0, device) > 0
    if not dist.is_main:
        return None
    if holdout and best_path.is_file():
        model.load_state_dict(load_file(str(best_path)))
    meta = EncoderMeta(
        detector_arch=detector.arch,
        detector_sha256=detector.weights_sha256,
        features=spec.name,
        tap_channels=tap_channels,
        embed_dim=cfg.embed_dim,
        width=cfg.width,
        hidden=cfg.hidden,
        arch=cfg.arch,
        blocks=tuple(cfg.blocks.split("+")) if cfg.arch == "mix" else (),
        color_stripes=model.color_stripes if isinstance(model, MixEncoder) else 2,
        training={
            **cfg.to_dict(),
            "epochs_done": done,
            "best_epoch": best["epoch"],
            "holdout_score": best["score"],
            "holdout": best["holdout"],
            "block_weights": model.block_weights() if isinstance(model, MixEncoder) else {},
            "steps": step,
            "world": dist.world,
            "seconds_this_run": round(time.monotonic() - t_start, 1),
        },
        validation=last_val,
    )
    save_encoder(out / ENCODER, model.cpu(), meta)
    model.to(device)
    return out / ENCODER
