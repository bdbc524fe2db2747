"""The detector training loop (single process or torchrun DDP, any N; gloo on CPU, nccl on CUDA).

Per step: a batch of augmented images (:mod:`training.detector.augment`), one forward of the raw head under
autocast (fp16 on CUDA with a gradient scaler, bf16 on CPUs with AMX), the YOLOv7 loss in fp32
(:mod:`training.detector.loss`), gradients accumulated to about ``nominal_batch`` images per optimizer step (SGD
with Nesterov momentum, or AdamW), EMA weights updated after every optimizer step.

Schedule: warm-up over ``warmup_epochs`` (learning rates ramp from 0, the bias LR down from 0.1, momentum from
0.8, accumulation from 1), then the one-cycle cosine down to ``lr0 * lrf``. Its progress is the larger of the
step count over the planned steps and the wall time over ``time_budget_min``: a slower (or busier) machine
still finishes the whole schedule, with fewer epochs, inside the budget.

Rank 0 scores the EMA weights on the held-out frames every ``eval_every`` epochs (AP50, AP50:95 VOC-style,
precision / recall at 0.25); the best fitness (``0.1 AP50 + 0.9 AP50:95``, the official selection score) is
written as ``best.safetensors`` (a loadable detector) and training stops after ``patience`` epochs without a
better one. Every epoch rank 0 writes ``checkpoint.safetensors`` (model, EMA, optimizer, progress: rerunning the
same command resumes), ``train_log.jsonl`` (every step: losses, LR, wall and process CPU seconds; every
evaluation: the scores and the load average) and ``train_curve.png``. The result is ``detector.safetensors``
(+ ``detector.json``): our weights format, loaded unchanged by ``serve``, ``eval-mot``, ``demo``, ``train`` and
``val``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm import tqdm

from tracker_core.detector.model import YoloNet
from tracker_core.detector.weights_io import WeightsMeta, save_weights, state_dict_sha256
from tracker_core.errors import ConfigError
from tracker_core.evaluation.det_metrics import DetScores
from training.checkpointing import load_train_state, save_train_state
from training.detector.augment import AugmentConfig
from training.detector.config import DetTrainConfig
from training.detector.data import ImageStore, make_batch, rank_batches
from training.detector.evaluate import HoldoutSet, evaluate
from training.detector.loss import LossGains, YoloLoss
from training.detector.model_setup import ModelEMA, StartInfo, TrainNet, param_groups
from training.distributed import DistInfo, mean_across
from training.plot import plot_curves
from training.schedule import cosine_factor, ramp

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.safetensors"
BEST = "best.safetensors"
LAST = "last.safetensors"
RESULT = "detector.safetensors"
SUMMARY = "detector.json"
LOG = "train_log.jsonl"
PLOT = "train_curve.png"


def cpu_seconds() -> float:
    """User + system CPU seconds of this process (all its threads)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return float(r.ru_utime + r.ru_stime)


def amp_mode(cfg: DetTrainConfig, device: torch.device) -> str:
    """``fp16`` (CUDA), ``bf16`` (a CPU with AMX tiles), or ``off``; ``cfg.amp`` forces one."""
    if cfg.amp != "auto":
        if cfg.amp == "fp16" and device.type != "cuda":
            raise ValueError("--amp fp16 needs CUDA; on CPU use bf16")
        return cfg.amp
    if device.type == "cuda":
        return "fp16"
    amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return "bf16" if (amx is not None and amx()) else "off"


def autocast_fn(mode: str, device: torch.device) -> Callable[[], contextlib.AbstractContextManager[object]]:
    if mode == "off":
        return contextlib.nullcontext
    dtype = torch.float16 if mode == "fp16" else torch.bfloat16
    return lambda: torch.autocast(device.type, dtype=dtype)


@dataclass
class Progress:
    epoch: int = 0  # next epoch to run
    batches: int = 0  # batches done
    opt_steps: int = 0
    elapsed: float = 0.0  # wall seconds of training so far (all runs)
    cpu: float = 0.0  # process CPU seconds so far (all runs)
    best_fitness: float | None = None
    best_epoch: int | None = None
    best_scores: dict[str, Any] = field(default_factory=dict)
    stopped: str = ""  # why training ended early ("", "patience", "time")


def _append(path: Path, rec: dict[str, Any]) -> None:
    with path.open("a") as f:
        f.write(json.dumps(rec) + "\n")


def result_meta(
    info: StartInfo, nc: int, names: list[str], state: dict[str, torch.Tensor], what: str
) -> WeightsMeta:
    from tracker_core.detector.architectures import get_arch

    return WeightsMeta(
        arch=info.arch,
        nc=nc,
        names=list(names),
        anchors=[[float(a) for a in row] for row in info.anchors],
        strides=list(get_arch(info.arch).strides),
        source_sha256=state_dict_sha256(state),
        source_name=what,
    )


