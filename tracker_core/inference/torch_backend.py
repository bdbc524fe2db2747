"""The PyTorch backend: the reference (fp32, NCHW: the models as they are), bf16 on the CPU, fp16 on CUDA.

* ``fp32`` on the CPU runs the detector and encoder objects themselves: the reference every backend is checked
  against.
* ``bf16`` on the CPU runs a bfloat16 copy of the network in ``channels_last`` layout (oneDNN's AMX / AVX-512
  BF16 kernels; converted weights were faster than ``torch.autocast`` here: no per-call weight casts).
* ``fp16`` on CUDA is the detector as ``Detector`` builds it on a GPU (half, ``channels_last``).

The head's box decode runs in float32 in every case (:meth:`InferenceBackend.forward_taps`).
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from tracker_core.errors import ConfigError
from tracker_core.inference.base import InferenceBackend
from tracker_core.inference.graphs import ModelGraphs


class TorchBackend(InferenceBackend):
    name = "torch"

    def __init__(self, graphs: ModelGraphs, precision: str, threads: int, appearance: Any = None) -> None:
        super().__init__(graphs, precision, threads, appearance)
        det = self.detector
        cuda = det.device.type == "cuda"
        if cuda and precision != "fp16":
            raise ConfigError(f"torch on CUDA runs fp16 (the detector's GPU precision), not {precision}")
        if not cuda and precision not in ("fp32", "bf16"):
            raise ConfigError(f"torch on the CPU runs fp32 or bf16, not {precision}")
        if threads > 0 and not cuda:
            torch.set_num_threads(threads)  # process-wide: the server runs one model thread
        self.threads = torch.get_num_threads() if not cuda else 0
        self._dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
        self._layers = graphs.layers
        if precision == "bf16":
            self._net = copy.deepcopy(det.net).to(dtype=torch.bfloat16).to(memory_format=torch.channels_last)
            self._core = (
                copy.deepcopy(graphs.core).to(dtype=torch.bfloat16).eval()
                if graphs.core is not None
                else None
            )
        else:
            self._net = det.net
            self._core = graphs.core

    def _run_detector(self, x: torch.Tensor) -> tuple[list[torch.Tensor], dict[int, torch.Tensor]]:
        if self.precision == "bf16":
            x = x.to(dtype=torch.bfloat16, memory_format=torch.channels_last)
        with torch.inference_mode():
            raws, maps = self._net.forward_head_raw(x, self._layers)
        return raws, {s: maps[i] for s, i in zip(self.strides, self._layers, strict=True)}

    def _run_core(self, feats: torch.Tensor) -> torch.Tensor:
        assert self._core is not None
        with torch.inference_mode():
            out = self._core(
                feats.to(device=self.device, dtype=self._dtype if self.precision == "bf16" else feats.dtype)
            )
        return out  # type: ignore[no-any-return]

    def close(self) -> None:
        self._net = None  # type: ignore[assignment]
        self._core = None
