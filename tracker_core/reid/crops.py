"""Crops of a frame's boxes, resized and normalised for a ReID model (functional ops on NumPy arrays).

Boxes are ``xyxy`` float pixels of the original frame (pixel ``i`` spans ``[i, i+1)``). A box is read from the
whole pixels its rounded edges enclose, clipped to the frame; a box that is thinner than a pixel, or lies on or
beyond an edge, still reads at least the one nearest pixel row/column inside the frame, so every box gets a crop
(and an embedding). Non-finite coordinates are an ``InvalidInputError``.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from numpy.typing import NDArray

from tracker_core.errors import InvalidInputError
from tracker_core.reid.spec import ReidInputSpec


def crop_windows(boxes: NDArray[np.floating], width: int, height: int) -> NDArray[np.int64]:
    """``[N,4]`` xyxy float boxes -> ``[N,4]`` integer windows ``(x1, y1, x2, y2)``, half-open, inside the
    ``width x height`` frame, at least one pixel each way."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if not np.isfinite(b).all():
        raise InvalidInputError("ReID crops: boxes contain NaN or infinite coordinates")
    if width < 1 or height < 1:
        raise InvalidInputError(f"ReID crops: empty frame {width}x{height}")
    r = np.floor(b + 0.5)  # round half up: the same on every platform
    x1 = np.clip(r[:, 0], 0, width - 1)
    y1 = np.clip(r[:, 1], 0, height - 1)
    x2 = np.clip(r[:, 2], x1 + 1, width)
    y2 = np.clip(r[:, 3], y1 + 1, height)
    return np.stack([x1, y1, x2, y2], axis=1).astype(np.int64)


def crop_resize(
    image: NDArray[np.uint8], boxes: NDArray[np.floating], height: int, width: int
) -> NDArray[np.uint8]:
    """``HxWx3`` uint8 image + ``[N,4]`` xyxy boxes -> ``[N,height,width,3]`` uint8 crops (bilinear resize, OpenCV
    ``INTER_LINEAR``, the image's own channel order)."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise InvalidInputError(f"ReID crops need an HxWx3 uint8 image, got {image.shape} {image.dtype}")
    win = crop_windows(boxes, image.shape[1], image.shape[0])
    out = np.empty((len(win), height, width, 3), np.uint8)
    for k, (x1, y1, x2, y2) in enumerate(win.tolist()):
        out[k] = cv2.resize(image[y1:y2, x1:x2], (width, height), interpolation=cv2.INTER_LINEAR)
    return out


def normalise_crops(crops: NDArray[np.uint8], spec: ReidInputSpec) -> NDArray[np.float32]:
    """``[N,h,w,3]`` uint8 RGB crops -> the model input ``[N,3,h,w]`` float32: channel order, ``/ pixel_scale``,
    ``- mean``, ``/ std``."""
    x = crops[..., ::-1] if spec.channels == "bgr" else crops
    scale = np.float32(1.0 / spec.pixel_scale)
    mean = np.asarray(spec.mean, np.float32)
    inv_std = (1.0 / np.asarray(spec.std, np.float64)).astype(np.float32)
    y = (x.astype(np.float32) * scale - mean) * inv_std
    return np.ascontiguousarray(y.transpose(0, 3, 1, 2))


def reid_inputs(
    images: Sequence[NDArray[np.uint8]], boxes: Sequence[NDArray[np.floating]], spec: ReidInputSpec
) -> NDArray[np.float32]:
    """Every frame's crops in one model input ``[sum Ni, 3, H, W]`` (frame order, then box order); ``images``
    are ``HxWx3`` uint8 **RGB**."""
    if len(images) != len(boxes):
        raise InvalidInputError(f"ReID crops: {len(images)} images but {len(boxes)} box arrays")
    parts = [crop_resize(img, b, spec.height, spec.width) for img, b in zip(images, boxes, strict=True)]
    crops = np.concatenate(parts) if parts else np.zeros((0, spec.height, spec.width, 3), np.uint8)
    return normalise_crops(crops, spec)
