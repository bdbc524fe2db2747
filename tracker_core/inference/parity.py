"""Parity of a backend with the torch fp32 reference: the calibration frame, the comparisons, the tolerances.

Compared, for the same letterboxed input: the decoded predictions (box centres in input pixels, box sizes
relative, objectness and class probabilities absolute), every feature map the encoder reads (relative L2 error),
and the ROI embeddings of a set of boxes (cosine with the reference embedding). :func:`match_detections` compares
detections after NMS (boxes matched by IoU, scores by difference) for tests on real frames.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch


@dataclass(frozen=True)
class Tolerance:
    """Largest differences from torch fp32 a backend may show at a precision.

    ``xy_px``: box centre, input pixels; ``wh_rel``: box width / height, ``|d| / (ref + 1 px)``; ``prob``:
    objectness and class probabilities, absolute; ``map_rel``: ``||d|| / ||ref||`` of each feature map;
    ``embed_cos``: the lowest cosine between an embedding and its reference."""

    xy_px: float
    wh_rel: float
    prob: float
    map_rel: float
    embed_cos: float


TOLERANCES: dict[str, Tolerance] = {
    # Another fp32 implementation (other kernels, other summation order): rounding only. The xy bound is that of
    # the randomly initialised 106-layer yolov7, whose fp32 rounding floor is ~0.7 px (docs/detector.md).
    "fp32": Tolerance(xy_px=1.0, wh_rel=2e-3, prob=1e-3, map_rel=1e-4, embed_cos=0.9999),
    # bf16 keeps 8 mantissa bits: ~0.4 % per rounding, accumulating over the layers. The decode runs in fp32,
    # so box centres stay within a pixel or two.
    "bf16": Tolerance(xy_px=3.0, wh_rel=0.05, prob=0.02, map_rel=0.05, embed_cos=0.995),
    "fp16": Tolerance(xy_px=2.0, wh_rel=0.02, prob=0.01, map_rel=0.02, embed_cos=0.998),
}


@dataclass
class ModelOutputs:
    """What a backend produced for one input: maps by stride, decoded predictions, ROI embeddings (or None)."""

    maps: dict[int, torch.Tensor]
    pred: torch.Tensor
    embeddings: np.ndarray | None


@dataclass
class ParityReport:
    precision: str
    tolerance: Tolerance
    xy_px: float
    wh_rel: float
    prob: float
    map_rel: dict[int, float]
    embed_cos: float | None
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["map_rel"] = {str(k): v for k, v in self.map_rel.items()}
        d["passed"] = self.passed
        return d

    def summary(self) -> str:
        emb = "-" if self.embed_cos is None else f"{self.embed_cos:.5f}"
        worst_map = max(self.map_rel.values()) if self.map_rel else 0.0
        return (
            f"xy {self.xy_px:.3g} px, wh {self.wh_rel:.3g}, prob {self.prob:.3g}, maps {worst_map:.3g}, "
            f"embedding cos {emb}" + (f"; FAILS {', '.join(self.failures)}" if self.failures else "")
        )


def compare(ref: ModelOutputs, got: ModelOutputs, precision: str) -> ParityReport:
    """Differences of ``got`` from the reference ``ref`` and whether they are within ``TOLERANCES[precision]``."""
    tol = TOLERANCES[precision]
    rp, gp = ref.pred.float().cpu(), got.pred.float().cpu()
    if rp.shape != gp.shape:
        raise ValueError(f"prediction shapes differ: {tuple(gp.shape)} vs reference {tuple(rp.shape)}")
    xy = float((gp[..., :2] - rp[..., :2]).abs().max()) if rp.numel() else 0.0
    wh = (
        float(((gp[..., 2:4] - rp[..., 2:4]).abs() / (rp[..., 2:4].abs() + 1.0)).max()) if rp.numel() else 0.0
    )
    prob = float((gp[..., 4:] - rp[..., 4:]).abs().max()) if rp.numel() else 0.0
    maps = {}
    for s, rm in ref.maps.items():
        gm = got.maps[s].float().cpu()
        rmf = rm.float().cpu()
        maps[int(s)] = float((gm - rmf).norm() / rmf.norm().clamp_min(1e-12))
    cos = None
    if ref.embeddings is not None and got.embeddings is not None and len(ref.embeddings):
        a, b = ref.embeddings.astype(np.float64), got.embeddings.astype(np.float64)
        cos = float(
            ((a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)).clip(1e-12)).min()
        )
    fails = []
    if not xy <= tol.xy_px:
        fails.append(f"box centres {xy:.3g} px > {tol.xy_px}")
    if not wh <= tol.wh_rel:
        fails.append(f"box sizes {wh:.3g} > {tol.wh_rel}")
    if not prob <= tol.prob:
        fails.append(f"probabilities {prob:.3g} > {tol.prob}")
    for s, v in maps.items():
        if not v <= tol.map_rel:
            fails.append(f"stride-{s} map {v:.3g} > {tol.map_rel}")
    if cos is not None and not cos >= tol.embed_cos:
        fails.append(f"embedding cosine {cos:.5f} < {tol.embed_cos}")
    return ParityReport(precision, tol, xy, wh, prob, maps, cos, fails)


def run_outputs(
    backend: Any, x: torch.Tensor, boxes: Sequence[np.ndarray] | None, transforms: Sequence[Any]
) -> ModelOutputs:
    """Run ``backend`` (an :class:`InferenceBackend`) on ``x``, and embed ``boxes`` when it has an encoder."""
    maps, pred = backend.forward_taps(x)
    emb = None
    if backend.encoder is not None and boxes is not None:
        emb = backend.embed(maps, boxes, transforms, x)
    return ModelOutputs(maps, pred, emb)


# ------------------------------------------------------------------------------------- calibration frame


def calibration_frame(
    height: int = 576, width: int = 768, objects: int = 12, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """A deterministic street-like frame (``HxWx3`` uint8 RGB: smooth colour gradients, texture, two-tone
    upright boxes like people) and its ``objects`` boxes ``[K,4]`` xyxy px."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.stack(
        [
            90 + 60 * np.sin(xx / 97.0) + 30 * np.cos(yy / 53.0),
            110 + 50 * np.cos(xx / 61.0 + yy / 173.0),
            100 + 70 * np.sin(yy / 79.0),
        ],
        axis=2,
    )
    img += rng.normal(0, 8, img.shape)
    boxes = np.zeros((objects, 4), np.float32)
    for k in range(objects):
        w = float(rng.uniform(24, 70))
        h = float(w * rng.uniform(1.8, 2.6))
        x0 = float(rng.uniform(0, width - w))
        y0 = float(rng.uniform(0, height - h))
        top, bottom = rng.integers(20, 235, size=(2, 3))
        yi0, yi1, ym = int(y0), int(y0 + h), int(y0 + h / 2)
        xi0, xi1 = int(x0), int(x0 + w)
        img[yi0:ym, xi0:xi1] = top
        img[ym:yi1, xi0:xi1] = bottom
        boxes[k] = (x0, y0, x0 + w, y0 + h)
    return np.clip(img, 0, 255).astype(np.uint8), boxes


