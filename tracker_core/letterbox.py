"""Letterbox: the one place where original-frame pixels and detector-input pixels meet.

The official YOLOv7 letterbox: scale ``r = min(H/h, W/w)``, resize to ``round(w*r) x round(h*r)`` with
``cv2.INTER_LINEAR`` (skipped when the size already matches), pad with 114, image centred with
``top = (H - nh) // 2`` and ``left = (W - nw) // 2``. A side that would round to 0 pixels (a 1x1000 frame) is
kept at 1 pixel, so every frame of positive size letterboxes.

Boxes are ``xyxy`` float pixels. :class:`LetterboxTransform` maps them both ways.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from tracker_core.errors import InvalidInputError

PAD_VALUE = 114


@dataclass(frozen=True)
class LetterboxTransform:
    """How one original frame of ``src_w x src_h`` was placed into a ``dst_w x dst_h`` input.

    ``input = original * scale + (pad_left, pad_top)``.
    """

    scale: float
    pad_left: int
    pad_top: int
    src_w: int
    src_h: int
    dst_w: int
    dst_h: int

    def to_input(self, boxes_xyxy: np.ndarray) -> np.ndarray:
        """``[N,4]`` xyxy original-frame pixels -> ``[N,4]`` xyxy letterboxed-input pixels (float32)."""
        b = np.asarray(boxes_xyxy, dtype=np.float32).reshape(-1, 4)
        off = np.array([self.pad_left, self.pad_top, self.pad_left, self.pad_top], dtype=np.float32)
        return b * np.float32(self.scale) + off

    def to_original(self, boxes_xyxy: np.ndarray, clip: bool = True) -> np.ndarray:
        """``[N,4]`` xyxy input pixels -> ``[N,4]`` xyxy original-frame pixels, clipped to the frame."""
        b = np.asarray(boxes_xyxy, dtype=np.float32).reshape(-1, 4)
        off = np.array([self.pad_left, self.pad_top, self.pad_left, self.pad_top], dtype=np.float32)
        out = (b - off) / np.float32(self.scale)
        if clip:
            out[:, [0, 2]] = out[:, [0, 2]].clip(0, self.src_w)
            out[:, [1, 3]] = out[:, [1, 3]].clip(0, self.src_h)
        return out

    @property
    def resized_wh(self) -> tuple[int, int]:
        """``(nw, nh)``: the frame's size inside the input (each side at least 1 pixel)."""
        return resized_size(self.src_w, self.src_h, self.scale)


def resized_size(w: int, h: int, r: float) -> tuple[int, int]:
    """The letterboxed size of a ``w x h`` frame at scale ``r``: ``round`` of each side, at least 1 pixel."""
    return max(1, round(w * r)), max(1, round(h * r))


def letterbox_transform(src_hw: tuple[int, int], dst_hw: tuple[int, int]) -> LetterboxTransform:
    """The transform the official letterbox applies to a ``src_hw`` frame for a ``dst_hw`` input."""
    h, w = int(src_hw[0]), int(src_hw[1])
    dh, dw = int(dst_hw[0]), int(dst_hw[1])
    if h <= 0 or w <= 0 or dh <= 0 or dw <= 0:
        raise InvalidInputError(f"letterbox needs positive sizes, got frame {w}x{h} -> input {dw}x{dh}")
    r = min(dh / h, dw / w)
    nw, nh = resized_size(w, h, r)
    return LetterboxTransform(
        scale=r, pad_left=(dw - nw) // 2, pad_top=(dh - nh) // 2, src_w=w, src_h=h, dst_w=dw, dst_h=dh
    )


def letterbox(image: np.ndarray, dst_hw: tuple[int, int]) -> tuple[np.ndarray, LetterboxTransform]:
    """Letterbox an ``HxWx3`` uint8 image into ``dst_hw``; returns the ``dst_h x dst_w x 3`` image and transform."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise InvalidInputError(f"letterbox expects HxWx3 uint8, got {image.shape} {image.dtype}")
    t = letterbox_transform(image.shape[:2], dst_hw)
    nw, nh = t.resized_wh
    resized = (
        image
        if (nw, nh) == (t.src_w, t.src_h)
        else cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    )
    out = np.full((t.dst_h, t.dst_w, 3), PAD_VALUE, dtype=np.uint8)
    out[t.pad_top : t.pad_top + nh, t.pad_left : t.pad_left + nw] = resized
    return out, t
