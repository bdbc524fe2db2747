"""The parts of our models an inference backend compiles, and their ONNX export.

* The detector graph: ``images`` ``[B,3,H,W]`` -> the head's per-level logits (before the decode, which stays in
  float32 PyTorch: :meth:`IDetect.decode`) and the feature maps the ROI encoder reads. Fixed ``H, W``, dynamic
  batch.
* The encoder core: the learned conv net of the ROI encoder, ``rois`` ``[N,C,10,10]`` -> ``[N,D]``; dynamic ``N``.
  A :class:`RoiEncoder` is all core; a :class:`MixEncoder`'s pooled-feature and colour-histogram blocks stay in
  float32 PyTorch (they are cheap, and a histogram's bin edges do not survive bfloat16), only its ``learned``
  block is compiled.

Both exports use the TorchScript ONNX exporter (needs the ``onnx`` package) with a fixed opset, so the same weights
give the same file.
"""

from __future__ import annotations

import functools
import shutil
import tempfile
import threading
import warnings
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tracker_core.errors import ConfigError

OPSET = 17
EXPORT_VERSION = 1
"""Bumped whenever the exported graphs change meaning (part of every cache key)."""

IMAGES = "images"
ROIS = "rois"
EMBEDDINGS = "embeddings"


class DetectorGraph(nn.Module):
    """``images`` ``[B,3,H,W]`` -> ``(logits level 0, ..., map of layers[0], ...)``: what a backend runs."""

    def __init__(self, net: nn.Module, layers: Sequence[int]) -> None:
        super().__init__()
        self.net = net
        self.layers = [int(i) for i in layers]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        raws, maps = self.net.forward_head_raw(x, self.layers)  # type: ignore[operator]
        return (*raws, *(maps[i] for i in self.layers))


def encoder_core(encoder: Any) -> nn.Module | None:
    """The compiled part of an encoder: a ``RoiEncoder`` itself, a ``MixEncoder``'s learned block (None when it has
    no learned block)."""
    from tracker_core.encoder import MixEncoder

    if encoder is None:
        return None
    if isinstance(encoder, MixEncoder):
        return encoder.learned if "learned" in encoder.blocks else None
    return encoder


def state_sha256(module: nn.Module) -> str:
    from tracker_core.detector.weights_io import state_dict_sha256

    return state_dict_sha256(module.state_dict())


def onnx_available() -> bool:
    try:
        import onnx  # noqa: F401
    except ImportError:
        return False
    return True