# ------------------------------------------------------------------------------------- detections


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``[N,4]`` x ``[M,4]`` xyxy -> ``[N,M]`` IoU."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(2)
    area_a = (a[:, 2:] - a[:, :2]).clip(0).prod(1)
    area_b = (b[:, 2:] - b[:, :2]).clip(0).prod(1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def match_detections(
    ref: tuple[np.ndarray, np.ndarray, np.ndarray],
    got: tuple[np.ndarray, np.ndarray, np.ndarray],
    conf: float,
    score_tol: float,
) -> dict[str, Any]:
    """Detections after NMS, ``(boxes, scores, classes)`` each, against the reference's.

    A reference detection is *matched* by the unused detection of the same class with the highest IoU. Reference
    detections within ``score_tol`` of the threshold ``conf`` may be absent (a rounding can move them across it);
    so may the backend's. Returns the IoUs and score differences of the matches and the unmatched counts."""
    rb, rs, rc = ref
    gb, gs, gc = got
    used = np.zeros(len(gb), bool)
    ious, dscore = [], []
    missing = 0
    iou = box_iou(rb, gb) if len(rb) and len(gb) else np.zeros((len(rb), len(gb)))
    for i in np.argsort(-rs):
        cand = np.where(~used & (gc == rc[i]))[0]
        if len(cand):
            j = cand[np.argmax(iou[i, cand])]
            if iou[i, j] > 0.5:
                used[j] = True
                ious.append(float(iou[i, j]))
                dscore.append(float(abs(gs[j] - rs[i])))
                continue
        if rs[i] > conf + score_tol:
            missing += 1
    extra = int(sum(1 for j in np.where(~used)[0] if gs[j] > conf + score_tol))
    return {
        "reference": len(rb),
        "matched": len(ious),
        "missing": missing,
        "extra": extra,
        "min_iou": min(ious) if ious else 1.0,
        "max_score_diff": max(dscore) if dscore else 0.0,
    }


def outputs_on_calibration(
    backend: Any, input_size: tuple[int, int]
) -> tuple[ModelOutputs, Mapping[str, Any]]:
    """The backend's outputs on the calibration frame at ``input_size`` (and the input it used)."""
    frame, boxes = calibration_frame()
    x, transforms = backend.detector.preprocess([frame], input_size)
    out = run_outputs(backend, x, [boxes], transforms)
    return out, {"x": x, "boxes": [boxes], "transforms": transforms}
