"""An ONNX person-ReID network on image crops (onnxruntime; CPU, or the CUDA provider when it is installed).

:func:`load_reid_model` opens the file, resolves its input spec (``tracker_core.reid.spec``), runs it once on a
blank crop (so a model that cannot run at that size fails at load, with its name in the message) and returns a
:class:`ReidModel`. :meth:`ReidModel.embed` takes the frames of a batch (any number of streams) with their boxes
and returns each frame's ``[Ni,D]`` float32 L2-normalised embeddings, from one model input for all their crops
(split into runs of at most ``max_batch`` crops).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tracker_core.errors import ConfigError, RoitrackError, WeightsError
from tracker_core.reid.crops import reid_inputs
from tracker_core.reid.spec import ReidInputSpec, ReidOptions, resolve_spec

log = logging.getLogger(__name__)

DEFAULT_MAX_BATCH = 64
"""Crops per onnxruntime run at most (the model's fixed batch size when it has one)."""


class ReidOutputError(RoitrackError):
    """The ReID model produced NaN or infinite features."""


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def l2_normalise(y: NDArray[np.floating]) -> NDArray[np.float32]:
    """Rows scaled to unit length (an all-zero row stays zero)."""
    y = np.asarray(y, np.float32)
    n = np.linalg.norm(y, axis=1, keepdims=True)
    return (y / np.maximum(n, np.float32(1e-12))).astype(np.float32, copy=False)


def providers_for(device: Any, available: Sequence[str]) -> list[Any]:
    """onnxruntime providers for a device name (``cpu``, ``cuda``, ``cuda:N``, ``auto``, or a torch device)."""
    name = str(device)
    if name == "cpu":
        return ["CPUExecutionProvider"]
    if name == "auto" or name.startswith("cuda"):
        index = int(name.split(":", 1)[1]) if name.startswith("cuda:") else 0
        if "CUDAExecutionProvider" in available:
            return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
        if name != "auto":
            log.warning(
                "ReID model: device %s asked for, but this onnxruntime has no CUDA provider (install "
                "onnxruntime-gpu): the ReID model runs on the CPU",
                name,
            )
        return ["CPUExecutionProvider"]
    raise ConfigError(f"ReID model: unknown device {name!r} (cpu, cuda, cuda:N or auto)")


def _dim(d: Any) -> int | None:
    return d if isinstance(d, int) and not isinstance(d, bool) and d > 0 else None


class ReidModel:
    """An opened ReID model. Attributes: ``path``, ``sha256``, ``spec`` (:class:`ReidInputSpec`), ``spec_origin``
    (where each spec field came from), ``embed_dim`` (D), ``providers`` (those onnxruntime uses), ``max_batch``."""

    def __init__(
        self,
        session: Any,
        path: Path,
        sha256: str,
        spec: ReidInputSpec,
        spec_origin: dict[str, str],
        max_batch: int,
        fixed_batch: int | None,
        input_dtype: Any,
    ) -> None:
        self._session = session
        self.path = path
        self.sha256 = sha256
        self.spec = spec
        self.spec_origin = spec_origin
        self.max_batch = int(fixed_batch or max_batch)
        self._fixed_batch = fixed_batch
        self._input_dtype = input_dtype
        self._input = session.get_inputs()[0].name
        self._output = session.get_outputs()[0].name
        self.providers: list[str] = list(session.get_providers())
        self.embed_dim = 0
        probe = np.zeros((1, 3, spec.height, spec.width), np.float32)
        try:
            y = self._run(probe)
        except ReidOutputError:
            raise WeightsError(f"ReID model {path} gives non-finite features for a blank crop") from None
        except Exception as exc:
            raise WeightsError(
                f"ReID model {path} does not run on a {spec.height}x{spec.width} crop ({type(exc).__name__}: "
                f"{str(exc)[:300]}); check --reid-size"
            ) from None
        self.embed_dim = int(y.shape[1])
        if self.embed_dim < 1:
            raise WeightsError(f"ReID model {path} gives empty features")

    @property
    def device(self) -> str:
        return "cuda" if "CUDAExecutionProvider" in self.providers else "cpu"

    def describe(self) -> str:
        return (
            f"{self.path.name} (sha256 {self.sha256[:12]}), input {self.spec.describe()}, {self.embed_dim}-d "
            f"output, {self.providers[0]}"
        )

    def _run(self, x: NDArray[np.float32]) -> NDArray[np.float32]:
        """Raw features ``[N,D]`` of a model input ``[N,3,H,W]`` in runs of at most ``max_batch`` crops."""
        n = len(x)
        outs = []
        step = self.max_batch
        for lo in range(0, n, step):
            chunk = x[lo : lo + step]
            k = len(chunk)
            if self._fixed_batch is not None and k < self._fixed_batch:  # pad to the model's fixed batch
                pad = np.zeros((self._fixed_batch - k, *chunk.shape[1:]), chunk.dtype)
                chunk = np.concatenate([chunk, pad])
            feed = chunk.astype(self._input_dtype, copy=False)
            (y,) = self._session.run([self._output], {self._input: feed})
            y = np.asarray(y, np.float32).reshape(len(chunk), -1)[:k]
            outs.append(y)
        y = np.concatenate(outs) if outs else np.zeros((0, max(self.embed_dim, 1)), np.float32)
        if not np.isfinite(y).all():
            raise ReidOutputError(f"ReID model {self.path.name} produced NaN or infinite features")
        return y

    def embed_inputs(self, x: NDArray[np.float32]) -> NDArray[np.float32]:
        """Model input ``[N,3,H,W]`` (see :func:`tracker_core.reid.crops.reid_inputs`) -> ``[N,D]`` float32,
        L2-normalised."""
        if len(x) == 0:
            return np.zeros((0, self.embed_dim), np.float32)
        return l2_normalise(self._run(x))

    def embed(
        self, images: Sequence[NDArray[np.uint8]], boxes: Sequence[NDArray[np.floating]]
    ) -> list[NDArray[np.float32]]:
        """Frames (``HxWx3`` uint8 RGB) and their ``[Ni,4]`` xyxy boxes (original-frame pixels) -> each frame's
        ``[Ni,D]`` embeddings. All crops of all frames go through the model together."""
        x = reid_inputs(images, boxes, self.spec)
        emb = self.embed_inputs(x)
        out, start = [], 0
        for b in boxes:
            n = len(b)
            out.append(emb[start : start + n])
            start += n
        return out

    def embed_frame(self, image: NDArray[np.uint8], boxes: NDArray[np.floating]) -> NDArray[np.float32]:
        """One frame: ``[N,D]``."""
        return self.embed([image], [boxes])[0]


def load_reid_model(
    path: str | Path,
    options: ReidOptions | None = None,
    device: Any = "cpu",
    max_batch: int = DEFAULT_MAX_BATCH,
    threads: int = 0,
) -> ReidModel:
    """Open an ONNX ReID model. ``WeightsError`` for a missing / unreadable / unusable file, ``ConfigError`` for
    bad input settings or a missing onnxruntime. ``threads``: onnxruntime intra-op threads (0: its default)."""
    p = Path(path)
    if not p.is_file():
        raise WeightsError(f"ReID model {p} does not exist")
    if not 1 <= int(max_batch) <= 4096:
        raise ConfigError(f"ReID max batch must be 1..4096, got {max_batch}")
    try:
        import onnxruntime as ort
    except ImportError:
        raise ConfigError(
            "--reid-model needs onnxruntime: pip install onnxruntime (onnxruntime-gpu for the CUDA provider)"
        ) from None
    so = ort.SessionOptions()
    so.log_severity_level = 3
    # No busy-waiting between runs: the model shares the cores with the detector, decoding and tracking. On the
    # loaded 2-core development machine, interleaved runs of 10 OSNet crops took 28 ms/crop without spinning vs
    # 39 ms/crop with onnxruntime's default (medians of 6; docs/reid.md).
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads > 0:
        so.intra_op_num_threads = int(threads)
    providers = providers_for(device, ort.get_available_providers())
    try:
        session = ort.InferenceSession(str(p), sess_options=so, providers=providers)
    except Exception as exc:
        raise WeightsError(f"ReID model {p} cannot be loaded by onnxruntime: {str(exc)[:400]}") from None
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise WeightsError(f"ReID model {p} has {len(inputs)} inputs; a ReID model takes one image batch")
    shape = list(inputs[0].shape)
    if len(shape) != 4 or (_dim(shape[1]) is not None and shape[1] != 3):
        raise WeightsError(f"ReID model {p} takes input {shape}; expected [batch, 3, height, width]")
    types = {"tensor(float)": np.float32, "tensor(float16)": np.float16}
    if inputs[0].type not in types:
        raise WeightsError(f"ReID model {p} takes {inputs[0].type}; expected float or float16 images")
    metadata = dict(session.get_modelmeta().custom_metadata_map or {})
    spec, origin = resolve_spec(p, (_dim(shape[2]), _dim(shape[3])), metadata, options)
    model = ReidModel(
        session, p, file_sha256(p), spec, origin, int(max_batch), _dim(shape[0]), types[inputs[0].type]
    )
    log.info("ReID model: %s", model.describe())
    return model
