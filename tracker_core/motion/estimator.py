"""Global camera motion between consecutive frames from the frames themselves (BoT-SORT's sparse optical flow).

Per frame: a downscaled grey image (:func:`downscale_gray`), corners (``cv2.goodFeaturesToTrack``) found away from
the detections (moving people must not drive the estimate) and the frame border, tracked into the next frame with
pyramidal Lucas-Kanade (``cv2.calcOpticalFlowPyrLK``), and a similarity transform (rotation, uniform scale,
translation) fitted with RANSAC (``cv2.estimateAffinePartial2D``). The result is the ``[2,3]`` affine from the
previous frame's pixels to this frame's, in **original** frame pixels, the form ``Tracker.update(warp=...)`` and
``gmc.txt`` files use.

:class:`FlowEstimator` keeps the previous frame's grey image and corners: one per stream.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from tracker_core.errors import InvalidInputError

F64 = NDArray[np.float64]


@dataclass(frozen=True)
class FlowConfig:
    """Settings of the sparse-flow estimator (validated on construction).

    width: the grey image's width in pixels (frames narrower than this are not upscaled); the estimate's cost
    grows with it. max_corners / quality / min_distance: ``goodFeaturesToTrack``. border: share of each side
    left out (overlays, vignetting). box_margin: detections are masked out enlarged by this share of their size.
    ransac_px: RANSAC reprojection threshold in grey-image pixels. min_inliers: fewer inliers -> no estimate.
    """

    width: int = 320
    max_corners: int = 200
    quality: float = 0.01
    min_distance: int = 6
    border: float = 0.02
    box_margin: float = 0.1
    ransac_px: float = 1.0
    min_inliers: int = 12
    lk_window: int = 15
    lk_levels: int = 3

    def __post_init__(self) -> None:
        if self.width < 32:
            raise InvalidInputError(f"camera motion width must be >= 32 px, got {self.width}")
        if self.max_corners < 8 or self.min_inliers < 3:
            raise InvalidInputError("camera motion needs max_corners >= 8 and min_inliers >= 3")
        if not (
            0.0 <= self.border < 0.5 and self.box_margin >= 0.0 and self.ransac_px > 0 and self.quality > 0
        ):
            raise InvalidInputError(
                "camera motion: border in [0, 0.5), box_margin >= 0, ransac_px > 0, quality > 0"
            )


DEFAULT_FLOW_CONFIG = FlowConfig()


@dataclass(frozen=True)
class GrayFrame:
    """A downscaled grey frame: ``pixels [h,w]`` uint8 and the original frame's size (``orig_w``, ``orig_h``)."""

    pixels: NDArray[np.uint8]
    orig_w: int
    orig_h: int

    @property
    def scale(self) -> tuple[float, float]:
        """Original pixels per grey pixel along x and y."""
        h, w = self.pixels.shape
        return self.orig_w / w, self.orig_h / h


def downscale_gray(image: NDArray[np.uint8], width: int = DEFAULT_FLOW_CONFIG.width) -> GrayFrame:
    """``image`` (``HxW`` grey, or ``HxWx3`` RGB/BGR: the grey weights differ a little, harmless here) -> a grey
    frame at most ``width`` pixels wide (area interpolation)."""
    import cv2

    a = np.asarray(image)
    if a.dtype != np.uint8 or a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] != 3) or a.size == 0:
        raise InvalidInputError(f"camera motion needs an HxW or HxWx3 uint8 frame, got {a.shape} {a.dtype}")
    h, w = a.shape[:2]
    gray = a if a.ndim == 2 else cv2.cvtColor(a, cv2.COLOR_RGB2GRAY)
    if w > width:
        nh = max(8, round(h * width / w))
        gray = cv2.resize(gray, (width, nh), interpolation=cv2.INTER_AREA)
    return GrayFrame(np.ascontiguousarray(gray), w, h)


def to_original(warp_small: F64, scale: tuple[float, float]) -> F64:
    """A ``[2,3]`` affine in grey-image pixels -> the same motion in original pixels (``S A S^-1``, ``S t``)."""
    sx, sy = scale
    s = np.array([sx, sy])
    out = np.empty((2, 3))
    out[:, :2] = warp_small[:, :2] * s[:, None] / s[None, :]
    out[:, 2] = warp_small[:, 2] * s
    return out


