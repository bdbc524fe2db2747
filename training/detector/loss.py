"""YOLOv7's training loss: CIoU box loss, IoU-targeted objectness, BCE classes, over OTA or simple positives.

Per level ``i`` (raw head output ``[B,na,ny,nx,5+nc]``, positives from :mod:`training.detector.assign`):

- box: ``1 - CIoU`` between the decoded box ``((2 sigmoid(t_xy) - 0.5) + cell, (2 sigmoid(t_wh))^2 * anchor)`` and
  the target, averaged over the level's positives;
- objectness: BCE of every output against ``CIoU.clamp(0)`` at the positives (0 elsewhere), weighted by the
  official level balance ``[4, 1, 0.4]`` (stride 8, 16, 32);
- classes (only when ``nc > 1``): BCE against one-hot targets at the positives.

Gains as the official ``train.py`` scales them: ``box * 3/nl``, ``cls * nc/80 * 3/nl``, ``obj * (size/640)^2 *
3/nl``; the total is multiplied by the batch size (the gradient of a sum over images).

**Ignore regions** (ground truth that is not scored): the objectness loss is not computed at cells whose centre
lies inside an ignore box of the same image (unless that output is a positive), so the detector is neither
taught that those people are background nor that they are objects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from training.detector.assign import LevelIndex, ota_assign, simple_assign

BALANCE = (4.0, 1.0, 0.4)


def bbox_ciou(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Complete IoU of matching rows of ``a`` and ``b`` (``[K,4]`` centre x, y, width, height) -> ``[K]``."""
    a1, a2 = a[:, :2] - a[:, 2:] / 2, a[:, :2] + a[:, 2:] / 2
    b1, b2 = b[:, :2] - b[:, 2:] / 2, b[:, :2] + b[:, 2:] / 2
    wh_i = (torch.minimum(a2, b2) - torch.maximum(a1, b1)).clamp(min=0)
    inter = wh_i[:, 0] * wh_i[:, 1]
    w1, h1 = a[:, 2], a[:, 3] + eps
    w2, h2 = b[:, 2], b[:, 3] + eps
    union = w1 * h1 + w2 * h2 - inter + eps
    iou = inter / union
    c_wh = torch.maximum(a2, b2) - torch.minimum(a1, b1)
    c2 = c_wh[:, 0] ** 2 + c_wh[:, 1] ** 2 + eps
    rho2 = ((b[:, :2] - a[:, :2]) ** 2).sum(1)
    v = (4 / math.pi**2) * (torch.atan(w2 / h2) - torch.atan(w1 / h1)) ** 2
    with torch.no_grad():
        alpha = v / (v - iou + (1 + eps))
    return iou - (rho2 / c2 + v * alpha)


@dataclass(frozen=True)
class LossGains:
    box: float = 0.05
    obj: float = 1.0
    cls: float = 0.5
    anchor_t: float = 4.0

    def scaled(self, nc: int, nl: int, img_size: int) -> LossGains:
        return LossGains(
            box=self.box * 3 / nl,
            obj=self.obj * (img_size / 640) ** 2 * 3 / nl,
            cls=self.cls * nc / 80 * 3 / nl,
            anchor_t=self.anchor_t,
        )


def ignore_weights(
    shape: tuple[int, ...], ignore: torch.Tensor, stride: int, device: torch.device
) -> torch.Tensor | None:
    """``[B,1,ny,nx]`` float weights: 0 at cells whose centre is inside an ignore box of that image, else 1;
    ``None`` when there are no ignore boxes."""
    if len(ignore) == 0:
        return None
    bsz, _, ny, nx = shape[:4]
    w = torch.ones((bsz, 1, ny, nx), device=device)
    cy = (torch.arange(ny, device=device, dtype=torch.float32) + 0.5) * stride
    cx = (torch.arange(nx, device=device, dtype=torch.float32) + 0.5) * stride
    for img in torch.unique(ignore[:, 0].long()).tolist():
        boxes = ignore[ignore[:, 0].long() == img, 1:5]
        inx = (cx[None, :] >= boxes[:, 0:1]) & (cx[None, :] <= boxes[:, 2:3])  # [m, nx]
        iny = (cy[None, :] >= boxes[:, 1:2]) & (cy[None, :] <= boxes[:, 3:4])  # [m, ny]
        inside = (iny[:, :, None] & inx[:, None, :]).any(0)  # [ny, nx]
        w[img, 0][inside] = 0.0
    return w


