"""The stream estimator over a MOTChallenge sequence's images (``roitrack eval-mot --gmc frames``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from tracker_core.errors import InvalidInputError, NotFoundError
from tracker_core.evaluation.mot_io import FrameDetections, SeqInfo
from tracker_core.motion.camera_motion import DEFAULT_POLICY, CameraMotion, MotionMode, MotionPolicy


def estimate_sequence_motion(
    seq_dir: str | Path,
    info: SeqInfo,
    frames: Sequence[FrameDetections] | None = None,
    mode: MotionMode | str = MotionMode.ON,
    policy: MotionPolicy = DEFAULT_POLICY,
) -> list[NDArray[np.float64] | None]:
    """Per-frame warps (index 0 = frame 1) estimated from ``seq_dir/img1`` with :class:`CameraMotion` - the estimator
    and policy the server runs per stream - masking each frame's detections (``frames``). Frame ``n`` is at
    ``n / frame_rate`` seconds, as ``track_sequence`` and ``roitrack stream`` time them."""
    import cv2

    img_dir = Path(seq_dir) / info.im_dir
    if not img_dir.is_dir():
        raise NotFoundError(f"{img_dir} not found: --gmc frames needs the sequence's images")
    cm = CameraMotion(mode, policy)
    out: list[NDArray[np.float64] | None] = []
    for i in range(info.seq_length):
        ts = (i + 1) / info.frame_rate
        if not cm.wants_frame(ts):
            out.append(cm.update(None, None, ts))
            continue
        path = img_dir / f"{i + 1:06d}{info.im_ext}"
        img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if img is None:
            raise InvalidInputError(f"cannot read frame {path}")
        boxes = frames[i].boxes if frames is not None else None
        out.append(cm.update(np.asarray(img, np.uint8), boxes, ts))
    return out
