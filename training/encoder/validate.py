"""Validation: ROI features of labelled pairs, then metrics of the encoder and of two baselines.

Baselines on the same queries: ``center_distance`` (minus the distance between box centres), ``raw_features``
(the encoder's input ROI features average-pooled over the 10x10 grid, cosine similarity) and ``color_histogram``
(a joint HSV histogram of each box's pixels in the original frame, :func:`tracker_core.features.box_histograms`).
ReID models (``tracker_core.reid``) are scored beside them: :func:`pair_reid_embeddings` embeds each box's crop
of the original frame, as the server and eval-mot do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from tracker_core.features import (
    PIXEL_STRIDE,
    FeatureSpec,
    RoiFeatureExtractor,
    box_histograms,
    spec_roi_features,
)
from training.encoder.batches import read_maps
from training.encoder.cache import CachedSource
from training.encoder.val_data import FrameLabels, ValPair
from training.encoder.val_metrics import MatchingResult, evaluate_pairs
from training.sources import read_rgb


@dataclass
class ValFeatures:
    """Encoder inputs ``[N,C,10,10]`` (float32, CPU) of every pair's gallery (pre) and queries (now)."""

    pairs: list[ValPair]
    pre: list[torch.Tensor]
    now: list[torch.Tensor]
    pre_hist: list[torch.Tensor] | None = (
        None  # [N,B] colour histograms of the same boxes (None: not computed)
    )
    now_hist: list[torch.Tensor] | None = None


def _frame_histograms(fl: FrameLabels, memo: dict[tuple[str, bytes], torch.Tensor]) -> torch.Tensor:
    key = (str(fl.image), fl.boxes.tobytes())
    if key not in memo:
        memo[key] = box_histograms(read_rgb(fl.image), fl.boxes)
    return memo[key]


def pair_histograms(pairs: list[ValPair]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Colour histograms of every pair's gallery and query boxes, from the original frames."""
    memo: dict[tuple[str, bytes], torch.Tensor] = {}
    return [_frame_histograms(p.pre, memo) for p in pairs], [_frame_histograms(p.now, memo) for p in pairs]


def pair_reid_embeddings(pairs: list[ValPair], model: Any) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """ReID embeddings (``model``: a ``tracker_core.reid.ReidModel``) of every pair's gallery and query boxes,
    from crops of the original frames."""
    memo: dict[tuple[str, bytes], torch.Tensor] = {}

    def emb(fl: FrameLabels) -> torch.Tensor:
        key = (str(fl.image), fl.boxes.tobytes())
        if key not in memo:
            memo[key] = torch.from_numpy(model.embed_frame(read_rgb(fl.image), fl.boxes))
        return memo[key]

    return [emb(p.pre) for p in pairs], [emb(p.now) for p in pairs]


@torch.no_grad()
def extract_val_features(
    pairs: list[ValPair],
    detector: Any,
    spec: FeatureSpec,
    size: tuple[int, int] | Callable[[int, int], tuple[int, int]] = (640, 640),
) -> ValFeatures:
    """Run the frozen detector once per distinct labelled frame and cut the ROI features of its objects.

    ``size``: the detector input ``(H, W)``, or a function ``(h, w) -> (H, W)`` of the frame size."""
    torch.set_flush_denormal(True)  # as in stage 1: identical maps, much faster on CPU with denormals
    extractor = RoiFeatureExtractor(spec)
    memo: dict[tuple[str, bytes], torch.Tensor] = {}

    def feats(image: Path, boxes: np.ndarray) -> torch.Tensor:
        key = (str(image), boxes.tobytes())
        if key not in memo:
            img = read_rgb(image)
            hw = size(img.shape[0], img.shape[1]) if callable(size) else size
            x, transforms = detector.preprocess([img], hw)
            taps, _ = detector.forward_taps(x)
            maps = {s: taps[s] for s in spec.detector_strides}
            if PIXEL_STRIDE in spec.strides:
                maps[PIXEL_STRIDE] = x
            memo[key] = extractor(maps, [boxes], transforms).float().cpu()
        return memo[key]

    pre = [feats(p.pre.image, p.pre.boxes) for p in pairs]
    now = [feats(p.now.image, p.now.boxes) for p in pairs]
    pre_hist, now_hist = pair_histograms(pairs)
    return ValFeatures(pairs, pre, now, pre_hist, now_hist)


def val_features_from_cache(pairs: list[ValPair], src: CachedSource, spec: FeatureSpec) -> ValFeatures | None:
    """The same features from stage-1 cached maps (no detector run) when every pair frame is cached; else None."""
    where = {int(f): i for i, f in enumerate(src.frames)}
    need = [fl.frame for p in pairs for fl in (p.pre, p.now)]
    if any(f is None or f not in where for f in need):
        return None

    def feats(fl: FrameLabels) -> torch.Tensor:
        i = where[int(fl.frame)]  # type: ignore[arg-type]
        maps = read_maps(src, [i], spec)
        return spec_roi_features(spec, maps, [fl.boxes], [src.transforms[i]])

    pre_hist, now_hist = pair_histograms(pairs)
    return ValFeatures(
        pairs, [feats(p.pre) for p in pairs], [feats(p.now) for p in pairs], pre_hist, now_hist
    )


def _cosine(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    return (F.normalize(a.float(), dim=1) @ F.normalize(b.float(), dim=1).T).numpy()


def _centers(b: np.ndarray) -> np.ndarray:
    return np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2], axis=1)


