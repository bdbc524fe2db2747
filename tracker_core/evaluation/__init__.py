"""MOTChallenge evaluation: sequence/detection IO, running the tracker, TrackEval scoring."""

from tracker_core.evaluation.mot_io import (
    FrameDetections,
    ScoreRule,
    SeqInfo,
    read_camera_motion,
    read_detections,
    read_gt,
    read_seqinfo,
    results_rows,
    write_results,
)
from tracker_core.evaluation.run_tracker import TrackingRun, track_sequence
from tracker_core.evaluation.trackeval_runner import METRIC_KEYS, evaluate_results

__all__ = [
    "METRIC_KEYS",
    "FrameDetections",
    "ScoreRule",
    "SeqInfo",
    "TrackingRun",
    "evaluate_results",
    "read_camera_motion",
    "read_detections",
    "read_gt",
    "read_seqinfo",
    "results_rows",
    "track_sequence",
    "write_results",
]
