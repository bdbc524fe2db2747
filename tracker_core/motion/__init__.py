"""Camera motion compensation from the frames themselves (sparse optical flow + RANSAC, as BoT-SORT does).

``CameraMotion`` (one per stream: the estimator's previous frame and the on/off/auto policy) turns each frame
into the ``[2,3]`` affine ``Tracker.update(warp=...)`` takes; ``estimate_sequence_motion`` runs the same
estimator over a MOTChallenge sequence's images (``roitrack eval-mot --gmc frames``). NumPy + OpenCV only.
"""

from tracker_core.motion.camera_motion import (
    DEFAULT_POLICY,
    CameraMotion,
    MotionMode,
    MotionPolicy,
    gate_known_motion,
)
from tracker_core.motion.estimator import (
    DEFAULT_FLOW_CONFIG,
    FlowConfig,
    FlowEstimator,
    GrayFrame,
    corner_motion,
    downscale_gray,
    to_original,
)
from tracker_core.motion.sequence import estimate_sequence_motion

__all__ = [
    "DEFAULT_FLOW_CONFIG",
    "DEFAULT_POLICY",
    "CameraMotion",
    "FlowConfig",
    "FlowEstimator",
    "GrayFrame",
    "MotionMode",
    "MotionPolicy",
    "corner_motion",
    "downscale_gray",
    "estimate_sequence_motion",
    "gate_known_motion",
    "to_original",
]
