"""The network to train: from scratch or from any weights the project loads, with anchors fitted to the data.

Starting weights are our ``.safetensors`` (converted official release files, or an earlier
``train-detector`` result) or an official ``.pt`` (converted on the fly by the restricted unpickler). Every
tensor whose shape still fits is kept; the detection head's output convolutions (``m``) and their implicit
scales (``im``) are re-initialised when the number of classes or the anchors change, since their outputs then
mean something else. Anchors: ``keep`` (the starting weights' or the arch's), ``fit`` (to the training boxes,
:func:`training.detector.anchors.fit_anchors`), ``auto`` (fit from scratch; when fine-tuning keep the weights'
anchors if at least 98 % of the boxes can be paired with one, as the official ``check_anchors``).
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tracker_core.detector.architectures import get_arch
from tracker_core.detector.layers import ImplicitA, ImplicitM
from tracker_core.detector.model import YoloNet
from tracker_core.detector.weights_io import WeightsMeta, load_weights
from tracker_core.errors import ConfigError, WeightsError
from training.detector.anchors import anchors_array, best_possible_recall, fit_anchors

log = logging.getLogger(__name__)

BPR_KEEP = 0.98


@dataclass(frozen=True)
class StartInfo:
    arch: str
    anchors: list[list[float]]
    anchors_fitted: bool
    bpr_before: float
    bpr_after: float
    source: str  # "scratch" or the weights file
    kept_tensors: int
    reinitialised: list[str]


def read_start_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], WeightsMeta]:
    """``(state_dict, meta)`` of our ``.safetensors`` or an official ``.pt`` (restricted unpickler)."""
    p = Path(path)
    if p.suffix == ".pt":
        from tracker_core.detector.convert import convert_checkpoint

        c = convert_checkpoint(p)
        return c.state_dict, c.meta
    return load_weights(p)


def choose_anchors(
    mode: str, start: list[list[float]], wh: np.ndarray, thr: float, from_scratch: bool, seed: int
) -> tuple[list[list[float]], bool]:
    """``(anchors, fitted?)`` by ``mode`` (see the module doc)."""
    bpr = best_possible_recall(anchors_array(start), wh, thr)
    if mode == "keep" or len(wh) < 9:
        return start, False
    if mode == "auto" and not from_scratch and bpr >= BPR_KEEP:
        log.info("anchors kept: best possible recall %.4f >= %.2f", bpr, BPR_KEEP)
        return start, False
    na = len(start[0]) // 2
    return fit_anchors(wh, levels=len(start), na=na, thr=thr, seed=seed), True


def build_train_net(
    arch: str | None,
    nc: int,
    weights: str | Path | None,
    anchors_mode: str,
    label_wh: np.ndarray,
    anchor_t: float = 4.0,
    seed: int = 0,
) -> tuple[YoloNet, StartInfo]:
    """A :class:`YoloNet` in training mode and what was done to build it."""
    state: dict[str, torch.Tensor] | None = None
    if weights is not None:
        state, meta = read_start_weights(weights)
        if arch is not None and arch != meta.arch:
            raise ConfigError(f"--arch {arch} but --weights {weights} holds a {meta.arch}")
        arch = meta.arch
        start = [list(map(float, r)) for r in meta.anchors]
        old_nc = meta.nc
    else:
        arch = arch or "yolov7-tiny"
        start = [list(map(float, r)) for r in get_arch(arch).anchors]
        old_nc = -1
    bpr_before = best_possible_recall(anchors_array(start), label_wh, anchor_t)
    anchors, fitted = choose_anchors(anchors_mode, start, label_wh, anchor_t, weights is None, seed)
    bpr_after = best_possible_recall(anchors_array(anchors), label_wh, anchor_t)
    torch.manual_seed(seed)
    net = YoloNet(arch, nc=nc, anchors=anchors).init_random(seed)
    kept, reinit = 0, []
    if state is not None:
        head = f"model.{net.detect_index}."
        head_changed = old_nc != nc or fitted
        own = net.state_dict()
        load = {}
        for k, v in own.items():
            if k.endswith(("anchors", "anchor_grid")):
                continue  # anchors are this run's
            if head_changed and k.startswith(head) and (".m." in k or ".im." in k):
                reinit.append(k)
                continue
            src = state.get(k)
            if src is not None and tuple(src.shape) == tuple(v.shape):
                load[k] = src.to(v.dtype)
                kept += 1
            else:
                reinit.append(k)
        missing = [k for k in reinit if not k.startswith(head)]
        if missing:
            raise WeightsError(f"{weights}: tensors outside the head do not fit {arch}: {missing[:3]}")
        net.load_state_dict(load, strict=False)
        log.info("started from %s: %d tensors kept, %d re-initialised (head)", weights, kept, len(reinit))
    net.train()
    return net, StartInfo(
        arch=arch,
        anchors=anchors,
        anchors_fitted=fitted,
        bpr_before=bpr_before,
        bpr_after=bpr_after,
        source=str(weights) if weights is not None else "scratch",
        kept_tensors=kept,
        reinitialised=reinit,
    )


class TrainNet(nn.Module):
    """``x -> raw head levels``: the forward DDP wraps (:meth:`YoloNet.forward_levels`)."""

    def __init__(self, net: YoloNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.net.forward_levels(x)[0]


def param_groups(net: nn.Module, weight_decay: float) -> list[dict]:
    """The official three groups: BatchNorm weights and implicit layers (no decay), other weights (decay),
    biases (no decay); in that order (group 2 gets the warm-up bias LR)."""
    no_decay, decay, biases = [], [], []
    seen: set[int] = set()
    for m in net.modules():
        if isinstance(m, ImplicitA | ImplicitM):
            no_decay.append(m.implicit)
            seen.add(id(m.implicit))
        elif isinstance(m, nn.BatchNorm2d):
            no_decay.append(m.weight)
            seen.add(id(m.weight))
        if hasattr(m, "bias") and isinstance(m.bias, nn.Parameter) and id(m.bias) not in seen:
            biases.append(m.bias)
            seen.add(id(m.bias))
        if isinstance(m, nn.Conv2d) and id(m.weight) not in seen:
            decay.append(m.weight)
            seen.add(id(m.weight))
    rest = [p for p in net.parameters() if id(p) not in seen]
    if rest:
        raise ValueError(f"{len(rest)} parameters in no optimizer group")
    return [
        {"params": no_decay, "weight_decay": 0.0},
        {"params": decay, "weight_decay": weight_decay},
        {"params": biases, "weight_decay": 0.0},
    ]


class ModelEMA:
    """Exponential moving average of a network's float tensors (parameters and BatchNorm statistics).

    ``decay(u) = d * (1 - exp(-u / tau))`` after ``u`` updates: the average follows closely at the start, then
    slows to ``d``."""

    def __init__(self, net: YoloNet, decay: float = 0.9999, tau: float = 2000.0, updates: int = 0) -> None:
        self.ema = copy.deepcopy(net).eval()
        for p in self.ema.parameters():
            p.requires_grad_(False)
        self.d, self.tau, self.updates = decay, tau, updates

    def decay(self) -> float:
        return self.d * (1 - math.exp(-self.updates / self.tau))

    @torch.no_grad()
    def update(self, net: YoloNet) -> None:
        self.updates += 1
        d = self.decay()
        msd = net.state_dict()
        for k, v in self.ema.state_dict().items():
            if v.dtype.is_floating_point:
                v.mul_(d).add_(msd[k].detach(), alpha=1 - d)