class YoloLoss:
    """``loss(levels, targets, ignore) -> (total, parts [box, obj, cls] detached)`` for raw head outputs."""

    def __init__(
        self,
        nc: int,
        anchors_px: torch.Tensor,
        strides: list[int],
        img_size: int,
        gains: LossGains | None = None,
        assigner: str = "ota",
    ) -> None:
        self.nc = nc
        self.anchors_px = anchors_px.float()  # [nl, na, 2]
        self.strides = [int(s) for s in strides]
        self.nl = len(strides)
        self.gains = (gains or LossGains()).scaled(nc, self.nl, img_size)
        self.assigner = assigner
        self.balance = BALANCE if self.nl == 3 else (4.0, 1.0, 0.25, 0.06, 0.02)[: self.nl]

    def assign(self, levels: list[torch.Tensor], targets: torch.Tensor) -> list[LevelIndex]:
        fn = ota_assign if self.assigner == "ota" else simple_assign
        return fn(levels, targets, self.anchors_px, self.strides, self.gains.anchor_t)

    def __call__(
        self, levels: list[torch.Tensor], targets: torch.Tensor, ignore: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        device = levels[0].device
        levels = [p.float() for p in levels]
        targets = targets.to(device)
        ignore = ignore.to(device) if ignore is not None else torch.zeros((0, 5), device=device)
        pos = self.assign(levels, targets)
        lbox = torch.zeros((), device=device)
        lobj = torch.zeros((), device=device)
        lcls = torch.zeros((), device=device)
        for i, p in enumerate(levels):
            ix = pos[i]
            tobj = torch.zeros(p.shape[:4], device=device)
            weight = ignore_weights(tuple(p.shape), ignore, self.strides[i], device)
            n = len(ix.b)
            if n:
                ps = p[ix.b, ix.a, ix.gj, ix.gi]
                s = float(self.strides[i])
                anc = self.anchors_px[i].to(device)[ix.a] / s
                pxy = ps[:, :2].sigmoid() * 2.0 - 0.5
                pwh = (ps[:, 2:4].sigmoid() * 2.0) ** 2 * anc
                t = targets[ix.t]
                txy = t[:, 2:4] / s - torch.stack((ix.gi, ix.gj), 1).float()
                twh = t[:, 4:6] / s
                ciou = bbox_ciou(torch.cat((pxy, pwh), 1), torch.cat((txy, twh), 1))
                lbox = lbox + (1.0 - ciou).mean()
                tobj[ix.b, ix.a, ix.gj, ix.gi] = ciou.detach().clamp(0).to(tobj.dtype)
                if weight is not None:
                    weight = weight.expand(-1, p.shape[1], -1, -1).clone()
                    weight[ix.b, ix.a, ix.gj, ix.gi] = 1.0
                if self.nc > 1:
                    tc = torch.zeros_like(ps[:, 5:])
                    tc[torch.arange(n, device=device), t[:, 1].long()] = 1.0
                    lcls = lcls + F.binary_cross_entropy_with_logits(ps[:, 5:], tc)
            bce = F.binary_cross_entropy_with_logits(p[..., 4], tobj, reduction="none")
            if weight is not None:
                w = weight.expand_as(bce)
                obj_i = (bce * w).sum() / w.sum().clamp(min=1.0)
            else:
                obj_i = bce.mean()
            lobj = lobj + obj_i * self.balance[i]
        lbox = lbox * self.gains.box
        lobj = lobj * self.gains.obj
        lcls = lcls * self.gains.cls
        bs = levels[0].shape[0]
        total = (lbox + lobj + lcls) * bs
        return total, torch.stack((lbox, lobj, lcls)).detach()
