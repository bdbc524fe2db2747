"""Our detector weights format: ``.safetensors`` with the official state-dict keys and JSON metadata.

The metadata (safetensors header key ``roitrack``) is a JSON object: ``format`` (``roitrack-yolov7/1``),
``arch``, ``nc``, ``names``, ``anchors`` (pixels, one row per level), ``strides``, ``source_sha256`` (of the
official ``.pt`` it was converted from, or of the state dict for other sources) and ``source_name``.
Files are written to a temporary file beside the target and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from tracker_core.errors import WeightsError

FORMAT = "roitrack-yolov7/1"
META_KEY = "roitrack"

MAX_NC = 2000
"""Classes a detector may have (COCO 80, Objects365 365, LVIS 1203): the head and every frame's prediction grow with
``nc`` (``[B, 25200, 5 + nc]`` at 640 px), so metadata declaring more is refused before anything is built."""


@dataclass(frozen=True)
class WeightsMeta:
    """Metadata stored beside the tensors. Validated by :meth:`from_json`."""

    arch: str
    nc: int
    names: list[str]
    anchors: list[list[float]]
    strides: list[int]
    source_sha256: str
    source_name: str = ""
    format: str = field(default=FORMAT)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str, where: str = "weights") -> WeightsMeta:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise WeightsError(f"{where}: metadata is not valid JSON: {exc}") from exc
        except RecursionError:
            raise WeightsError(f"{where}: metadata JSON is nested too deeply") from None
        if not isinstance(d, dict):
            raise WeightsError(f"{where}: metadata is not a JSON object")
        if d.get("format") != FORMAT:
            raise WeightsError(f"{where}: metadata format {d.get('format')!r} is not {FORMAT!r}")
        try:
            nc = int(d["nc"])
        except (KeyError, TypeError, ValueError) as exc:
            raise WeightsError(f"{where}: metadata is missing or has a bad field: {exc!r}") from exc
        if not 1 <= nc <= MAX_NC:
            raise WeightsError(f"{where}: metadata declares nc={nc} classes; this build accepts 1..{MAX_NC}")
        try:
            meta = cls(
                arch=str(d["arch"]),
                nc=nc,
                names=[str(n) for n in d["names"]],
                anchors=[[float(a) for a in row] for row in d["anchors"]],
                strides=[int(s) for s in d["strides"]],
                source_sha256=str(d["source_sha256"]),
                source_name=str(d.get("source_name", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise WeightsError(f"{where}: metadata is missing or has a bad field: {exc!r}") from exc
        if meta.nc < 1 or len(meta.names) != meta.nc:
            raise WeightsError(f"{where}: metadata has nc={meta.nc} but {len(meta.names)} class names")
        if len(meta.anchors) != len(meta.strides):
            raise WeightsError(
                f"{where}: metadata has {len(meta.anchors)} anchor rows for {len(meta.strides)} strides"
            )
        return meta


def state_dict_sha256(state: dict[str, torch.Tensor]) -> str:
    """A content hash of a state dict (keys, dtypes, shapes and bytes, in key order)."""
    import hashlib

    h = hashlib.sha256()
    for key in sorted(state):
        t = state[key].detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{list(t.shape)}|".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save_weights(path: str | Path, state: dict[str, torch.Tensor], meta: WeightsMeta) -> None:
    """Write ``state`` + ``meta`` to ``path`` atomically (temp file in the same folder, then rename)."""
    from safetensors.torch import save_file

    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise WeightsError(f"{path}: folder {folder} does not exist")
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={META_KEY: meta.to_json()})
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_meta(path: str | Path) -> WeightsMeta:
    """Only the metadata of a weights file (cheap: reads the header)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such weights file")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise WeightsError(
            f"{path}: not a readable .safetensors file (corrupt or truncated?): {exc}"
        ) from exc
    if META_KEY not in header:
        raise WeightsError(f"{path}: no roitrack metadata: not converted by `roitrack convert-weights`")
    return WeightsMeta.from_json(header[META_KEY], where=str(path))


def tensor_shapes(path: str | Path) -> dict[str, tuple[int, ...]]:
    """The shape of every tensor in a ``.safetensors`` file, from its header only (nothing is allocated)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: tuple(int(v) for v in f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118
    except Exception as exc:
        raise WeightsError(f"{path}: cannot read the tensor header (corrupt or truncated?): {exc}") from exc


def check_shapes(expected: dict[str, tuple[int, ...]], got: dict[str, tuple[int, ...]], where: str) -> None:
    """Like :func:`check_state_dict` on shapes alone (from headers: before any tensor is read or built)."""
    for key, shape in expected.items():
        if key not in got:
            raise WeightsError(f"{where}: missing tensor {key} (expected shape {list(shape)})")
        if got[key] != shape:
            raise WeightsError(f"{where}: tensor {key} has shape {list(got[key])}, expected {list(shape)}")
    for key in got:
        if key not in expected:
            raise WeightsError(f"{where}: unexpected tensor {key}")


def load_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], WeightsMeta]:
    """``(state_dict, meta)`` from ``path``; :class:`WeightsError` for a missing, corrupt or foreign file."""
    from safetensors import safe_open

    meta = read_meta(path)
    state: dict[str, torch.Tensor] = {}
    try:
        with safe_open(str(path), framework="pt") as f:
            for key in f.keys():  # noqa: SIM118 - safe_open is not a dict
                state[key] = f.get_tensor(key)
    except Exception as exc:
        raise WeightsError(f"{path}: cannot read tensors (corrupt or truncated?): {exc}") from exc
    return state, meta


def check_state_dict(expected: dict[str, Any], got: dict[str, torch.Tensor], where: str) -> None:
    """Raise :class:`WeightsError` naming the first key that is missing, extra or of the wrong shape."""
    for key, ref in expected.items():
        if key not in got:
            raise WeightsError(f"{where}: missing tensor {key} (expected shape {list(ref.shape)})")
        if tuple(got[key].shape) != tuple(ref.shape):
            raise WeightsError(
                f"{where}: tensor {key} has shape {list(got[key].shape)}, expected {list(ref.shape)}"
            )
    for key in got:
        if key not in expected:
            raise WeightsError(f"{where}: unexpected tensor {key}")
