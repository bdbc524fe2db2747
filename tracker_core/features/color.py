"""HSV colour histograms of boxes: the ``color_histogram`` validation baseline and the encoder's colour branch.

One definition for both: RGB in [0,1] -> HSV (OpenCV's formulas, H in [0,1)) -> a joint ``H x S x V`` histogram
with hard bins, L1-normalised, then square-rooted (so that the cosine of two histograms is their Bhattacharyya
coefficient). Only elementwise ops, comparisons and sums: it runs inside the encoder and exports to ONNX.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from tracker_core.errors import InvalidInputError

HIST_BINS = (8, 3, 3)
"""Default bins of H, S, V (72 in all): coarse enough for a 10x10 pixel ROI (100 samples)."""


def rgb_to_hsv(rgb: torch.Tensor) -> torch.Tensor:
    """``[N,3,...]`` RGB in [0,1] -> ``[N,3,...]`` HSV, each in [0,1] (H wraps: red is 0)."""
    r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    v = torch.maximum(torch.maximum(r, g), b)
    mn = torch.minimum(torch.minimum(r, g), b)
    delta = v - mn
    s = torch.where(v > 0, delta / v.clamp_min(1e-6), torch.zeros_like(v))
    d = delta.clamp_min(1e-6)
    h_r = ((g - b) / d) % 6.0
    h_g = (b - r) / d + 2.0
    h_b = (r - g) / d + 4.0
    h = torch.where(v == r, h_r, torch.where(v == g, h_g, h_b)) / 6.0
    h = torch.where(delta > 0, h, torch.zeros_like(h))
    return torch.stack([h % 1.0, s, v], dim=1)


def hsv_histogram(rgb: torch.Tensor, bins: Sequence[int] = HIST_BINS) -> torch.Tensor:
    """``[N,3,h,w]`` RGB in [0,1] -> ``[N, prod(bins)]`` square-rooted, L1-normalised joint HSV histograms."""
    if rgb.ndim != 4 or rgb.shape[1] != 3:
        raise InvalidInputError(f"hsv_histogram expects [N,3,h,w] RGB, got {tuple(rgb.shape)}")
    hsv = rgb_to_hsv(rgb.float().clamp(0.0, 1.0)).flatten(2)  # [N,3,P]
    if len(bins) != 3:
        raise InvalidInputError(f"hsv_histogram needs three bin counts (H, S, V), got {bins}")
    nh, ns, nv = (int(b) for b in bins)
    idx = torch.zeros_like(hsv[:, 0])
    for k, nb in enumerate((nh, ns, nv)):
        q = torch.floor(hsv[:, k] * nb).clamp(0, nb - 1)
        idx = idx * nb + q
    total = nh * ns * nv
    onehot = (idx[:, :, None] == torch.arange(total, device=rgb.device, dtype=idx.dtype)).to(rgb.dtype)
    hist = onehot.float().sum(dim=1)
    hist = hist / hist.sum(dim=1, keepdim=True).clamp_min(1.0)
    return hist.sqrt()


def box_histograms(image: np.ndarray, boxes: np.ndarray, bins: Sequence[int] = HIST_BINS) -> torch.Tensor:
    """Histograms of the pixels inside each box of an ``HxWx3`` uint8 RGB image (full resolution) ->
    ``[N, prod(bins)]``; a box with no pixel inside the image gets zeros."""
    h, w = image.shape[:2]
    out = torch.zeros((len(boxes), int(np.prod(bins))), dtype=torch.float32)
    for i, b in enumerate(np.asarray(boxes, np.float32).reshape(-1, 4)):
        x1, y1 = int(np.clip(np.floor(b[0]), 0, w)), int(np.clip(np.floor(b[1]), 0, h))
        x2, y2 = int(np.clip(np.ceil(b[2]), 0, w)), int(np.clip(np.ceil(b[3]), 0, h))
        if x2 <= x1 or y2 <= y1:
            continue
        crop = torch.from_numpy(np.ascontiguousarray(image[y1:y2, x1:x2])).permute(2, 0, 1)[None]
        out[i] = hsv_histogram(crop.float() / 255.0, bins)[0]
    return out