def corner_motion(warp: F64 | None, width: float, height: float) -> float:
    """How far the warp moves the frame's corners at most, in pixels (0 for ``None`` / identity)."""
    if warp is None:
        return 0.0
    c = np.array([[0.0, 0.0], [width, 0.0], [0.0, height], [width, height]])
    moved = c @ warp[:, :2].T + warp[:, 2]
    return float(np.sqrt(((moved - c) ** 2).sum(axis=1)).max())


class FlowEstimator:
    """Sparse-flow camera motion of one stream. ``estimate(gray, boxes)`` per frame, in frame order."""

    def __init__(self, config: FlowConfig = DEFAULT_FLOW_CONFIG) -> None:
        self.config = config
        self.reset()

    def reset(self) -> None:
        """Forget the previous frame (the next estimate is ``None``)."""
        self._prev: NDArray[np.uint8] | None = None
        self._prev_pts: NDArray[np.float32] | None = None
        self._prev_size: tuple[int, int] | None = None

    def _mask(self, gray: GrayFrame, boxes: NDArray[np.floating] | None) -> NDArray[np.uint8]:
        h, w = gray.pixels.shape
        cfg = self.config
        mask = np.zeros((h, w), np.uint8)
        bx, by = round(cfg.border * w), round(cfg.border * h)
        mask[by : h - by, bx : w - bx] = 255
        if boxes is not None and len(boxes):
            sx, sy = gray.scale
            b = np.asarray(boxes, np.float64).reshape(-1, 4)
            mw = (b[:, 2] - b[:, 0]) * cfg.box_margin
            mh = (b[:, 3] - b[:, 1]) * cfg.box_margin
            x1 = np.clip(np.floor((b[:, 0] - mw) / sx), 0, w).astype(np.int64)
            x2 = np.clip(np.ceil((b[:, 2] + mw) / sx), 0, w).astype(np.int64)
            y1 = np.clip(np.floor((b[:, 1] - mh) / sy), 0, h).astype(np.int64)
            y2 = np.clip(np.ceil((b[:, 3] + mh) / sy), 0, h).astype(np.int64)
            for i in np.flatnonzero(np.isfinite(b).all(axis=1)):
                mask[y1[i] : y2[i], x1[i] : x2[i]] = 0
        return mask

    def estimate(self, gray: GrayFrame, boxes: NDArray[np.floating] | None = None) -> F64 | None:
        """The ``[2,3]`` affine from the previous frame given to this one (original pixels), or ``None`` when there is
        no previous frame, the frame size changed, or too few background corners agree (then no motion is assumed).
        ``boxes [N,4]`` xyxy original pixels are this frame's detections (masked out)."""
        import cv2

        cfg = self.config
        cur = gray.pixels
        size = (gray.orig_w, gray.orig_h)
        warp: F64 | None = None
        if (
            self._prev is not None
            and self._prev_pts is not None
            and self._prev_size == size
            and len(self._prev_pts)
        ) and self._prev.shape == cur.shape:
            nxt, status, _ = cv2.calcOpticalFlowPyrLK(
                self._prev,
                cur,
                self._prev_pts,
                None,
                winSize=(cfg.lk_window, cfg.lk_window),
                maxLevel=cfg.lk_levels,
            )
            ok = status.reshape(-1) == 1
            if int(ok.sum()) >= cfg.min_inliers:
                src = self._prev_pts.reshape(-1, 2)[ok]
                dst = nxt.reshape(-1, 2)[ok]
                m, inl = cv2.estimateAffinePartial2D(
                    src, dst, method=cv2.RANSAC, ransacReprojThreshold=cfg.ransac_px
                )
                if m is not None and inl is not None and int(inl.sum()) >= cfg.min_inliers:
                    warp = to_original(m.astype(np.float64), gray.scale)
        pts = cv2.goodFeaturesToTrack(
            cur,
            maxCorners=cfg.max_corners,
            qualityLevel=cfg.quality,
            minDistance=cfg.min_distance,
            mask=self._mask(gray, boxes),
            blockSize=3,
        )
        self._prev = cur
        self._prev_pts = np.asarray(pts, np.float32) if pts is not None else np.zeros((0, 1, 2), np.float32)
        self._prev_size = size
        if warp is not None and not _plausible(warp):
            return None
        return warp


def _plausible(warp: F64) -> bool:
    """A camera between two frames: finite, keeps orientation, changes scale by less than 2x."""
    if not np.isfinite(warp).all():
        return False
    det = float(np.linalg.det(warp[:, :2]))
    return 0.25 < det < 4.0
