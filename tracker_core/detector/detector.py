"""``Detector``: YOLOv7 inference with the feature tap, plus ``load_detector`` / ``build_detector``.

Input ``x`` is float ``[B,3,H,W]`` in [0,1], letterboxed RGB, with ``H`` and ``W`` multiples of 32.
Boxes leave :meth:`Detector.postprocess` as ``xyxy`` float32 pixels of the original frame.
On CUDA the network runs in fp16 with ``channels_last``; on CPU in fp32.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tracker_core.detector.architectures import get_arch
from tracker_core.detector.model import YoloNet
from tracker_core.detector.postprocess import postprocess as _postprocess
from tracker_core.detector.weights_io import (
    WeightsMeta,
    check_shapes,
    check_state_dict,
    load_weights,
    read_meta,
    state_dict_sha256,
    tensor_shapes,
)
from tracker_core.errors import InvalidInputError, WeightsError
from tracker_core.letterbox import LetterboxTransform, letterbox

TAP_STRIDE = 32


@dataclass(frozen=True)
class Detections:
    """Detections of one frame. ``boxes`` ``[N,4]`` float32 xyxy original px; ``scores`` ``[N]`` float32;
    ``classes`` ``[N]`` int64; ``tap`` ``[C,H/32,W/32]`` feature map of this frame; ``transform`` maps
    original pixels to input pixels (divide input pixels by :attr:`Detector.tap_stride` for tap cells)."""

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    tap: torch.Tensor
    transform: LetterboxTransform


def _resolve_device(device: str | torch.device) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InvalidInputError(f"bad device {device!r}: {exc}") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError(f"device {device!r} requested but CUDA is not available")
    return dev


class Detector(nn.Module):
    """A YOLOv7 network ready for inference (eval mode, no gradients), with its metadata.

    Attributes: ``arch``, ``nc``, ``names``, ``tap_channels`` (512 yolov7 / 256 tiny), ``tap_stride`` (32),
    ``taps_channels`` (``{8: C8, 16: C16, 32: C32}`` for :meth:`forward_taps`), ``weights_sha256``,
    ``device``, ``dtype``, ``fused``.
    """

    def __init__(
        self, net: YoloNet, meta: WeightsMeta, weights_sha256: str, device: torch.device, fuse: bool = False
    ) -> None:
        super().__init__()
        spec = net.spec
        self.net = net.eval()
        if fuse:  # before any cast to fp16, so folding adds only one rounding
            self.net.fuse()
        self.meta = meta
        self.arch = spec.name
        self.nc = net.nc
        self.names = list(meta.names)
        self.weights_sha256 = weights_sha256
        self.tap_stride = TAP_STRIDE
        self._tap_layers: dict[int, int] = {**dict(spec.finer_taps), TAP_STRIDE: spec.tap_layer}
        self.taps_channels = {s: net.channels[i] for s, i in self._tap_layers.items()}
        self.tap_channels = self.taps_channels[TAP_STRIDE]
        self.fused = fuse
        self.device = device
        self.dtype = torch.float16 if device.type == "cuda" else torch.float32
        self.net.to(device=device, dtype=self.dtype)
        if device.type == "cuda":
            self.net.to(memory_format=torch.channels_last)  # type: ignore[call-arg]
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.train(False)

    def fuse(self) -> Detector:
        """Fuse for inference (Conv+BN, RepConv, implicit layers). In place; returns ``self``."""
        self.net.fuse()
        self.fused = True
        return self

    def train(self, mode: bool = True) -> Detector:
        """The detector is inference-only: it always stays in eval mode."""
        super().train(False)
        return self

    @property
    def tap_layers(self) -> dict[int, int]:
        """Stride -> index of the layer whose output is that tap (what :meth:`forward_taps` returns)."""
        return dict(self._tap_layers)

    def check_input(self, x: torch.Tensor) -> torch.Tensor:
        """Validate a ``[B,3,H,W]`` float input (``InvalidInputError``) and move it to the network's device, dtype
        and memory format."""
        return self._check_input(x)

    def _check_input(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != 3:
            shape = list(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise InvalidInputError(f"detector input must be a [B,3,H,W] tensor, got {shape}")
        if x.shape[2] % TAP_STRIDE or x.shape[3] % TAP_STRIDE or x.shape[2] == 0 or x.shape[3] == 0:
            raise InvalidInputError(
                f"detector input H and W must be positive multiples of 32, got {list(x.shape)}"
            )
        if not x.is_floating_point():
            raise InvalidInputError(f"detector input must be float in [0, 1], got {x.dtype}")
        x = x.to(device=self.device, dtype=self.dtype)
        if self.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    @torch.no_grad()
    def forward_taps(self, x: torch.Tensor) -> tuple[dict[int, torch.Tensor], torch.Tensor]:
        """``x`` ``[B,3,H,W]`` -> (``{8: [B,C8,H/8,W/8], 16: [B,C16,H/16,W/16], 32: [B,C,H/32,W/32]}``,
        ``pred`` ``[B,A,5+nc]``). Stride 32 is the tap of :meth:`forward_raw`; 8 / 16 are the neck maps."""
        x = self._check_input(x)
        pred, maps = self.net(x, taps=list(self._tap_layers.values()))
        return {s: maps[i] for s, i in self._tap_layers.items()}, pred

    @torch.no_grad()
    def forward_raw(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` ``[B,3,H,W]`` in [0,1] -> (``tap`` ``[B,C,H/32,W/32]``, ``pred`` ``[B,A,5+nc]``).

        ``pred`` is the official eval-mode output: centre x, y, width, height in input pixels, objectness,
        class probabilities."""
        x = self._check_input(x)
        pred, maps = self.net(x, taps=[self._tap_layers[TAP_STRIDE]])
        return maps[self._tap_layers[TAP_STRIDE]], pred

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.forward_raw(x)

    def preprocess(
        self, frames: Sequence[np.ndarray], size: tuple[int, int] = (640, 640)
    ) -> tuple[torch.Tensor, list[LetterboxTransform]]:
        """Frames (``HxWx3`` uint8 RGB, any sizes) -> (``x`` ``[B,3,size_h,size_w]`` on the device, transforms)."""
        h, w = int(size[0]), int(size[1])
        if h <= 0 or w <= 0 or h % TAP_STRIDE or w % TAP_STRIDE:
            raise InvalidInputError(f"input size must be positive multiples of 32, got {size}")
        if len(frames) == 0:
            raise InvalidInputError("no frames given")
        boxed, transforms = [], []
        for frame in frames:
            if not isinstance(frame, np.ndarray):
                raise InvalidInputError(f"a frame must be a numpy array, got {type(frame).__name__}")
            img, t = letterbox(frame, (h, w))
            boxed.append(img)
            transforms.append(t)
        batch = torch.from_numpy(np.stack(boxed)).to(self.device).permute(0, 3, 1, 2)
        x = batch.to(self.dtype).div_(255.0)
        x = x.contiguous(memory_format=torch.channels_last) if self.device.type == "cuda" else x.contiguous()
        return x, transforms

    def postprocess(
        self,
        pred: torch.Tensor,
        transforms: Sequence[LetterboxTransform],
        conf: float = 0.25,
        iou: float = 0.45,
        max_det: int = 300,
        classes: Sequence[int] | None = None,
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per image (``boxes`` ``[N,4]`` float32 xyxy original px, ``scores`` ``[N]``, ``classes`` ``[N]``)."""
        return _postprocess(pred, transforms, conf, iou, max_det, classes)

    def detect(
        self,
        frames: Sequence[np.ndarray],
        size: tuple[int, int] = (640, 640),
        conf: float = 0.25,
        iou: float = 0.45,
        max_det: int = 300,
        classes: Sequence[int] | None = None,
    ) -> list[Detections]:
        """Letterbox, one batched forward, NMS: one :class:`Detections` per frame (same order)."""
        x, transforms = self.preprocess(frames, size)
        tap, pred = self.forward_raw(x)
        results = self.postprocess(pred, transforms, conf, iou, max_det, classes)
        return [
            Detections(boxes=b, scores=s, classes=c, tap=tap[i], transform=transforms[i])
            for i, (b, s, c) in enumerate(results)
        ]


def load_detector(path: str | Path, device: str | torch.device = "cpu", fuse: bool = False) -> Detector:
    """A :class:`Detector` from our ``.safetensors`` (made by ``roitrack convert-weights``).

    Raises :class:`WeightsError` naming the first missing / extra / wrongly shaped tensor. The metadata and the
    header's tensor shapes are checked against the architecture (built on the ``meta`` device: no memory) before
    any tensor is read or the network is built, so a file that lies costs nothing."""
    dev = _resolve_device(device)
    meta = read_meta(path)
    try:
        spec = get_arch(meta.arch)
    except ValueError as exc:
        raise WeightsError(f"{path}: {exc}") from exc
    if list(meta.strides) != list(spec.strides):
        raise WeightsError(f"{path}: strides {meta.strides} do not match {spec.name} {list(spec.strides)}")
    if len(meta.anchors) != len(spec.anchors) or any(
        len(row) != len(ref) for row, ref in zip(meta.anchors, spec.anchors, strict=True)
    ):
        raise WeightsError(f"{path}: anchors {meta.anchors} do not have the layout of {spec.name}")
    try:
        with torch.device("meta"):
            shell = YoloNet(spec, nc=meta.nc, anchors=meta.anchors)
    except (ValueError, TypeError, RuntimeError) as exc:
        raise WeightsError(f"{path}: metadata does not describe a buildable {spec.name}: {exc}") from exc
    check_shapes({k: tuple(v.shape) for k, v in shell.state_dict().items()}, tensor_shapes(path), str(path))
    state, meta = load_weights(path)
    net = YoloNet(spec, nc=meta.nc, anchors=meta.anchors)
    check_state_dict(net.state_dict(), state, where=str(path))
    net.load_state_dict(state, strict=True)
    return Detector(net, meta, meta.source_sha256, dev, fuse=fuse)


def build_detector(
    arch: str, nc: int = 80, device: str | torch.device = "cpu", fuse: bool = False, seed: int = 0
) -> Detector:
    """A randomly initialised :class:`Detector` (demos, benchmarks, tests without weights).

    Deterministic for a given ``seed``; ``weights_sha256`` is the content hash of its state dict."""
    try:
        spec = get_arch(arch)
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from exc
    if nc < 1:
        raise InvalidInputError(f"nc must be >= 1, got {nc}")
    dev = _resolve_device(device)
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        net = YoloNet(spec, nc=nc).init_random(seed)
    finally:
        torch.random.set_rng_state(gen_state)
    meta = WeightsMeta(
        arch=spec.name,
        nc=nc,
        names=[str(i) for i in range(nc)],
        anchors=[[float(a) for a in row] for row in spec.anchors],
        strides=list(spec.strides),
        source_sha256=state_dict_sha256(net.state_dict()),
        source_name=f"random(seed={seed})",
    )
    return Detector(net, meta, meta.source_sha256, dev, fuse=fuse)
