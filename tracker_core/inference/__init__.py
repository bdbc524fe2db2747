"""Inference backends: detector forward (+ the encoder's feature maps) + ROI Align + encoder, one interface.

``build_backend(detector, appearance, InferenceOptions(backend, precision, threads, cache_dir), input_size)``
returns an :class:`InferenceBackend` (``forward_taps``, ``forward_raw``, ``roi_features``, ``encode``, ``embed``)
running on PyTorch (the fp32 reference; bf16 on CPUs with AVX-512 BF16 / AMX; fp16 on CUDA), OpenVINO or ONNX
Runtime. ``auto`` measures the installed ones at start-up and keeps the fastest that matches torch fp32 on a
calibration frame (``parity.py``). OpenVINO and ONNX Runtime run graphs exported from our own models at load
time and cached on disk (``cache.py``). See docs/performance.md ("Inference backends").
"""

from tracker_core.inference.base import InferenceBackend
from tracker_core.inference.cache import ExportCache, default_cache_dir
from tracker_core.inference.options import BACKENDS, PRECISIONS, REFERENCE, InferenceOptions
from tracker_core.inference.parity import TOLERANCES, Tolerance, calibration_frame, compare, match_detections
from tracker_core.inference.select import (
    build_backend,
    candidates,
    describe_selection,
    installed_backends,
    make_backend,
    supported_precisions,
)

__all__ = [
    "BACKENDS",
    "PRECISIONS",
    "REFERENCE",
    "TOLERANCES",
    "ExportCache",
    "InferenceBackend",
    "InferenceOptions",
    "Tolerance",
    "build_backend",
    "calibration_frame",
    "candidates",
    "compare",
    "default_cache_dir",
    "describe_selection",
    "installed_backends",
    "make_backend",
    "match_detections",
    "supported_precisions",
]