def score_with(
    val: ValFeatures,
    embed: Callable[[torch.Tensor], torch.Tensor],
    inputs: tuple[list[torch.Tensor], list[torch.Tensor]] | None = None,
) -> MatchingResult:
    """Rank each pair's gallery for its queries by cosine similarity of ``embed(features)`` (``inputs``: other
    per-box inputs than the ROI features, as ``(pre, now)``)."""
    scores = []
    pres, nows = inputs if inputs is not None else (val.pre, val.now)
    for pre, now in zip(pres, nows, strict=True):
        if len(pre) == 0 or len(now) == 0:
            scores.append(np.zeros((len(now), len(pre))))
            continue
        scores.append(_cosine(embed(now), embed(pre)))
    return evaluate_pairs(scores, [p.now.ids for p in val.pairs], [p.pre.ids for p in val.pairs])


def center_distance(val: ValFeatures) -> MatchingResult:
    scores = []
    for p in val.pairs:
        d = np.linalg.norm(_centers(p.now.boxes)[:, None, :] - _centers(p.pre.boxes)[None, :, :], axis=2)
        scores.append(-d)
    return evaluate_pairs(scores, [p.now.ids for p in val.pairs], [p.pre.ids for p in val.pairs])


def raw_pooled(x: torch.Tensor) -> torch.Tensor:
    """``[N,C,10,10]`` -> ``[N,C]`` average over the ROI grid (the raw-feature baseline)."""
    return x.float().mean(dim=(2, 3))


def encoder_embed_fn(
    encoder: torch.nn.Module, device: torch.device | str = "cpu", batch: int = 512
) -> Callable[[torch.Tensor], torch.Tensor]:
    """A function ``[N,C,10,10] -> [N,D]`` running ``encoder`` in eval mode in chunks."""

    def embed(x: torch.Tensor) -> torch.Tensor:
        was = encoder.training
        encoder.eval()
        with torch.no_grad():
            out = torch.cat(
                [encoder(x[i : i + batch].to(device)).float().cpu() for i in range(0, len(x), batch)]
            )
        encoder.train(was)
        return out

    return embed


def validate(
    val: ValFeatures,
    encoder: torch.nn.Module | None,
    device: torch.device | str = "cpu",
    reid: dict[str, tuple[list[torch.Tensor], list[torch.Tensor]]] | None = None,
) -> dict:
    """``{"encoder": M, "raw_features": M, "center_distance": M, "color_histogram": M}`` (``encoder`` omitted
    when None, ``color_histogram`` when ``val`` has no histograms), plus one ``M`` per entry of ``reid``
    (method name -> :func:`pair_reid_embeddings`)."""
    out = {}
    if encoder is not None:
        out["encoder"] = score_with(val, encoder_embed_fn(encoder, device)).to_dict()
    out["raw_features"] = score_with(val, raw_pooled).to_dict()
    out["center_distance"] = center_distance(val).to_dict()
    if val.pre_hist is not None and val.now_hist is not None:
        out["color_histogram"] = score_with(val, lambda h: h, (val.pre_hist, val.now_hist)).to_dict()
    for name, inputs in (reid or {}).items():
        out[name] = score_with(val, lambda e: e, inputs).to_dict()
    return out
