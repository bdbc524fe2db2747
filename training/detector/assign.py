"""Label assignment of YOLOv7: which head outputs (level, anchor, cell) learn which ground-truth box.

**Candidates** (YOLOv5's rule, the official ``find_3_positive``): at every level, a box is paired with each
anchor whose width and height ratios to it are all below ``anchor_t`` (4); each pair takes the cell holding the
box centre plus the two neighbouring cells nearest to the centre (left or right, up or down: the centre offset
the head can reach is ``2 sigmoid - 0.5``, i.e. -0.5..1.5 cells), so up to 3 cells x 3 anchors x 3 levels.

**OTA** (``ComputeLossOTA``, what the official ``train.py`` uses for yolov7 and yolov7-tiny): per image, the
boxes the candidates currently predict are compared with every ground-truth box: ``cost = class cost + 3 *
(-log IoU)``, the class cost being the BCE of ``sqrt(p_class * p_obj)`` against the box's class. Each box
keeps its ``k`` cheapest candidates, ``k`` = the sum of its 10 best IoUs (at least 1): a box the network
already predicts well gets more positives. A candidate claimed by several boxes goes to the cheapest. With one
class the class probability is not trained (as officially), so only the objectness enters the class cost.

**simple** (``ComputeLoss``): every candidate is a positive of the box that produced it.

Box, cell and anchor units: ``targets`` ``[N,6]`` = (image, class, cx, cy, w, h) in input pixels; anchors in
pixels per level; results are index tensors per level plus, for each positive, the row of its target.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torchvision.ops import box_iou

# centre cell, then the neighbour to the left, above, right, below (in cells, times the 0.5 bias)
_OFFSETS = torch.tensor([[0, 0], [1, 0], [0, 1], [-1, 0], [0, -1]], dtype=torch.float32) * 0.5


@dataclass
class LevelIndex:
    """Positives of one level: image ``b``, anchor ``a``, cell row ``gj`` and column ``gi``, target row ``t``."""

    b: torch.Tensor
    a: torch.Tensor
    gj: torch.Tensor
    gi: torch.Tensor
    t: torch.Tensor

    @staticmethod
    def empty(device: torch.device) -> LevelIndex:
        z = torch.zeros(0, dtype=torch.long, device=device)
        return LevelIndex(z, z, z, z, z)


def candidates(
    shapes: list[tuple[int, int]],
    targets: torch.Tensor,
    anchors_px: torch.Tensor,
    strides: list[int],
    anchor_t: float = 4.0,
) -> list[LevelIndex]:
    """The candidate positives per level (see the module doc). ``shapes``: ``(ny, nx)`` per level;
    ``anchors_px`` ``[nl, na, 2]``."""
    device = targets.device
    out = []
    off = _OFFSETS.to(device)
    for i, (ny, nx) in enumerate(shapes):
        if len(targets) == 0:
            out.append(LevelIndex.empty(device))
            continue
        s = float(strides[i])
        anc = anchors_px[i].to(device) / s  # [na,2] in cells
        gxy = targets[:, 2:4] / s
        gwh = targets[:, 4:6] / s
        r = gwh[None, :, :] / anc[:, None, :]  # [na, n, 2]
        ok = torch.maximum(r, 1 / r).amax(2) < anchor_t
        a_idx, t_idx = ok.nonzero(as_tuple=True)
        xy = gxy[t_idx]
        inv = torch.tensor([nx, ny], device=device, dtype=xy.dtype) - xy
        left, up = ((xy % 1.0 < 0.5) & (xy > 1.0)).T
        right, down = ((inv % 1.0 < 0.5) & (inv > 1.0)).T
        use = torch.stack((torch.ones_like(left), left, up, right, down))  # [5, m]
        k_idx, m_idx = use.nonzero(as_tuple=True)
        cells = (xy[m_idx] - off[k_idx]).long()
        gi = cells[:, 0].clamp(0, nx - 1)
        gj = cells[:, 1].clamp(0, ny - 1)
        t_rows = t_idx[m_idx]
        out.append(LevelIndex(targets[t_rows, 0].long(), a_idx[m_idx], gj, gi, t_rows))
    return out


def decode_boxes(
    p: torch.Tensor, gi: torch.Tensor, gj: torch.Tensor, anchor_px: torch.Tensor, stride: float
) -> torch.Tensor:
    """Raw box logits ``[K,4]`` at cells ``(gi, gj)`` with their anchors ``[K,2]`` (px) -> ``[K,4]`` xyxy input px."""
    xy = (p[:, :2].sigmoid() * 2.0 - 0.5 + torch.stack((gi, gj), 1).to(p.dtype)) * stride
    wh = (p[:, 2:4].sigmoid() * 2.0) ** 2 * anchor_px
    return torch.cat((xy - wh / 2, xy + wh / 2), 1)


@torch.no_grad()
def ota_assign(
    levels: list[torch.Tensor],
    targets: torch.Tensor,
    anchors_px: torch.Tensor,
    strides: list[int],
    anchor_t: float = 4.0,
    topk: int = 10,
) -> list[LevelIndex]:
    """OTA positives per level (see the module doc). ``levels``: raw head outputs ``[B,na,ny,nx,5+nc]``."""
    device = targets.device
    nl = len(levels)
    nc = levels[0].shape[-1] - 5
    shapes = [(int(p.shape[2]), int(p.shape[3])) for p in levels]
    cand = candidates(shapes, targets, anchors_px, strides, anchor_t)
    picked: list[list[tuple[torch.Tensor, ...]]] = [[] for _ in range(nl)]
    # unique candidate positions per image (a cell/anchor proposed by several boxes is one candidate)
    level_of = torch.cat([torch.full_like(c.b, i) for i, c in enumerate(cand)])
    b_all = torch.cat([c.b for c in cand])
    a_all = torch.cat([c.a for c in cand])
    gj_all = torch.cat([c.gj for c in cand])
    gi_all = torch.cat([c.gi for c in cand])
    na = int(levels[0].shape[1])
    max_cells = max(h * w for h, w in shapes)
    key = ((b_all * nl + level_of) * na + a_all) * max_cells + gj_all * max(w for _, w in shapes) + gi_all
    key, first = _unique_first(key)
    level_of, b_all, a_all, gj_all, gi_all = (x[first] for x in (level_of, b_all, a_all, gj_all, gi_all))
    timg = targets[:, 0].long()
    for img in torch.unique(timg).tolist():
        rows = (timg == img).nonzero(as_tuple=True)[0]
        sel = (b_all == img).nonzero(as_tuple=True)[0]
        if len(sel) == 0:
            continue
        lv, a, gj, gi = level_of[sel], a_all[sel], gj_all[sel], gi_all[sel]
        preds = torch.empty((len(sel), 5 + nc), device=device, dtype=levels[0].dtype)
        boxes = torch.empty((len(sel), 4), device=device, dtype=torch.float32)
        for i in range(nl):
            m = lv == i
            if not bool(m.any()):
                continue
            p = levels[i][img, a[m], gj[m], gi[m]].float()
            preds[m] = p.to(preds.dtype)
            boxes[m] = decode_boxes(p, gi[m], gj[m], anchors_px[i].to(device)[a[m]], float(strides[i]))
        t = targets[rows]
        gt = torch.cat((t[:, 2:4] - t[:, 4:6] / 2, t[:, 2:4] + t[:, 4:6] / 2), 1)
        iou = box_iou(gt, boxes)  # [G, C]
        k = min(topk, iou.shape[1])
        dyn = iou.topk(k, dim=1).values.sum(1).int().clamp(min=1)
        iou_cost = -torch.log(iou + 1e-8)
        preds = preds.float()
        obj = preds[:, 4].sigmoid()
        if nc > 1:
            y = (preds[:, 5:].sigmoid() * obj[:, None]).sqrt().clamp(1e-6, 1 - 1e-6)  # [C, nc]
            neg = -torch.log1p(-y).sum(1)  # cost of every class being "no"
            cls = t[:, 1].long()
            yc = y[:, cls].T  # [G, C]
            cls_cost = neg[None, :] - torch.log(yc) + torch.log1p(-yc)
        else:
            cls_cost = (-0.5 * torch.log(obj.clamp(1e-12)))[None, :].expand(len(rows), -1)
        cost = cls_cost + 3.0 * iou_cost
        match = torch.zeros_like(cost, dtype=torch.bool)
        for g in range(len(rows)):
            idx = cost[g].topk(int(dyn[g]), largest=False).indices
            match[g, idx] = True
        multi = match.sum(0) > 1
        if bool(multi.any()):
            best = cost[:, multi].argmin(0)
            match[:, multi] = False
            match[best, multi.nonzero(as_tuple=True)[0]] = True
        pos = match.any(0)
        owner = match[:, pos].float().argmax(0)
        for i in range(nl):
            m = lv[pos] == i
            if bool(m.any()):
                picked[i].append(
                    (
                        torch.full((int(m.sum()),), img, device=device, dtype=torch.long),
                        a[pos][m],
                        gj[pos][m],
                        gi[pos][m],
                        rows[owner[m]],
                    )
                )
    out = []
    for i in range(nl):
        if picked[i]:
            cols = list(zip(*picked[i], strict=True))
            out.append(LevelIndex(*(torch.cat(c) for c in cols)))
        else:
            out.append(LevelIndex.empty(device))
    return out


def _unique_first(key: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unique values of ``key`` and the index of each one's first occurrence."""
    if len(key) == 0:
        return key, key
    uniq, inv = torch.unique(key, return_inverse=True)
    first = torch.full((len(uniq),), len(key), dtype=torch.long, device=key.device)
    first.scatter_reduce_(0, inv, torch.arange(len(key), device=key.device), reduce="amin")
    return uniq, first


def simple_assign(
    levels: list[torch.Tensor],
    targets: torch.Tensor,
    anchors_px: torch.Tensor,
    strides: list[int],
    anchor_t: float = 4.0,
) -> list[LevelIndex]:
    shapes = [(int(p.shape[2]), int(p.shape[3])) for p in levels]
    return candidates(shapes, targets, anchors_px, strides, anchor_t)
