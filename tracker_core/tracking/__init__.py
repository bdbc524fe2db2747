"""Multi-object tracking: pure NumPy/SciPy (no torch, no gRPC).

- ``config``: ``TrackerConfig`` (one frozen, validated dataclass) and ``DEFAULT_CONFIG``.
- ``kalman``: constant-velocity Kalman filter on boxes, vectorised over tracks, time-driven.
- ``costs``: pure cost functions ``(tracks, detections) -> [T,N]`` (IoU, Mahalanobis gate, cosine, fusion).
- ``matching``: Hungarian assignment with a cost ceiling -> ``(matches, unmatched_tracks, unmatched_dets)``.
- ``track``: life cycle states and the struct-of-arrays track table.
- ``gallery``: long-term re-identification gallery, bounded in size and age.
- ``tracker``: ``Tracker.update(boxes, scores, timestamp, classes=None, embeddings=None) -> list[TrackOutput]``.
"""

from tracker_core.tracking.config import DEFAULT_CONFIG, TrackerConfig
from tracker_core.tracking.matching import linear_assignment
from tracker_core.tracking.track import TrackState
from tracker_core.tracking.tracker import Tracker, TrackOutput

__all__ = ["DEFAULT_CONFIG", "TrackOutput", "TrackState", "Tracker", "TrackerConfig", "linear_assignment"]
