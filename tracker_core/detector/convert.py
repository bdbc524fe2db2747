"""Official YOLOv7 checkpoint (``.pt``) -> our ``.safetensors`` + JSON metadata.

Reads the checkpoint with the restricted unpickler, walks the inert module stand-ins to collect the state
dict and the few attributes we need (class names, anchors, strides), detects the arch from the keys and
shapes, checks the BatchNorm epsilon, and writes the result atomically.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tracker_core.detector.architectures import ARCHES
from tracker_core.detector.checkpoint_unpickler import StandIn, read_checkpoint
from tracker_core.detector.layers import BN_EPS
from tracker_core.detector.model import YoloNet
from tracker_core.detector.weights_io import MAX_NC, WeightsMeta, save_weights
from tracker_core.errors import WeightsError


@dataclass
class Converted:
    """A converted checkpoint: fp32 state dict with official keys, plus metadata."""

    state_dict: dict[str, torch.Tensor]
    meta: WeightsMeta


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _walk(module: StandIn, prefix: str) -> Iterator[tuple[str, StandIn | torch.Tensor]]:
    """Yield ``(key, tensor)`` for parameters/persistent buffers and ``(path, stand-in)`` for sub-modules."""
    yield prefix.rstrip("."), module
    params = module.attr("_parameters") or {}
    buffers = module.attr("_buffers") or {}
    non_persistent = module.attr("_non_persistent_buffers_set") or set()
    for name, value in params.items():
        if value is not None:
            yield prefix + name, value
    for name, value in buffers.items():
        if value is not None and name not in non_persistent:
            yield prefix + name, value
    for name, child in (module.attr("_modules") or {}).items():
        if child is None:
            continue
        if not isinstance(child, StandIn):
            raise WeightsError(f"checkpoint sub-module {prefix}{name} is not a module")
        yield from _walk(child, f"{prefix}{name}.")


def _find_model(obj: Any) -> StandIn:
    if isinstance(obj, dict):
        for key in ("ema", "model"):
            value = obj.get(key)
            if isinstance(value, StandIn):
                return value
        raise WeightsError("checkpoint holds no 'model' (not an official YOLOv7 checkpoint)")
    if isinstance(obj, StandIn):
        return obj
    raise WeightsError(f"checkpoint top level is a {type(obj).__name__}, not a YOLOv7 checkpoint dict")


def detect_arch(shapes: dict[str, tuple[int, ...]]) -> tuple[str, int]:
    """``(arch, nc)`` whose state-dict keys and shapes equal ``shapes``; :class:`WeightsError` otherwise."""
    problems: list[str] = []
    for name, spec in ARCHES.items():
        head = f"model.{len(spec.layers) - 1}.m.0.weight"
        if head not in shapes or len(shapes[head]) != 4:
            continue
        nc = shapes[head][0] // (len(spec.anchors[0]) // 2) - 5
        if nc < 1:
            continue
        if nc > MAX_NC:
            raise WeightsError(f"checkpoint head has nc={nc} classes; this build accepts 1..{MAX_NC}")
        with torch.device("meta"):
            net = YoloNet(name, nc=nc)
        expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
        if expected == shapes:
            return name, nc
        problems.append(f"not {name} (nc={nc}): {_first_mismatch(expected, shapes)[1]}")
    if problems:
        raise WeightsError("checkpoint does not match a known YOLOv7 layout: " + "; ".join(problems))
    raise WeightsError(
        f"checkpoint is not a known YOLOv7 layout (known: {', '.join(ARCHES)}); it has {len(shapes)} tensors"
    )


def _first_mismatch(expected: dict[str, tuple[int, ...]], got: dict[str, tuple[int, ...]]) -> tuple[str, str]:
    for key, shape in expected.items():
        if key not in got:
            return key, f"missing key {key} (expected shape {list(shape)})"
        if got[key] != shape:
            return key, f"key {key} has shape {list(got[key])}, expected {list(shape)}"
    for key in got:
        if key not in expected:
            return key, f"unexpected key {key}"
    return "", "no mismatch"


def convert_checkpoint(src: str | Path) -> Converted:
    """Read an official checkpoint safely and return its fp32 state dict and metadata."""
    src = Path(src)
    raw = read_checkpoint(str(src))
    model = _find_model(raw.obj)
    tensors: dict[str, torch.Tensor] = {}
    modules: dict[str, StandIn] = {}
    for key, value in _walk(model, ""):
        if isinstance(value, StandIn):
            modules[key] = value
        elif isinstance(value, torch.Tensor):
            tensors[key] = value
        else:
            raise WeightsError(f"checkpoint entry {key} is not a tensor")
    arch, nc = detect_arch({k: tuple(v.shape) for k, v in tensors.items()})
    spec = ARCHES[arch]
    for path, mod in modules.items():
        if mod.qualname.endswith("BatchNorm2d"):
            eps = mod.attr("eps")
            if not isinstance(eps, float) or abs(eps - BN_EPS) > 1e-12:
                raise WeightsError(f"checkpoint BatchNorm {path} has eps={eps!r}, expected {BN_EPS}")
    names = model.attr("names")
    if not (isinstance(names, list | tuple) and len(names) == nc and all(isinstance(n, str) for n in names)):
        names = [str(i) for i in range(nc)]
    head_key = f"model.{len(spec.layers) - 1}"
    anchor_grid = tensors[f"{head_key}.anchor_grid"].float()
    anchors_px = anchor_grid.reshape(len(spec.strides), -1).tolist()
    head = modules.get(head_key)
    strides = list(spec.strides)
    head_stride = head.attr("stride") if head is not None else None
    if isinstance(head_stride, torch.Tensor) and [int(s) for s in head_stride.tolist()] != strides:
        raise WeightsError(f"checkpoint head strides {head_stride.tolist()} differ from {strides}")
    state = {
        k: v.detach().to(torch.float32).contiguous() if v.is_floating_point() else v.contiguous()
        for k, v in tensors.items()
    }
    meta = WeightsMeta(
        arch=arch,
        nc=nc,
        names=list(names),
        anchors=[[float(a) for a in row] for row in anchors_px],
        strides=strides,
        source_sha256=sha256_file(src),
        source_name=src.name,
    )
    return Converted(state_dict=state, meta=meta)


def convert_weights(src: str | Path, dst: str | Path) -> WeightsMeta:
    """Convert ``src`` (official ``.pt``) to ``dst`` (``.safetensors``), atomically. Returns the metadata."""
    converted = convert_checkpoint(src)
    save_weights(dst, converted.state_dict, converted.meta)
    return converted.meta
