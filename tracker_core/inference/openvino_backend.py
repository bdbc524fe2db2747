"""The OpenVINO backend (CPU plugin): float32, or bfloat16 where the CPU has it (AMX / AVX-512 BF16).

The exported ONNX graphs are converted to OpenVINO IR (``.xml`` + ``.bin``, weights kept in float32) and cached;
compiling an IR takes well under a second. Compile settings: ``INFERENCE_PRECISION_HINT`` (``f32``/``bf16``),
``PERFORMANCE_HINT=LATENCY`` with one stream and ``INFERENCE_NUM_THREADS`` = the backend's threads, and
``ENABLE_CPU_PINNING=NO``: pinned threads cannot move off a core another busy process holds, which is what
a shared CPU needs (docs/performance.md, "Shared CPU").
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tracker_core.errors import ConfigError
from tracker_core.inference.base import InferenceBackend
from tracker_core.inference.cache import ExportCache
from tracker_core.inference.graphs import ModelGraphs
from tracker_core.inference.hardware import resolve_threads

OV_PRECISION = {"fp32": "f32", "bf16": "bf16"}


def available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    from tracker_core.inference.graphs import onnx_available

    return onnx_available()


@functools.cache
def _core() -> Any:
    import openvino as ov

    return ov.Core()


def version() -> str:
    import openvino as ov

    return str(ov.get_version())


@functools.cache
def supported_precisions() -> tuple[str, ...]:
    """``fp32``, plus ``bf16`` when the CPU plugin lists it among its optimisation capabilities."""
    try:
        caps = set(_core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    except Exception:  # pragma: no cover - a broken install: treat as fp32 only
        caps = set()
    return ("fp32", "bf16") if "BF16" in caps else ("fp32",)


class OpenVinoBackend(InferenceBackend):
    name = "openvino"

    def __init__(
        self,
        graphs: ModelGraphs,
        precision: str,
        threads: int,
        appearance: Any = None,
        cache: ExportCache | None = None,
        pinning: bool = False,
    ) -> None:
        super().__init__(graphs, precision, resolve_threads(threads), appearance)
        if precision not in supported_precisions():
            raise ConfigError(
                f"openvino on this CPU runs {', '.join(supported_precisions())}, not {precision}"
                + (" (fp16 is the GPU precision)" if precision == "fp16" else "")
            )
        if self.device.type != "cpu":
            raise ConfigError("the openvino backend runs on the CPU; use --backend torch on a GPU")
        self.cache = cache or ExportCache()
        self.pinning = bool(pinning)
        self.cache_hits: list[bool] = []
        self._compiled: dict[tuple[int, int], Any] = {}
        self._core_request = self._request(graphs.core_fields(), graphs.core_onnx) if graphs.core else None

    def versions(self) -> dict[str, str]:
        return {**super().versions(), "openvino": version()}

    def compile_config(self) -> dict[str, Any]:
        return {
            "INFERENCE_PRECISION_HINT": OV_PRECISION[self.precision],
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": 1,
            "INFERENCE_NUM_THREADS": self.threads,
            "ENABLE_CPU_PINNING": self.pinning,
        }

    def _request(self, fields: dict[str, Any], export: Any) -> Any:
        import openvino as ov

        def build(tmp: Path) -> dict[str, Path]:
            model = _core().read_model(str(export()))
            xml = tmp / "model.xml"
            ov.save_model(model, str(xml), compress_to_fp16=False)
            return {"xml": xml, "bin": xml.with_suffix(".bin")}

        full = {**fields, "backend": self.name, "backend_version": version(), "precision": self.precision}
        files, hit = self.cache.get_or_build(full, build)
        self.cache_hits.append(hit)
        model = _core().read_model(str(files["xml"]), str(files["bin"]))
        compiled = _core().compile_model(model, "CPU", self.compile_config())
        return compiled.create_infer_request()

    def _detector_request(self, shape: tuple[int, int]) -> Any:
        if shape not in self._compiled:
            g = self.graphs
            self._compiled[shape] = self._request(g.detector_fields(shape), lambda: g.detector_onnx(shape))
        return self._compiled[shape]

    def _infer(self, request: Any, x: np.ndarray) -> list[np.ndarray]:
        """The request's outputs as views of its own buffers: valid until its next run (callers hold the lock)."""
        with self._lock:
            res = request.infer({0: x}, share_inputs=True, share_outputs=True)
            return [np.asarray(res[i]) for i in range(len(res))]

    def _run_detector(self, x: torch.Tensor) -> tuple[list[torch.Tensor], dict[int, torch.Tensor]]:
        req = self._detector_request((int(x.shape[2]), int(x.shape[3])))
        outs = self._infer(req, np.ascontiguousarray(x.numpy(), dtype=np.float32))
        nl = self.graphs.nl
        raws = [torch.from_numpy(o) for o in outs[:nl]]  # decoded (copied) under the lock
        maps = {s: torch.from_numpy(o.copy()) for s, o in zip(self.strides, outs[nl:], strict=True)}
        return raws, maps

    def _run_core(self, feats: torch.Tensor) -> torch.Tensor:
        assert self._core_request is not None
        (out,) = self._infer(self._core_request, np.ascontiguousarray(feats.numpy(), dtype=np.float32))
        return torch.from_numpy(out.copy())

    def close(self) -> None:
        self._compiled.clear()
        self._core_request = None
