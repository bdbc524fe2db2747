"""Inference backends: detector forward (+ the encoder's feature maps) + ROI Align + encoder, one interface.

``build_backend(detector, appearance, InferenceOptions(backend, precision, threads, cache_dir), input_size)``
returns an :class:`InferenceBackend` (``forward_taps``, ``forward_raw``, ``roi_features``, ``encode``, ``embed``)
running on PyTorch (the fp32 reference; bf16 on CPUs with AVX-512 BF16 / AMX; fp16 on CUDA), OpenVINO or ONNX
Runtime. ``auto`` measures the installed ones at start-up and keeps the fastest that matches torch fp32 on a
calibration frame (``parity.py``). OpenVINO and ONNX Runtime run graphs exported from our own models at load
time and cached on disk (``cache.py``). See docs/performance.md ("Inference backends").

The names are imported on first use, so ``tracker_core.inference.options`` (the flags' choices) never pulls in
torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "InferenceBackend": "base",
    "ExportCache": "cache",
    "default_cache_dir": "cache",
    "BACKENDS": "options",
    "PRECISIONS": "options",
    "REFERENCE": "options",
    "InferenceOptions": "options",
    "TOLERANCES": "parity",
    "Tolerance": "parity",
    "calibration_frame": "parity",
    "compare": "parity",
    "match_detections": "parity",
    "build_backend": "select",
    "candidates": "select",
    "describe_selection": "select",
    "installed_backends": "select",
    "make_backend": "select",
    "supported_precisions": "select",
}

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

if TYPE_CHECKING:
    from tracker_core.inference.base import InferenceBackend
    from tracker_core.inference.cache import ExportCache, default_cache_dir
    from tracker_core.inference.options import BACKENDS, PRECISIONS, REFERENCE, InferenceOptions
    from tracker_core.inference.parity import (
        TOLERANCES,
        Tolerance,
        calibration_frame,
        compare,
        match_detections,
    )
    from tracker_core.inference.select import (
        build_backend,
        candidates,
        describe_selection,
        installed_backends,
        make_backend,
        supported_precisions,
    )


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
