"""YOLOv7 / YOLOv7-tiny detector with the stride-32 feature tap (see ``docs/detector.md``).

Public API: :func:`load_detector`, :func:`build_detector`, :class:`Detector`, :class:`Detections`,
:func:`convert_weights` and :data:`ARCHES`.
"""

from __future__ import annotations

from tracker_core.detector.architectures import ARCHES, ArchSpec
from tracker_core.detector.convert import convert_weights
from tracker_core.detector.detector import Detections, Detector, build_detector, load_detector
from tracker_core.detector.weights_io import WeightsMeta, read_meta

__all__ = [
    "ARCHES",
    "ArchSpec",
    "Detections",
    "Detector",
    "WeightsMeta",
    "build_detector",
    "convert_weights",
    "load_detector",
    "read_meta",
]
