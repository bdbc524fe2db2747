"""``InferenceBackend``: detector forward (+ the feature maps the ROI encoder reads) + ROI Align + encoder.

Every backend gives the outputs of the PyTorch models it was built from, in the same layout:

* :meth:`forward_taps` ``x`` ``[B,3,H,W]`` float in [0,1] (letterboxed, ``Detector.preprocess``) ->
  (``{stride: [B,C_s,H/s,W/s]}`` float32 for the backend's strides, ``pred`` ``[B,A,5+nc]`` float32 decoded as
  the official eval-mode output), CPU tensors on a CPU backend;
* :meth:`forward_raw` -> (the stride-32 map, ``pred``), as ``Detector.forward_raw``;
* :meth:`roi_features` -> the encoder's input ``[N,C,10,10]`` (``spec_roi_features``: torchvision ROI Align, the
  same op for every backend: it reads float32 maps and costs a few ms);
* :meth:`encode` ``[N,C,10,10]`` -> ``[N,D]`` float32 numpy, unit norm; :meth:`embed` = both.

A subclass implements :meth:`_run_detector` (the exported graph: head logits + maps) and :meth:`_run_core` (the
encoder's learned conv net); the head's box decode and a ``MixEncoder``'s fixed blocks run here in float32.
Meant for one caller at a time (the server's model thread, eval-mot's loop); concurrent calls are serialised.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from tracker_core.errors import InvalidInputError, WeightsError
from tracker_core.inference.graphs import ModelGraphs
from tracker_core.letterbox import LetterboxTransform


class InferenceBackend:
    """Base of the backends. Attributes: ``name`` (``torch``/``openvino``/``onnxruntime``), ``precision``
    (``fp32``/``bf16``/``fp16``), ``threads``, ``detector`` (metadata, ``preprocess``, ``postprocess``),
    ``encoder`` (or None), ``strides`` (the maps :meth:`forward_taps` returns, 32 first), ``selection`` (what
    ``auto`` measured, or None)."""

    name = "base"

    def __init__(self, graphs: ModelGraphs, precision: str, threads: int, appearance: Any = None) -> None:
        self.graphs = graphs
        self.detector = graphs.detector
        self.encoder = graphs.encoder
        self.appearance = appearance  # tracker_core.encoder.Appearance (its FeatureSpec and checks), or None
        self.strides = graphs.strides
        self.precision = precision
        self.threads = int(threads)
        self.selection: dict[str, Any] | None = None
        self._mix = self.encoder is not None and graphs.core is not self.encoder
        # Held across a compiled graph's run and the use of its outputs (a backend may hand out views of its
        # output buffers to the decode): concurrent callers wait instead of reading each other's buffers.
        self._lock = threading.RLock()

    # -------------------------------------------------------------------------------------------- facts

    @property
    def device(self) -> torch.device:
        return torch.device(self.detector.device)

    @property
    def label(self) -> str:
        """``backend/precision``, e.g. ``openvino/bf16``."""
        return f"{self.name}/{self.precision}"

    @property
    def embed_dim(self) -> int:
        return int(getattr(self.encoder, "embed_dim", 0))

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "precision": self.precision, "threads": self.threads, **self.versions()}

    def versions(self) -> dict[str, str]:
        return {"torch": torch.__version__}

    # ------------------------------------------------------------------------------------------ detector

    def forward_taps(self, x: torch.Tensor) -> tuple[dict[int, torch.Tensor], torch.Tensor]:
        """``x`` ``[B,3,H,W]`` -> (``{stride: map}`` for :attr:`strides`, ``pred`` ``[B,A,5+nc]`` float32)."""
        x = self.detector.check_input(x)
        with self._lock:
            raws, maps = self._run_detector(x)
            pred = self.detector.net.head.decode([r.float() for r in raws])
        return {s: m if m.dtype == torch.float32 else m.float() for s, m in maps.items()}, pred

    def forward_raw(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        maps, pred = self.forward_taps(x)
        return maps[32], pred

    def _run_detector(self, x: torch.Tensor) -> tuple[list[torch.Tensor], dict[int, torch.Tensor]]:
        """(per-level head logits ``[B, na*(5+nc), H/s, W/s]``, ``{stride: map}``) for the checked input. The
        logits are only read by the decode, under the backend's lock (they may be views of output buffers); the
        maps are the caller's to keep."""
        raise NotImplementedError

    # ------------------------------------------------------------------------------------------- encoder

    def roi_features(
        self,
        taps: Mapping[int, torch.Tensor],
        boxes: Sequence[np.ndarray],
        transforms: Sequence[LetterboxTransform],
        x: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The encoder's input ``[N,C,10,10]`` float32 (ROI Align of the maps it reads, and the pixels)."""
        if self.appearance is None:
            raise WeightsError("this backend was built without an encoder")
        return self.appearance.features(taps, boxes, transforms, x)  # type: ignore[no-any-return]

    def encode(self, feats: torch.Tensor) -> np.ndarray:
        """``[N,C,10,10]`` -> ``[N,D]`` float32 numpy, unit L2 norm."""
        if self.encoder is None:
            raise WeightsError("this backend was built without an encoder")
        if feats.ndim != 4 or feats.shape[1] != self.encoder.in_channels:
            raise InvalidInputError(
                f"encoder input must be [N,{self.encoder.in_channels},10,10], got {tuple(feats.shape)}"
            )
        if feats.shape[0] == 0:
            return np.zeros((0, self.embed_dim), np.float32)
        with torch.inference_mode(), self._lock:
            if self._mix:
                core = self._run_core if self.graphs.core is not None else None
                z = self.encoder(feats.float(), learned=core)
            else:
                z = self._run_core(feats.float())
        return z.float().cpu().numpy().astype(np.float32, copy=False)

    def embed(
        self,
        taps: Mapping[int, torch.Tensor],
        boxes: Sequence[np.ndarray],
        transforms: Sequence[LetterboxTransform],
        x: torch.Tensor | None = None,
    ) -> np.ndarray:
        """:meth:`roi_features` then :meth:`encode`: ``[sum Ni, D]`` float32, rows in frame then box order."""
        return self.encode(self.roi_features(taps, boxes, transforms, x))

    def _run_core(self, feats: torch.Tensor) -> torch.Tensor:
        """The encoder core on ``[N,C,10,10]`` float32 -> ``[N,D_core]`` (any float dtype)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the backend holds (compiled models, sessions)."""