class ModelGraphs:
    """One detector (+ encoder) as a backend sees it: the strides it must return, content hashes for cache keys,
    and ONNX exports made at most once per process (kept in a private temporary folder until :meth:`close`)."""

    def __init__(self, detector: Any, encoder: Any = None, strides: Sequence[int] = (32,)) -> None:
        self.detector = detector
        self.encoder = encoder
        self.core = encoder_core(encoder)
        taps = detector.tap_layers
        unknown = [s for s in strides if s not in taps]
        if unknown:
            raise ConfigError(f"the detector has no stride-{unknown[0]} map (it has {sorted(taps)})")
        self.strides = tuple(dict.fromkeys([32, *(int(s) for s in strides)]))
        self.layers = [taps[s] for s in self.strides]
        self.nl = int(detector.net.head.nl)
        self._lock = threading.Lock()
        self._tmp: Path | None = None
        self._exports: dict[tuple[Any, ...], Path] = {}
        self._finalizer: weakref.finalize | None = None

    @functools.cached_property
    def detector_sha256(self) -> str:
        """Content hash of the network as it runs (fused or not): what its exports are made of."""
        return state_sha256(self.detector.net)

    @functools.cached_property
    def core_sha256(self) -> str:
        return state_sha256(self.core) if self.core is not None else ""

    def detector_fields(self, shape: tuple[int, int]) -> dict[str, Any]:
        """What determines the detector graph's export (the backend adds its own name, version, precision)."""
        return {
            "graph": "detector",
            "export_version": EXPORT_VERSION,
            "opset": OPSET,
            "torch": torch.__version__,
            "arch": str(self.detector.arch),
            "nc": int(self.detector.nc),
            "weights_sha256": self.detector_sha256,
            "input_shape": [int(shape[0]), int(shape[1])],
            "layers": list(self.layers),
        }

    def core_fields(self) -> dict[str, Any]:
        assert self.core is not None
        return {
            "graph": "encoder_core",
            "export_version": EXPORT_VERSION,
            "opset": OPSET,
            "torch": torch.__version__,
            "in_channels": int(self.core.in_channels),  # type: ignore[arg-type]
            "roi_size": int(self.core.roi_size),  # type: ignore[arg-type]
            "weights_sha256": self.core_sha256,
        }

    # ------------------------------------------------------------------------------------------- export

    def _workdir(self) -> Path:
        if self._tmp is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="roitrack-export-"))
            self._finalizer = weakref.finalize(self, shutil.rmtree, str(self._tmp), True)
        return self._tmp

    def close(self) -> None:
        """Remove this object's temporary exports (cached copies stay in the export cache)."""
        if self._finalizer is not None:
            self._finalizer()
        self._tmp = None
        self._exports.clear()

    def detector_onnx(self, shape: tuple[int, int]) -> Path:
        """The detector graph for ``shape`` as ONNX (dynamic batch), exported once per process."""
        key = ("detector", int(shape[0]), int(shape[1]))
        with self._lock:
            if key not in self._exports:
                path = self._workdir() / f"detector-{shape[0]}x{shape[1]}.onnx"
                export_detector(self.detector, self.layers, shape, path)
                self._exports[key] = path
            return self._exports[key]

    def core_onnx(self) -> Path:
        """The encoder core as ONNX (dynamic ``N``), exported once per process."""
        assert self.core is not None
        with self._lock:
            if ("core",) not in self._exports:
                path = self._workdir() / "encoder-core.onnx"
                export_core(self.core, path)
                self._exports[("core",)] = path
            return self._exports[("core",)]


def _need_onnx() -> None:
    if not onnx_available():
        raise ConfigError(
            "exporting the model for OpenVINO / ONNX Runtime needs the onnx package: "
            "pip install 'roitrack[openvino]' or 'roitrack[onnxruntime]'"
        )


def head_names(nl: int) -> list[str]:
    return [f"head{i}" for i in range(nl)]


def map_names(strides: Sequence[int]) -> list[str]:
    return [f"map_s{s}" for s in strides]


def export_detector(detector: Any, layers: Sequence[int], shape: tuple[int, int], path: Path) -> None:
    """Write the detector graph (float32, CPU) for ``shape`` to ``path`` as ONNX with a dynamic batch axis."""
    _need_onnx()
    net = detector.net
    if next(net.parameters()).dtype != torch.float32 or next(net.parameters()).device.type != "cpu":
        raise ConfigError(
            "only a float32 CPU detector can be exported (OpenVINO / ONNX Runtime run on the CPU)"
        )
    strides = {i: s for s, i in detector.tap_layers.items()}
    graph = DetectorGraph(net, layers).eval()
    outputs = head_names(int(net.head.nl)) + map_names([strides[i] for i in layers])
    x = torch.zeros(1, 3, int(shape[0]), int(shape[1]))
    _export(graph, x, path, IMAGES, outputs)


def export_core(core: nn.Module, path: Path) -> None:
    """Write the encoder core (float32) to ``path`` as ONNX with a dynamic ``N`` axis."""
    _need_onnx()
    c, r = int(core.in_channels), int(core.roi_size)  # type: ignore[arg-type]
    x = torch.zeros(2, c, r, r)
    _export(core.eval(), x, path, ROIS, [EMBEDDINGS])


def _export(
    module: nn.Module, example: torch.Tensor, path: Path, input_name: str, outputs: list[str]
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    axes = {name: {0: "batch"} for name in [input_name, *outputs]}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter(
            "ignore"
        )  # TracerWarnings of shape arithmetic, the TorchScript exporter's notice
        torch.onnx.export(
            module,
            (example,),
            str(path),
            input_names=[input_name],
            output_names=outputs,
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )
