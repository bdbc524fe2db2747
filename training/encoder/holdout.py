"""Honest, label-free validation during training: the last part of every source is held out.

``split_source`` cuts a cached source in time into the part stage 2 trains on and the held-out tail.
``holdout_val`` builds validation pairs on the tail the way the training positives are made, without identity
labels: the motion-only tracker links the tail's confident detections (a fresh tracker, no look at the training
part), and its track ids are the pseudo-identities of pairs ``(t, t+gap)``: queries are the later frame's linked
detections, the gallery all of the earlier frame's. The encoder, the pooled input
features, the colour histogram and the centre distance are all scored on the same queries
(:func:`training.encoder.validate.validate`); early stopping reads the encoder's mean MRR over the gaps. For a
``MixEncoder`` the block weights are chosen there too (:func:`calibrate_weights`), with weight 0 for the learned
block among the choices, so the encoder kept is never worse there than the fixed blocks it reads.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from tracker_core.encoder import MixEncoder
from tracker_core.features import PIXEL_STRIDE, FeatureSpec, box_histograms, spec_roi_features
from training.encoder.batches import read_maps
from training.encoder.cache import CachedSource
from training.encoder.tracklets import link_tracklets
from training.encoder.val_data import FrameLabels, ValPair
from training.encoder.val_metrics import evaluate_pairs
from training.encoder.validate import ValFeatures

NO_IMAGE = Path("")


def _slice(src: CachedSource, a: int, b: int, tag: str) -> CachedSource:
    return replace(
        src,
        name=f"{src.name}{tag}",
        maps={s: m[a:b] for s, m in src.maps.items()},
        frames=src.frames[a:b],
        transforms=src.transforms[a:b],
        boxes=src.boxes[a:b],
        scores=src.scores[a:b],
        labels=[],
    )


def split_source(src: CachedSource, holdout: float) -> tuple[CachedSource, CachedSource | None]:
    """``(train part, held-out tail)``: the tail is the last ``holdout`` fraction of the cached frames (at least
    2 frames, and the train part keeps at least 2); ``None`` when ``holdout`` is 0 or the source is too short."""
    n = len(src)
    k = round(n * holdout)
    if holdout <= 0 or k < 2 or n - k < 2:
        return src, None
    return _slice(src, 0, n - k, ""), _slice(src, n - k, n, ":holdout")


def _frame_labels(src: CachedSource, i: int, ids: np.ndarray, gallery: bool) -> FrameLabels:
    """Queries: the linked detections; a gallery keeps every detection (unlinked ones get ids no query has, so
    they can only be confused with, as in tracking)."""
    if gallery:
        ids = np.where(ids >= 0, ids, -1 - np.arange(len(ids)))
        return FrameLabels(NO_IMAGE, src.boxes[i], ids, int(src.frames[i]))
    keep = ids >= 0
    return FrameLabels(NO_IMAGE, src.boxes[i][keep], ids[keep], int(src.frames[i]))


def holdout_val(
    parts: list[CachedSource],
    spec: FeatureSpec,
    gaps_frames: tuple[int, ...],
    frame_step: int,
    min_score: float = 0.5,
) -> dict[int, ValFeatures]:
    """Per gap (in source frames): the held-out pairs of every part, with ROI features and colour histograms.

    Gaps become ``max(1, round(gap / frame_step))`` cached frames; a gap longer than a tail gives no pair there.
    Histograms are cut from the cached letterboxed pixels when they were cached (else not computed)."""
    out: dict[int, ValFeatures] = {}
    labelled = []
    for src in parts:
        labels, _ = link_tracklets(src, min_score=min_score, max_len=10**9)
        labelled.append((src, labels))
    for gap in gaps_frames:
        g = max(1, round(gap / frame_step))
        pairs: list[ValPair] = []
        pre: list[torch.Tensor] = []
        now: list[torch.Tensor] = []
        pre_h: list[torch.Tensor] = []
        now_h: list[torch.Tensor] = []
        for src, labels in labelled:
            for t in range(0, len(src) - g):
                a, b = _frame_labels(src, t, labels[t], True), _frame_labels(src, t + g, labels[t + g], False)
                if not len(a.ids) or not len(b.ids):
                    continue
                pairs.append(ValPair(f"{src.name}:{a.frame}-{b.frame}", a, b))
                for fl, i, fe, hi in ((a, t, pre, pre_h), (b, t + g, now, now_h)):
                    maps = read_maps(src, [i], spec)
                    tf = [src.transforms[i]]
                    fe.append(spec_roi_features(spec, maps, [fl.boxes], tf))
                    if PIXEL_STRIDE in src.maps:
                        img = src.maps[PIXEL_STRIDE][i].permute(1, 2, 0).numpy()
                        hi.append(box_histograms(img, src.transforms[i].to_input(fl.boxes)))
        if pairs:
            has_h = len(pre_h) == len(pre)
            out[gap] = ValFeatures(pairs, pre, now, pre_h if has_h else None, now_h if has_h else None)
    return out


def holdout_score(results: dict[str, dict]) -> float:
    """The early-stopping score: the encoder's pooled MRR averaged over the gaps."""
    vals = [
        r["encoder"]["pooled"]["mrr"]
        for g, r in results.items()
        if g != "block_weights" and r["encoder"]["pooled"]["mrr"] is not None
    ]
    return float(np.mean(vals)) if vals else 0.0


