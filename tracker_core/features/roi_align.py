"""The functional ROI feature op: ``[B,C,Hf,Wf]`` map + per-frame boxes -> ``[N,C,10,10]``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torchvision.ops import roi_align

from tracker_core.errors import InvalidInputError
from tracker_core.letterbox import LetterboxTransform

ROI_SIZE = 10
"""The one ROI output size (``ROI_SIZE x ROI_SIZE``) for training, validation and serving."""

PIXEL_STRIDE = 1
"""Stride of the letterboxed input frame itself, used as a 'tap' for the box's own pixels."""


def boxes_to_rois(
    boxes: Sequence[np.ndarray],
    transforms: Sequence[LetterboxTransform],
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Per-frame boxes (``[Ni,4]`` xyxy original-frame px) -> ``[sum Ni, 5]`` rois ``(batch_index, x1,y1,x2,y2)``.

    Coordinates are letterboxed-input pixels (via ``LetterboxTransform.to_input``); ``batch_index`` is the
    position of the frame in ``boxes``. Boxes are clipped to their frame first (a box reaching outside the frame
    reads only the frame's part; one wholly outside becomes an empty box on the frame's edge), so a box's
    size in input pixels never exceeds the input's.
    """
    if len(boxes) != len(transforms):
        raise InvalidInputError(f"{len(boxes)} box arrays but {len(transforms)} letterbox transforms")
    parts = []
    for i, (b, t) in enumerate(zip(boxes, transforms, strict=True)):
        arr = np.asarray(b, dtype=np.float32)
        if arr.size == 0:
            continue
        if arr.ndim != 2 or arr.shape[1] != 4:
            raise InvalidInputError(f"boxes of frame {i} must be [N,4] xyxy, got shape {arr.shape}")
        if not np.isfinite(arr).all():
            raise InvalidInputError(f"boxes of frame {i} contain NaN or inf")
        if (arr[:, 2] < arr[:, 0]).any() or (arr[:, 3] < arr[:, 1]).any():
            raise InvalidInputError(f"boxes of frame {i} must be xyxy with x2 >= x1 and y2 >= y1")
        clipped = np.empty_like(arr)
        clipped[:, [0, 2]] = arr[:, [0, 2]].clip(0.0, float(t.src_w))
        clipped[:, [1, 3]] = arr[:, [1, 3]].clip(0.0, float(t.src_h))
        inp = t.to_input(clipped)
        parts.append(np.concatenate([np.full((len(inp), 1), i, dtype=np.float32), inp], axis=1))
    if not parts:
        return torch.zeros((0, 5), dtype=dtype, device=device)
    return torch.from_numpy(np.concatenate(parts, axis=0)).to(device=device, dtype=dtype)


def roi_features(
    tap: torch.Tensor,
    boxes: Sequence[np.ndarray],
    transforms: Sequence[LetterboxTransform],
    stride: int,
    output_size: int = ROI_SIZE,
    sampling_ratio: int = -1,
) -> torch.Tensor:
    """ROI Align of boxes given in original-frame pixels on a feature map of the letterboxed input.

    Args:
        tap: ``[B,C,Hf,Wf]`` feature map of the letterboxed batch (``Hf = H/stride``); ``stride=1`` for the
            letterboxed frame itself (the box's own pixels).
        boxes: ``B`` arrays ``[Ni,4]`` xyxy float pixels of each **original** frame (``Ni`` may be 0).
        transforms: the ``B`` letterbox transforms that placed each frame into the input.
        stride: input pixels per feature cell; ``spatial_scale = 1/stride``.
        output_size: side of the output grid (keep the default :data:`ROI_SIZE`).
        sampling_ratio: bilinear samples per bin side; ``-1`` = adaptive (``ceil(roi_size/output_size)``).

    Returns:
        ``[sum Ni, C, output_size, output_size]`` in the order of the frames then boxes,
        ``torchvision.ops.roi_align(..., aligned=True)`` with real batch indices.
    """
    if tap.ndim != 4:
        raise InvalidInputError(f"feature tap must be [B,C,Hf,Wf], got shape {tuple(tap.shape)}")
    if len(boxes) != tap.shape[0]:
        raise InvalidInputError(f"{len(boxes)} box arrays for a batch of {tap.shape[0]} feature maps")
    if stride <= 0:
        raise InvalidInputError(f"stride must be positive, got {stride}")
    rois = boxes_to_rois(boxes, transforms, device=tap.device, dtype=tap.dtype)
    if rois.shape[0] == 0:
        return tap.new_zeros((0, tap.shape[1], output_size, output_size))
    # Guard of the op itself: whatever the transforms say, no roi reaches outside the map. torchvision's kernel
    # sizes its sampling grid from the roi (sampling_ratio=-1); an unbounded roi overflowed it (SIGSEGV) or ran
    # for seconds.
    extent_w, extent_h = float(tap.shape[3] * stride), float(tap.shape[2] * stride)
    rois[:, 1::2] = rois[:, 1::2].clamp(0.0, extent_w)
    rois[:, 2::2] = rois[:, 2::2].clamp(0.0, extent_h)
    return roi_align(
        tap,
        rois,
        output_size=(output_size, output_size),
        spatial_scale=1.0 / stride,
        sampling_ratio=sampling_ratio,
        aligned=True,
    )