def plot_run(log_path: Path, png: Path) -> None:
    plot_curves(
        log_path,
        png,
        [("box", "box"), ("obj", "obj"), ("cls", "cls"), ("total / batch", "loss")],
        [
            ("held-out AP50", "holdout.ap50"),
            ("held-out AP50:95", "holdout.ap50_95"),
            ("precision @0.25", "holdout.precision"),
            ("recall @0.25", "holdout.recall"),
        ],
        step_title="training loss (per image)",
        epoch_title="held-out detection (EMA weights)",
    )


def train_detector(
    cfg: DetTrainConfig,
    net: YoloNet,
    info: StartInfo,
    names: list[str],
    store: ImageStore,
    holdout: HoldoutSet | None,
    out: Path,
    device: torch.device,
    dist: DistInfo,
    data_desc: str,
    resume: bool = True,
    progress_bar: bool = True,
    stop_after_epochs: int | None = None,
    max_batches: int | None = None,
) -> Path | None:
    """Train ``net`` (built by :func:`training.detector.model_setup.build_train_net`); rank 0 writes ``out/`` and
    returns the path of ``detector.safetensors``. ``stop_after_epochs`` / ``max_batches`` cut a run short (tests,
    resume)."""
    nc = net.nc
    out.mkdir(parents=True, exist_ok=True)
    ckpt, log_path = out / CHECKPOINT, out / LOG
    net.to(device)
    if cfg.channels_last:
        net.to(memory_format=torch.channels_last)  # type: ignore[call-arg]
    ema = ModelEMA(net, cfg.ema_decay, cfg.ema_tau)
    if cfg.batch % dist.world:
        raise ConfigError(
            f"--batch {cfg.batch} (the total over processes) must be a multiple of {dist.world} processes"
        )
    rank_batch = cfg.batch // dist.world
    nb = math.ceil(math.ceil(len(store) / dist.world) / rank_batch)  # batches per epoch and rank
    total_batches = nb * cfg.epochs
    global_batch = cfg.batch
    accumulate = max(round(cfg.nominal_batch / global_batch), 1)
    weight_decay = cfg.weight_decay * global_batch * accumulate / cfg.nominal_batch
    groups = param_groups(net, weight_decay)
    if cfg.optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(groups, lr=cfg.lr0, momentum=cfg.momentum, nesterov=True)
    else:
        opt = torch.optim.AdamW(groups, lr=cfg.lr0, betas=(cfg.momentum, 0.999))
    warm = max(round(cfg.warmup_epochs * nb), 1) if cfg.warmup_epochs > 0 else 0
    anchors_px = net.head.anchor_grid_t.detach().view(net.head.nl, net.head.na, 2).cpu()
    loss_fn = YoloLoss(
        nc,
        anchors_px,
        list(net.head.strides),
        cfg.img_size,
        LossGains(cfg.box, cfg.obj, cfg.cls, cfg.anchor_t),
        cfg.assigner,
    )
    amp = amp_mode(cfg, device)
    autocast = autocast_fn(amp, device)
    scaler = torch.amp.GradScaler("cuda", enabled=(amp == "fp16"))
    aug = AugmentConfig(
        cfg.img_size,
        store.train_shape(cfg.rect),
        cfg.mosaic,
        cfg.degrees,
        cfg.translate,
        cfg.scale,
        cfg.shear,
        cfg.hsv_h,
        cfg.hsv_s,
        cfg.hsv_v,
        cfg.fliplr,
    )
    prog = Progress()
    if resume and ckpt.is_file():
        st = load_train_state(ckpt, net, opt, extra={"ema": ema.ema})
        prog = Progress(**st["progress"])
        ema.updates = int(st["ema_updates"])
        if st.get("config") != cfg.to_dict():
            log.warning("resuming with a different config than the checkpoint's")
        log.info(
            "resumed from %s: epoch %d, %d batches, %.0f s", ckpt, prog.epoch, prog.batches, prog.elapsed
        )
    model: torch.nn.Module = TrainNet(net)
    if dist.enabled:
        import warnings

        # channels_last gives the [1,C,1,1] implicit parameters' gradients other strides than DDP's buckets: a copy
        warnings.filterwarnings("ignore", message=".*Grad strides do not match bucket view strides.*")
        model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    budget = cfg.time_budget_min * 60.0
    if dist.is_main and prog.batches == 0:
        log_path.write_text("")
        _append(
            log_path,
            {
                "type": "start",
                "config": cfg.to_dict(),
                "data": data_desc,
                "names": names,
                "train_images": len(store),
                "holdout_images": len(holdout) if holdout else 0,
                "world": dist.world,
                "device": str(device),
                "amp": amp,
                "threads": torch.get_num_threads(),
                "batches_per_epoch": nb,
                "accumulate": accumulate,
                "train_shape": list(aug.shape),
                "weight_decay": weight_decay,
                "anchors": info.anchors,
                "anchors_fitted": info.anchors_fitted,
                "bpr_before": info.bpr_before,
                "bpr_after": info.bpr_after,
                "start": info.source,
                "loadavg": list(os.getloadavg()),
            },
        )
    t_run, c_run = time.monotonic(), cpu_seconds()
    base_elapsed, base_cpu = prog.elapsed, prog.cpu
    last_epoch = cfg.epochs if stop_after_epochs is None else min(cfg.epochs, prog.epoch + stop_after_epochs)
    batches_this_run = 0
    last_opt = prog.batches

    def elapsed() -> float:
        return base_elapsed + time.monotonic() - t_run

    def schedule_progress() -> float:
        p = (prog.batches - warm) / max(1, total_batches - warm) if prog.batches >= warm else 0.0
        if budget > 0:
            p = max(p, elapsed() / budget)
        return p

    def run_eval(epoch: int) -> DetScores | None:
        if holdout is None or not len(holdout):
            return None
        return evaluate(ema.ema, holdout, autocast, channels_last=cfg.channels_last)

    while prog.epoch < last_epoch and not prog.stopped:
        epoch = prog.epoch
        rng = np.random.default_rng([cfg.seed, epoch, dist.rank])
        batches = rank_batches(len(store), rank_batch, dist.rank, dist.world, cfg.seed, epoch)
        model.train()
        bar = tqdm(
            batches,
            desc=f"epoch {epoch + 1}/{cfg.epochs}",
            unit="batch",
            disable=not (progress_bar and dist.is_main),
        )
        t_epoch = time.monotonic()
        sums = np.zeros(4)
        mosaic_on = True
        for k, idx in enumerate(bar):
            t0 = time.monotonic()
            mosaic_on = schedule_progress() < 1.0 - cfg.close_mosaic
            batch = make_batch(store, idx, aug, rng, mosaic_on)
            t_data = time.monotonic() - t0
            x = batch.images.to(device, non_blocking=True)
            if cfg.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            # schedule: warm-up ramps, then the one-cycle cosine on max(step, time) progress
            p = schedule_progress()
            lf = cosine_factor(p, cfg.lrf)
            acc = (
                max(1, round(ramp(prog.batches, warm, 1, cfg.nominal_batch / global_batch)))
                if prog.batches < warm
                else accumulate
            )
            for j, g in enumerate(opt.param_groups):
                start_lr = cfg.warmup_bias_lr if j == 2 else 0.0
                g["lr"] = ramp(prog.batches, warm, start_lr, cfg.lr0 * lf)
                mom = ramp(prog.batches, warm, cfg.warmup_momentum, cfg.momentum)
                if "momentum" in g:
                    g["momentum"] = mom
                if "betas" in g:
                    g["betas"] = (mom, g["betas"][1])
            sync = (prog.batches + 1 - last_opt) >= acc or k == len(batches) - 1
            ctx = model.no_sync() if (isinstance(model, DDP) and not sync) else contextlib.nullcontext()
            with ctx:
                with autocast():
                    levels = model(x)
                loss, parts = loss_fn(levels, batch.targets.to(device), batch.ignore.to(device))
                if dist.enabled:
                    loss = (
                        loss * dist.world
                    )  # DDP averages gradients over ranks; the loss is a sum over images
                scaler.scale(loss).backward()
            prog.batches += 1
            batches_this_run += 1
            if sync:
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(net.parameters(), max_norm=10.0)
                scaler.step(opt)
                scaler.update()
                opt.zero_grad(set_to_none=True)
                ema.update(net)
                prog.opt_steps += 1
                last_opt = prog.batches
            per_img = float(loss.item()) / (len(idx) * (dist.world if dist.enabled else 1))
            vals = np.array([*parts.tolist(), per_img])
            sums += vals
            if dist.is_main:
                prog.elapsed = elapsed()
                _append(
                    log_path,
                    {
                        "type": "step",
                        "epoch": epoch,
                        "step": prog.batches,
                        "box": vals[0],
                        "obj": vals[1],
                        "cls": vals[2],
                        "loss": vals[3],
                        "targets": len(batch.targets),
                        "lr": opt.param_groups[1]["lr"],
                        "progress": round(p, 5),
                        "data_s": round(t_data, 3),
                        "step_s": round(time.monotonic() - t0, 3),
                        "wall_s": round(prog.elapsed, 1),
                        "cpu_s_rank0": round(cpu_seconds() - c_run + base_cpu / dist.world, 1),
                    },
                )
                bar.set_postfix(loss=f"{vals[3]:.3f}", lr=f"{opt.param_groups[1]['lr']:.2e}", p=f"{p:.2f}")
            if max_batches is not None and batches_this_run >= max_batches:
                break
            if schedule_progress() >= 1.0 and prog.batches >= warm:
                if budget > 0 and elapsed() >= budget:
                    prog.stopped = "time"
                break
        bar.close()
        prog.epoch = epoch + 1
        done_all = schedule_progress() >= 1.0 or prog.epoch >= cfg.epochs
        run_cpu = mean_across(dist, cpu_seconds() - c_run, device) * dist.world  # all processes together
        if dist.is_main:
            rec: dict[str, Any] = {
                "type": "epoch",
                "epoch": prog.epoch,
                "step": prog.batches,
                "train": dict(
                    zip(("box", "obj", "cls", "loss"), (sums / max(1, len(batches))).tolist(), strict=True)
                ),
                "epoch_s": round(time.monotonic() - t_epoch, 1),
                "mosaic": mosaic_on,
                "ema_decay": ema.decay(),
                "processes": dist.world,
            }
            if prog.epoch % cfg.eval_every == 0 or done_all or prog.stopped:
                t_ev = time.monotonic()
                scores = run_eval(epoch)
                if scores is not None:
                    rec["holdout"] = scores.to_dict()
                    rec["fitness"] = scores.fitness
                    rec["eval_s"] = round(time.monotonic() - t_ev, 1)
                    if prog.best_fitness is None or scores.fitness > prog.best_fitness + 1e-6:
                        prog.best_fitness, prog.best_epoch = scores.fitness, prog.epoch
                        prog.best_scores = scores.to_dict()
                        state = ema.ema.state_dict()
                        save_weights(
                            out / BEST,
                            state,
                            result_meta(info, nc, names, state, f"train-detector best epoch {prog.epoch}"),
                        )
                    if (
                        cfg.patience
                        and prog.best_epoch is not None
                        and prog.epoch - prog.best_epoch >= cfg.patience
                    ):
                        prog.stopped = "patience"
                    log.info(
                        "epoch %d: held-out AP50 %.4f AP50:95 %.4f P %.3f R %.3f (best %.4f at epoch %s) | %.0f s wall, %.0f s CPU",
                        prog.epoch,
                        scores.ap50,
                        scores.ap50_95,
                        scores.precision,
                        scores.recall,
                        prog.best_scores.get("ap50", 0.0),
                        prog.best_epoch,
                        elapsed(),
                        base_cpu + run_cpu,
                    )
            prog.elapsed, prog.cpu = elapsed(), base_cpu + run_cpu
            rec.update(
                {
                    "wall_s": round(prog.elapsed, 1),
                    "cpu_s": round(prog.cpu, 1),
                    "loadavg": list(os.getloadavg()),
                    "best_epoch": prog.best_epoch,
                }
            )
            _append(log_path, rec)
            save_train_state(
                ckpt,
                net,
                opt,
                {"progress": prog.__dict__, "ema_updates": ema.updates, "config": cfg.to_dict()},
                extra={"ema": ema.ema},
            )
            plot_run(log_path, out / PLOT)
        if done_all and not prog.stopped:
            prog.stopped = "done"
        if dist.enabled:  # every rank ends with rank 0
            flag = mean_across(dist, 1.0 if prog.stopped else 0.0, device)
            if flag > 0 and not prog.stopped:
                prog.stopped = "rank0"
    if not dist.is_main:
        return None
    state = ema.ema.state_dict()
    save_weights(
        out / LAST, state, result_meta(info, nc, names, state, f"train-detector last epoch {prog.epoch}")
    )
    finished = prog.stopped in ("done", "patience", "time") or prog.epoch >= cfg.epochs
    if not finished:
        return None
    src = out / BEST if (out / BEST).is_file() else out / LAST
    from tracker_core.detector.weights_io import load_weights

    state, meta = load_weights(src)
    meta = result_meta(
        info,
        nc,
        names,
        state,
        f"roitrack train-detector ({data_desc}), epoch {prog.best_epoch or prog.epoch}",
    )
    save_weights(out / RESULT, state, meta)
    summary = {
        "weights": str(out / RESULT),
        "arch": info.arch,
        "nc": nc,
        "names": names,
        "anchors": info.anchors,
        "anchors_fitted": info.anchors_fitted,
        "start": info.source,
        "data": data_desc,
        "epochs_done": prog.epoch,
        "batches": prog.batches,
        "optimizer_steps": prog.opt_steps,
        "ended": prog.stopped,
        "best_epoch": prog.best_epoch,
        "holdout": prog.best_scores,
        "wall_s": round(prog.elapsed, 1),
        "cpu_s": round(prog.cpu, 1),
        "amp": amp,
        "device": str(device),
        "world": dist.world,
        "config": cfg.to_dict(),
        "source_sha256": meta.source_sha256,
    }
    (out / SUMMARY).write_text(json.dumps(summary, indent=1))
    return out / RESULT
