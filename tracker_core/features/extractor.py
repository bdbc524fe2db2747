"""``RoiFeatureExtractor``: the thin ``nn.Module`` over :func:`roi_features` for one :class:`FeatureSpec`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from tracker_core.errors import InvalidInputError
from tracker_core.features.roi_align import PIXEL_STRIDE, ROI_SIZE, roi_features
from tracker_core.features.spec import FeatureSpec
from tracker_core.letterbox import LetterboxTransform


class RoiFeatureExtractor(nn.Module):
    """Cut ``[N, sum C_s, 10, 10]`` ROI features out of several maps and concatenate them along channels.

    ``forward(taps, boxes, transforms)``: ``taps`` maps stride -> ``[B,C_s,H/s,W/s]`` (stride 1 = the
    letterboxed input ``[B,3,H,W]`` in [0,1]); ``boxes`` are ``B`` arrays ``[Ni,4]`` xyxy original-frame px;
    ``transforms`` the ``B`` letterbox transforms. Output rows follow frames then boxes; channels follow
    ``spec.strides``. Maps are read in float32 (ROI Align on CPU has no half kernel).
    """

    def __init__(self, spec: FeatureSpec | None = None, output_size: int = ROI_SIZE) -> None:
        super().__init__()
        self.spec = spec or FeatureSpec()
        self.output_size = int(output_size)

    def forward(
        self,
        taps: Mapping[int, torch.Tensor],
        boxes: Sequence[np.ndarray],
        transforms: Sequence[LetterboxTransform],
    ) -> torch.Tensor:
        return spec_roi_features(self.spec, taps, boxes, transforms, self.output_size)


def spec_roi_features(
    spec: FeatureSpec,
    taps: Mapping[int, torch.Tensor],
    boxes: Sequence[np.ndarray],
    transforms: Sequence[LetterboxTransform],
    output_size: int = ROI_SIZE,
) -> torch.Tensor:
    """The encoder input of ``spec``: every map's ROI features concatenated along channels ``[N, sum C, 10, 10]``
    (the pixels tap of ``pixels2`` cut at 20x20 and folded into 12 channels). The one place that cuts them, for
    serving, eval-mot, training and validation alike."""
    parts = []
    for s in spec.strides:
        if s not in taps:
            raise InvalidInputError(f"feature spec {spec.name} needs the stride-{s} map; got {sorted(taps)}")
        tap = taps[s]
        if tap.dtype != torch.float32:
            tap = tap.float()
        k = spec.pixel_scale if s == PIXEL_STRIDE else 1
        f = roi_features(tap, boxes, transforms, stride=s, output_size=output_size * k)
        parts.append(torch.nn.functional.pixel_unshuffle(f, k) if k > 1 else f)
    return torch.cat(parts, dim=1)
