"""Stage-2 batches: anchor frames + a partner frame each, two augmented views of every ROI, pseudo-labels.

A sample is one anchor frame (the unit the sampler shards). Its batch also holds a partner frame of the same
source, up to ``partner_gap`` frames away, that shares a tracklet with it when one exists: those ROIs are the
cross-frame positives. Each ROI is cut twice with independently jittered boxes, from the cached maps with the
exact serving op (:func:`roi_features`); feature noise and channel dropout follow in :func:`augment_features`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from tracker_core.features import PIXEL_STRIDE, FeatureSpec, spec_roi_features
from training.encoder.cache import CachedSource


@dataclass(frozen=True)
class AugmentConfig:
    """What changes between frames of one object.

    ``jitter``: box shift and scale (fraction of the box size, std); ``noise``: Gaussian feature noise (fraction
    of the channel std); ``drop``: detector-channel dropout; ``illumination``: std of the log brightness gain of the
    pixels (a quarter of it per colour channel); ``blur``: probability of a 3x3 blur of the pixels; ``occlusion``:
    probability that a side or bottom block (up to 40 % of the ROI) is replaced by the same block of another ROI.
    """

    jitter: float = 0.08
    noise: float = 0.1
    drop: float = 0.1
    illumination: float = 0.0
    blur: float = 0.0
    occlusion: float = 0.0


@dataclass
class Batch:
    views: tuple[torch.Tensor, torch.Tensor]  # two [N,C,10,10] float32
    labels: torch.Tensor  # [N] int64 pseudo-identities (tracklet id, or a unique negative number)
    num_cross_frame: int  # ROIs with a same-tracklet partner in another frame of the batch


def jitter_boxes(boxes: np.ndarray, amount: float, rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """Shift centres and scale sides by ``N(0, amount)`` of the box size; clipped to the frame."""
    if amount <= 0 or len(boxes) == 0:
        return boxes
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    bw, bh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    n = len(boxes)
    cx = cx + rng.normal(0, amount, n) * bw
    cy = cy + rng.normal(0, amount, n) * bh
    bw = bw * np.exp(rng.normal(0, amount, n))
    bh = bh * np.exp(rng.normal(0, amount, n))
    out = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1).astype(np.float32)
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, w)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, h)
    out[:, 2] = np.maximum(out[:, 2], out[:, 0] + 1)
    out[:, 3] = np.maximum(out[:, 3], out[:, 1] + 1)
    return out


def _occlude(x: torch.Tensor, p: float, gen: torch.Generator) -> torch.Tensor:
    """Paste a side or bottom block of another ROI of the batch (another object in front) into some ROIs."""
    n, _, h, w = x.shape
    if p <= 0 or n < 2:
        return x
    x = x.clone()
    hit = torch.rand(n, generator=gen) < p
    other = torch.randint(0, n - 1, (n,), generator=gen)
    other = other + (other >= torch.arange(n)).long()  # never itself
    side = torch.randint(0, 3, (n,), generator=gen)  # 0 left, 1 right, 2 bottom
    size = 1 + (torch.rand(n, generator=gen) * 0.4 * w).long()
    for i in torch.nonzero(hit).flatten().tolist():
        k, j = int(size[i]), int(other[i])
        if side[i] == 0:
            x[i, :, :, :k] = x[j, :, :, :k]
        elif side[i] == 1:
            x[i, :, :, w - k :] = x[j, :, :, w - k :]
        else:
            x[i, :, h - k :, :] = x[j, :, h - k :, :]
    return x


def _pixels(x: torch.Tensor, aug: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """Illumination change and blur of ``[N,3,h,w]`` pixels in [0,1]."""
    n = x.shape[0]
    if aug.illumination > 0:
        gain = torch.exp(torch.randn(n, 1, 1, 1, generator=gen) * aug.illumination)
        tint = torch.exp(torch.randn(n, 3, 1, 1, generator=gen) * aug.illumination / 4)
        tint = tint.repeat_interleave(x.shape[1] // 3, dim=1)  # pixels2: each colour's 4 sub-pixel channels
        x = (x * gain * tint).clamp(0.0, 1.0)
    if aug.blur > 0:
        blurred = torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
        pick = (torch.rand(n, 1, 1, 1, generator=gen) < aug.blur).to(x.dtype)
        x = pick * blurred + (1 - pick) * x
    return x


def augment_features(
    x: torch.Tensor,
    mean: torch.Tensor,
    std: torch.Tensor,
    aug: AugmentConfig,
    gen: torch.Generator,
    pixel_channels: int = 0,
) -> torch.Tensor:
    """Occlusion, then on the detector channels Gaussian noise of ``aug.noise`` channel stds and dropout (a
    channel set to its mean with ``aug.drop``), and on the last ``pixel_channels`` (the pixels tap)
    illumination and blur."""
    x = _occlude(x, aug.occlusion, gen)
    c = x.shape[1] - pixel_channels
    det, pix = x[:, :c], x[:, c:]
    std4, mean4 = std[None, :c, None, None], mean[None, :c, None, None]
    if aug.noise > 0:
        det = det + torch.randn(det.shape, generator=gen) * (aug.noise * std4)
    if aug.drop > 0:
        keep = torch.rand((det.shape[0], det.shape[1], 1, 1), generator=gen) >= aug.drop
        det = torch.where(keep, det, mean4.expand_as(det))
    if pixel_channels:
        pix = _pixels(pix, aug, gen)
    return torch.cat([det, pix], dim=1) if pixel_channels else det


def read_maps(src: CachedSource, frames: list[int], spec: FeatureSpec) -> dict[int, torch.Tensor]:
    """float32 maps of ``frames`` (pixels scaled back to [0,1])."""
    idx = torch.as_tensor(frames, dtype=torch.long)
    out = {}
    for s in spec.strides:
        m = src.maps[s].index_select(0, idx)
        out[s] = m.float() / 255.0 if s == PIXEL_STRIDE else m.float()
    return out


class TrainSet:
    """Anchor frames (those with >= 1 detection) of all cached sources, and batch assembly."""

    def __init__(
        self, sources: list[CachedSource], spec: FeatureSpec, partner_gap: int = 20, max_rois: int = 384
    ) -> None:
        self.sources, self.spec = sources, spec
        self.partner_gap, self.max_rois = partner_gap, max_rois
        self.items = [(s, i) for s, src in enumerate(sources) for i in range(len(src)) if len(src.boxes[i])]

    def __len__(self) -> int:
        return len(self.items)

    def partner(self, s: int, i: int, rng: np.random.Generator) -> int | None:
        src = self.sources[s]
        lab = set(src.labels[i][src.labels[i] >= 0].tolist()) if src.labels else set()
        lo, hi = max(0, i - self.partner_gap), min(len(src) - 1, i + self.partner_gap)
        cands = [j for j in range(lo, hi + 1) if j != i and lab & set(src.labels[j].tolist())]
        if not cands:
            return None
        return int(rng.choice(cands))

    def roi_rows(self, anchors: list[int], rng: np.random.Generator) -> list[tuple[int, int, int]]:
        """``(source, frame, detection)`` rows of the anchors, their partners, capped at ``max_rois``."""
        frames: list[tuple[int, int]] = []
        for a in anchors:
            s, i = self.items[a]
            frames.append((s, i))
            j = self.partner(s, i, rng)
            if j is not None:
                frames.append((s, j))
        seen = set()
        rows = []
        for s, i in frames:
            if (s, i) in seen:
                continue
            seen.add((s, i))
            rows += [(s, i, d) for d in range(len(self.sources[s].boxes[i]))]
        if len(rows) > self.max_rois:
            keep = np.sort(rng.choice(len(rows), self.max_rois, replace=False))
            rows = [rows[k] for k in keep]
        return rows

    def make_batch(self, anchors: list[int], rng: np.random.Generator, aug: AugmentConfig) -> Batch:
        rows = self.roi_rows(anchors, rng)
        views: list[list[torch.Tensor]] = [[], []]
        labels: list[int] = []
        singleton = -1
        by_src: dict[int, dict[int, list[int]]] = {}
        for s, i, d in rows:
            by_src.setdefault(s, {}).setdefault(i, []).append(d)
        for s, fmap in by_src.items():
            src = self.sources[s]
            frames = sorted(fmap)
            maps = read_maps(src, frames, self.spec)
            tfs = [src.transforms[i] for i in frames]
            for v in range(2):
                boxes = [
                    jitter_boxes(src.boxes[i][fmap[i]], aug.jitter, rng, tfs[k].src_w, tfs[k].src_h)
                    for k, i in enumerate(frames)
                ]
                views[v].append(spec_roi_features(self.spec, maps, boxes, tfs))
            for i in frames:
                for d in fmap[i]:
                    lab = int(src.labels[i][d]) if src.labels else -1
                    if lab < 0:
                        lab = singleton
                        singleton -= 1
                    labels.append(lab)
        lab_t = torch.as_tensor(labels, dtype=torch.long)
        frame_of = torch.as_tensor(
            [s * 1_000_000 + i for s, fm in by_src.items() for i in sorted(fm) for _ in fm[i]]
        )
        same = (
            (lab_t[:, None] == lab_t[None, :])
            & (lab_t[:, None] >= 0)
            & (frame_of[:, None] != frame_of[None, :])
        )
        return Batch(
            views=(torch.cat(views[0]), torch.cat(views[1])),
            labels=lab_t,
            num_cross_frame=int(same.any(dim=1).sum()),
        )
