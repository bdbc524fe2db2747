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
    """Largest differences from torch fp32 a backend may show at a precision, as relative L2 errors
    ``||got - ref|| / ||ref||`` (robust to the few anchors that a rounding flips in a randomly initialised network)
    and a cosine.

    ``box``: the predicted boxes (centre x, y, width, height in input pixels); ``prob``: objectness and class
    probabilities; ``maps``: each feature map the encoder reads; ``embed_cos``: the lowest cosine between an ROI
    embedding and its reference."""

    box: float
    prob: float
    maps: float
    embed_cos: float


TOLERANCES: dict[str, Tolerance] = {
    # Another fp32 implementation (other kernels, other summation order): rounding only (measured <= 4e-5 on the
    # shared reference vectors, both arches).
    "fp32": Tolerance(box=1e-4, prob=1e-4, maps=1e-4, embed_cos=0.9999),
    # bf16 keeps 8 mantissa bits (~0.4 % per rounding, accumulating over the layers); the head's decode runs in
    # fp32. Measured: yolov7-tiny (official random weights, PETS frames) box 0.007, prob 0.010, maps 0.075
    # (stride 32) / 0.125 (stride 8); random yolov7 (build_detector) 0.024 / 0.034 / 0.018. Other weights in the
    # same network: maps ~1, prob 0.2-1. The official random yolov7 (maps 0.23) is chaotic: rounding its fp32
    # input to bf16 alone moves its maps by 0.08, so it fails here (docs/performance.md, "Parity").
    "bf16": Tolerance(box=0.05, prob=0.08, maps=0.2, embed_cos=0.99),
    "fp16": Tolerance(box=0.01, prob=0.02, maps=0.03, embed_cos=0.995),
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
    box: float
    prob: float
    maps: dict[int, float]
    embed_cos: float | None
    xy_px_max: float  # the largest box-centre difference in input pixels (reported, not bounded)
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["maps"] = {str(k): v for k, v in self.maps.items()}
        d["passed"] = self.passed
        return d

    def summary(self) -> str:
        emb = "-" if self.embed_cos is None else f"{self.embed_cos:.5f}"
        worst_map = max(self.maps.values()) if self.maps else 0.0
        return (
            f"boxes {self.box:.3g}, probabilities {self.prob:.3g}, maps {worst_map:.3g} (relative L2), "
            f"embedding cos {emb}, largest centre shift {self.xy_px_max:.3g} px"
            + (f"; FAILS {', '.join(self.failures)}" if self.failures else "")
        )


def rel_l2(got: torch.Tensor, ref: torch.Tensor) -> float:
    """``||got - ref|| / ||ref||`` in float64 (0 for two empty tensors)."""
    g, r = got.detach().double().cpu(), ref.detach().double().cpu()
    if r.numel() == 0:
        return 0.0
    return float((g - r).norm() / r.norm().clamp_min(1e-30))


def compare(ref: ModelOutputs, got: ModelOutputs, precision: str) -> ParityReport:
    """Differences of ``got`` from the reference ``ref`` and whether they are within ``TOLERANCES[precision]``."""
    tol = TOLERANCES[precision]
    rp, gp = ref.pred, got.pred
    if tuple(rp.shape) != tuple(gp.shape):
        raise ValueError(f"prediction shapes differ: {tuple(gp.shape)} vs reference {tuple(rp.shape)}")
    box = rel_l2(gp[..., :4], rp[..., :4])
    prob = rel_l2(gp[..., 4:], rp[..., 4:])
    xy = float((gp[..., :2].float().cpu() - rp[..., :2].float().cpu()).abs().max()) if rp.numel() else 0.0
    maps = {int(s): rel_l2(got.maps[s], rm) for s, rm in ref.maps.items()}
    cos = None
    if ref.embeddings is not None and got.embeddings is not None and len(ref.embeddings):
        a, b = ref.embeddings.astype(np.float64), got.embeddings.astype(np.float64)
        cos = float(
            ((a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)).clip(1e-12)).min()
        )
    fails = []
    if not box <= tol.box:
        fails.append(f"boxes {box:.3g} > {tol.box}")
    if not prob <= tol.prob:
        fails.append(f"probabilities {prob:.3g} > {tol.prob}")
    for s, v in maps.items():
        if not v <= tol.maps:
            fails.append(f"stride-{s} map {v:.3g} > {tol.maps}")
    if cos is not None and not cos >= tol.embed_cos:
        fails.append(f"embedding cosine {cos:.5f} < {tol.embed_cos}")
    return ParityReport(precision, tol, box, prob, maps, cos, xy, fails)


def run_outputs(
    backend: Any, x: torch.Tensor, boxes: Sequence[np.ndarray] | None, transforms: Sequence[Any] | None
) -> ModelOutputs:
    """Run ``backend`` (an :class:`InferenceBackend`) on ``x``, and embed ``boxes`` when it has an encoder."""
    maps, pred = backend.forward_taps(x)
    emb = None
    if backend.encoder is not None and boxes is not None and transforms is not None:
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
    min_iou: float = 0.5,
) -> dict[str, Any]:
    """Detections after NMS, ``(boxes [N,4] xyxy, scores [N], classes [N])`` each, against the reference's.

    Greedy in the reference's score order: each reference detection takes the unused detection of the same class
    with the highest IoU (identical boxes, even empty ones, have IoU 1), if that IoU is at least ``min_iou``. Give
    ``got`` a larger ``max_det`` than ``ref`` so that near-ties at the cut-off do not count as misses. Returns the
    matched share, the IoUs (min, median) and score differences (max, median) of the matches."""
    rb, rs, rc = ref
    gb, gs, gc = got
    iou = box_iou(rb, gb) if len(rb) and len(gb) else np.zeros((len(rb), len(gb)))
    if len(rb) and len(gb):
        same = np.abs(rb[:, None, :] - gb[None, :, :]).max(2) == 0
        iou = np.where(same, 1.0, iou)
    used = np.zeros(len(gb), bool)
    ious, dscore = [], []
    for i in np.argsort(-rs, kind="stable"):
        cand = np.where(~used & (gc == rc[i]))[0]
        if not len(cand):
            continue
        j = cand[np.argmax(iou[i, cand])]
        if iou[i, j] >= min_iou:
            used[j] = True
            ious.append(float(iou[i, j]))
            dscore.append(float(abs(gs[j] - rs[i])))
    n = len(rb)
    return {
        "reference": n,
        "matched": len(ious),
        "matched_share": len(ious) / n if n else 1.0,
        "min_iou": min(ious) if ious else float("nan"),
        "median_iou": float(np.median(ious)) if ious else float("nan"),
        "max_score_diff": max(dscore) if dscore else float("nan"),
        "median_score_diff": float(np.median(dscore)) if dscore else float("nan"),
    }


def outputs_on_calibration(
    backend: Any, input_size: tuple[int, int]
) -> tuple[ModelOutputs, Mapping[str, Any]]:
    """The backend's outputs on the calibration frame at ``input_size`` (and the input it used)."""
    frame, boxes = calibration_frame()
    x, transforms = backend.detector.preprocess([frame], input_size)
    out = run_outputs(backend, x, [boxes], transforms)
    return out, {"x": x, "boxes": [boxes], "transforms": transforms}
