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
from tracker_core.evaluation.trackeval_runner import (
    FIGURE_KEYS,
    METRIC_KEYS,
    PROTOCOLS,
    ProtocolChoice,
    TrackerScores,
    choose_protocol,
    combine_raw,
    evaluate_results,
    evaluate_sequences,
)

__all__ = [
    "FIGURE_KEYS",
    "METRIC_KEYS",
    "PROTOCOLS",
    "FrameDetections",
    "ProtocolChoice",
    "ScoreRule",
    "SeqInfo",
    "TrackerScores",
    "TrackingRun",
    "choose_protocol",
    "combine_raw",
    "evaluate_results",
    "evaluate_sequences",
    "read_camera_motion",
    "read_detections",
    "read_gt",
    "read_seqinfo",
    "results_rows",
    "track_sequence",
    "write_results",
]