WEIGHT_GRID: dict[str, tuple[float, ...]] = {
    "learned": (0.0, 0.25, 0.5, 1.0),
    "raw": (0.0, 0.25, 0.5, 0.75, 1.0),
}
"""Block weights tried by :func:`calibrate_weights`, simplest first (the learned block least trusted); the
``color`` block, or else the first block, stays at 1."""


@torch.no_grad()
def calibrate_weights(
    model: MixEncoder, holdout: dict[int, ValFeatures], device: torch.device | str = "cpu"
) -> tuple[dict[str, float], float]:
    """Choose the MixEncoder's block weights on the held-out pairs, by the one-standard-error rule: the simplest
    grid point (:data:`WEIGHT_GRID` order: least weight on the learned block, then on the raw block) whose mean
    pooled MRR is within one standard error of the best one's. A held-out tail of a short video holds only tens
    of queries; the rule keeps a difference of a query or two from switching on a block that was fitted to the
    training tracklets. Sets the weights on ``model``; returns ``(weights, score)``."""
    was = model.training
    model.eval()
    fixed = "color" if "color" in model.blocks else model.blocks[0]
    free = [b for b in WEIGHT_GRID if b in model.blocks and b != fixed]
    cos: dict[int, list[dict[str, np.ndarray]]] = {}
    for gap, val in holdout.items():
        per_pair = []
        for pre, now in zip(val.pre, val.now, strict=True):
            if len(pre) == 0 or len(now) == 0:
                per_pair.append({b: np.zeros((len(now), len(pre))) for b in model.blocks})
                continue
            a, q = model.block_outputs(pre.to(device)), model.block_outputs(now.to(device))
            per_pair.append({b: (q[b].float() @ a[b].float().T).cpu().numpy() for b in model.blocks})
        cos[gap] = per_pair
    tried: list[
        tuple[float, float, dict[str, float]]
    ] = []  # (score, standard error, weights), simplest first
    for combo in itertools.product(*(WEIGHT_GRID[b] for b in free)):
        w = {fixed: 1.0, **dict(zip(free, combo, strict=True))}
        mrrs, ses = [], []
        for gap, val in holdout.items():
            scores = [np.sum([w[b] ** 2 * c[b] for b in model.blocks], axis=0) for c in cos[gap]]
            m = evaluate_pairs(scores, [p.now.ids for p in val.pairs], [p.pre.ids for p in val.pairs])
            rr = 1.0 / np.concatenate(m.ranks) if m.ranks else np.zeros(0)
            if len(rr):
                mrrs.append(float(rr.mean()))
                ses.append(float(rr.std(ddof=1) / np.sqrt(len(rr))) if len(rr) > 1 else 0.0)
        tried.append((float(np.mean(mrrs)) if mrrs else 0.0, float(np.mean(ses)) if ses else 0.0, w))
    top = max(tried, key=lambda t: t[0])
    chosen = next(t for t in tried if t[0] >= top[0] - top[1] - 1e-9)
    for b, v in chosen[2].items():
        model.set_block_weight(b, v)
    model.train(was)
    return chosen[2], chosen[0]
