"""The ONNX Runtime backend (CPU execution provider, float32).

The exported graphs (``graphs.py``) are cached as ONNX files. Sessions: ``intra_op_num_threads`` = the backend's
threads, one inter-op thread, sequential execution, and ``session.intra_op.allow_spinning = 0``: idle workers
sleep instead of spinning, which on a CPU shared with other busy processes keeps a forward from waiting on
threads that spin on cores someone else needs (docs/performance.md, "Shared CPU").
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tracker_core.errors import ConfigError
from tracker_core.inference.base import InferenceBackend
from tracker_core.inference.cache import ExportCache
from tracker_core.inference.graphs import IMAGES, ROIS, ModelGraphs
from tracker_core.inference.hardware import resolve_threads


def available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    from tracker_core.inference.graphs import onnx_available

    return onnx_available()


def version() -> str:
    import onnxruntime as ort

    return str(ort.__version__)


def supported_precisions() -> tuple[str, ...]:
    return ("fp32",)


class OnnxRuntimeBackend(InferenceBackend):
    name = "onnxruntime"

    def __init__(
        self,
        graphs: ModelGraphs,
        precision: str,
        threads: int,
        appearance: Any = None,
        cache: ExportCache | None = None,
        spinning: bool = False,
    ) -> None:
        super().__init__(graphs, precision, resolve_threads(threads), appearance)
        if precision not in supported_precisions():
            raise ConfigError(
                f"onnxruntime runs {', '.join(supported_precisions())} on the CPU, not {precision}"
            )
        if self.device.type != "cpu":
            raise ConfigError("the onnxruntime backend runs on the CPU; use --backend torch on a GPU")
        import onnxruntime as ort

        self._ort = ort
        self.cache = cache or ExportCache()
        self.spinning = bool(spinning)
        self.cache_hits: list[bool] = []
        self._sessions: dict[tuple[int, int], Any] = {}
        self._core_session = self._session(graphs.core_fields(), graphs.core_onnx) if graphs.core else None

    def versions(self) -> dict[str, str]:
        return {**super().versions(), "onnxruntime": version()}

    def _fields(self, base: dict[str, Any]) -> dict[str, Any]:
        return {**base, "backend": self.name, "backend_version": version(), "precision": self.precision}

    def _session(self, fields: dict[str, Any], export: Any) -> Any:
        def build(tmp: Path) -> dict[str, Path]:
            dst = tmp / "model.onnx"
            shutil.copyfile(export(), dst)
            return {"model": dst}

        files, hit = self.cache.get_or_build(self._fields(fields), build)
        self.cache_hits.append(hit)
        so = self._ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        so.execution_mode = self._ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = self._ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.spinning else "0")
        so.log_severity_level = 3
        return self._ort.InferenceSession(str(files["model"]), so, providers=["CPUExecutionProvider"])

    def _detector_session(self, shape: tuple[int, int]) -> Any:
        if shape not in self._sessions:
            g = self.graphs
            self._sessions[shape] = self._session(g.detector_fields(shape), lambda: g.detector_onnx(shape))
        return self._sessions[shape]

    def _run_detector(self, x: torch.Tensor) -> tuple[list[torch.Tensor], dict[int, torch.Tensor]]:
        sess = self._detector_session((int(x.shape[2]), int(x.shape[3])))
        outs = sess.run(None, {IMAGES: np.ascontiguousarray(x.numpy(), dtype=np.float32)})
        nl = self.graphs.nl
        raws = [torch.from_numpy(o) for o in outs[:nl]]
        return raws, {s: torch.from_numpy(o) for s, o in zip(self.strides, outs[nl:], strict=True)}

    def _run_core(self, feats: torch.Tensor) -> torch.Tensor:
        assert self._core_session is not None
        (out,) = self._core_session.run(None, {ROIS: np.ascontiguousarray(feats.numpy(), dtype=np.float32)})
        return torch.from_numpy(out)

    def close(self) -> None:
        self._sessions.clear()
        self._core_session = None
