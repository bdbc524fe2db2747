"""The model runner: detector + ROI Align + encoder on one device, one batched forward per input shape.

:meth:`ModelRunner.run` takes the frames of one batch (from any number of streams) and returns, per frame, its
detections (the detector's, or the client's when it sent its own) and their appearance embeddings. It is
synchronous and not thread-safe: the batcher calls it from one dedicated thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from server.frames import DecodedImage, EncodedImage, FrameInput, FrameOutput, detached
from server.motion_frames import gray_frame
from server.tensor_preprocess import decode_to_device, letterbox_batch
from tracker_core.errors import InvalidInputError, ResourceExhaustedError, RoitrackError
from tracker_core.letterbox import LetterboxTransform
from tracker_core.motion import DEFAULT_FLOW_CONFIG

log = logging.getLogger(__name__)


class Embedder(Protocol):
    """Boxes of a batch -> appearance embeddings from the detector's maps (``tracker_core.encoder.Appearance``)."""

    @property
    def detector_strides(self) -> tuple[int, ...]: ...  # the detector maps it reads (32: SPP-CSPC)

    @property
    def needs_pixels(self) -> bool: ...

    def features(
        self,
        taps: Mapping[int, torch.Tensor],
        boxes: Sequence[np.ndarray],
        transforms: Sequence[LetterboxTransform],
        x: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """ROI Align: ``[sum Ni, C, 10, 10]``."""
        ...

    encoder: Any  # [N,C,10,10] -> [N,D] L2-normalised


class CropEmbedder(Protocol):
    """Frames + boxes -> embeddings from image crops (``tracker_core.reid.ReidModel``)."""

    sha256: str
    embed_dim: int

    def embed(self, images: Sequence[np.ndarray], boxes: Sequence[np.ndarray]) -> list[np.ndarray]:
        """``HxWx3`` uint8 RGB frames and their ``[Ni,4]`` xyxy boxes -> each frame's ``[Ni,D]`` float32."""
        ...


@dataclass(frozen=True)
class RunnerInfo:
    arch: str
    weights_sha256: str
    encoder_sha256: str
    device: str
    input_size: int
    class_names: tuple[str, ...]
    backend: str = "torch"  # the inference backend (tracker_core.inference) and its precision
    precision: str = "fp32"
    reid_sha256: str = ""


DEFAULT_MAX_DETECTIONS = 1000
"""Client detections per frame at most (``ServerConfig.max_detections``; see docs/operations.md)."""


class TooManyDetectionsError(ResourceExhaustedError):
    """A frame carries more client detections than the server accepts per frame."""


def _precheck(inp: FrameInput, max_detections: int) -> tuple[RoitrackError, str] | None:
    """What can be refused without decoding the frame: more than ``max_detections`` client boxes, or malformed
    ones (NaN, non-positive size, bad scores). ``(error, reason)`` or ``None``. A refused frame is never decoded,
    so a flood of tiny PNGs that decode to 4096x4096 costs nothing when their boxes are refused."""
    cd = inp.client_detections
    if cd is None:
        return None
    if len(cd.boxes) > max_detections:
        return (
            TooManyDetectionsError(
                f"frame has {len(cd.boxes)} client detections; the server accepts at most {max_detections} "
                "per frame (max_detections)"
            ),
            "too_many_detections",
        )
    try:
        cd.validate()
    except RoitrackError as exc:
        return detached(exc), "invalid_detections"
    return None


def _decode_one(inp: FrameInput, limit: int) -> tuple[np.ndarray | None, RoitrackError | None, str]:
    """Decode one frame: ``(image, None, "")`` or ``(None, error, reason)`` (the error without its traceback)."""
    try:
        return inp.image.decode(limit), None, ""
    except ResourceExhaustedError as exc:
        return None, detached(exc), "image_too_large"
    except RoitrackError as exc:
        return None, detached(exc), "invalid_image"


def _timed(stage_s: dict[str, float], name: str, t0: float) -> float:
    t1 = time.perf_counter()
    stage_s[name] = stage_s.get(name, 0.0) + (t1 - t0)
    return t1


class ModelRunner:
    """Owns a detector (see ``tracker_core.detector.Detector``) and an optional embedder on the detector's device.

    ``input_size``: frames are letterboxed to ``input_size x input_size``, so a whole batch is one tensor.
    ``backend``: the ``tracker_core.inference.InferenceBackend`` that runs the detector forward and the encoder
    (``server.loading.build_runner`` picks it from the config); default the torch reference (fp32 on the CPU,
    fp16 on CUDA). Letterbox, NMS and ROI Align are the same for every backend.
    ``reid``: an optional crop embedder (ONNX ReID model) for the frames whose stream chose ``reid``; their
    crops are cut from the decoded frames after the boxes are known (client boxes need no detector forward),
    all frames of the batch together.
    """

    def __init__(
        self,
        detector: Any,
        embedder: Embedder | None = None,
        encoder_sha256: str = "",
        input_size: int = 640,
        max_pixels: int = 4096 * 4096,
        max_det: int = 300,
        device_preprocess: bool = True,
        max_detections: int = DEFAULT_MAX_DETECTIONS,
        backend: Any = None,
        reid: CropEmbedder | None = None,
    ) -> None:
        self.detector = detector
        self.embedder = embedder
        self.backend = backend if backend is not None else reference_backend(detector, embedder)
        self.reid = reid
        self.input_size = int(input_size)
        self.max_pixels = int(max_pixels)
        self.max_det = max_det
        self.max_detections = int(max_detections)
        self.motion_width = (
            DEFAULT_FLOW_CONFIG.width
        )  # grey frame width for camera motion (tracker_core.motion)
        # Decode + letterbox on the model's device (nvJPEG, torch resize) when it is a GPU; OpenCV on the CPU.
        self.tensor_preprocess = bool(device_preprocess and detector.device.type == "cuda")
        # Boxes per ROI Align + encoder call: cache-sized blocks on the CPU; on a GPU blocks that bound the
        # [N,C,10,10] block (1024 x 512 x 100 x 2 B = 105 MB). A frame's boxes are split too. None = one call.
        self.roi_chunk: int | None = 1024 if detector.device.type == "cuda" else 64
        # OpenCV releases the GIL while decoding: the frames of a batch decode in parallel.
        self._decode_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="roitrack-decode")
        self.info = RunnerInfo(
            arch=str(detector.arch),
            weights_sha256=str(getattr(detector, "weights_sha256", "") or "random"),
            encoder_sha256=encoder_sha256 if embedder is not None else "",
            device=str(detector.device),
            input_size=self.input_size,
            class_names=tuple(getattr(detector, "names", ()) or ()),
            backend=str(self.backend.name),
            precision=str(self.backend.precision),
            reid_sha256=str(reid.sha256) if reid is not None else "",
        )

    @property
    def appearance_available(self) -> bool:
        return self.embedder is not None or self.reid is not None

    @property
    def embeddings_available(self) -> tuple[str, ...]:
        """What a stream may choose: ``off`` plus ``roi`` (encoder) and ``reid`` (ReID model) when loaded."""
        from server.embedding import available_embeddings

        return available_embeddings(self.embedder is not None, self.reid is not None)

    def warmup(self, iterations: int = 2, batch: int = 1) -> None:
        """Run a few full forwards at the serving size so the first real frame is not slow."""
        rng = np.random.default_rng(0)
        img = rng.integers(0, 255, (self.input_size, self.input_size, 3), dtype=np.uint8)
        box = np.array([[10, 10, 60, 90]], np.float32)
        from server.frames import ClientDetections

        dets = ClientDetections(box, np.array([0.9], np.float32), np.zeros(1, np.int64))
        import cv2

        jpeg = EncodedImage(cv2.imencode(".jpg", img)[1].tobytes())
        extra = [FrameInput(jpeg, dets, embedding="reid")] if self.reid is not None else []
        for _ in range(iterations):
            self.run([FrameInput(DecodedImage(img))] * batch + [FrameInput(jpeg, dets), *extra])

    def run(
        self,
        inputs: Sequence[FrameInput],
        max_pixels: int | None = None,
        max_detections: int | None = None,
    ) -> list[FrameOutput]:
        """One batch: decode, letterbox, one detector forward, NMS, ROI Align + encoder. Never raises for one
        frame's bad input: that frame's output carries the error, and a frame that makes the batched forward fail
        fails alone (the batch is rerun frame by frame). ``max_pixels`` / ``max_detections`` override the
        runner's limits."""
        limit = self.max_pixels if max_pixels is None else int(max_pixels)
        cap = self.max_detections if max_detections is None else int(max_detections)
        n = len(inputs)
        outs = [FrameOutput(batch_size=n) for _ in range(n)]
        shared: dict[str, float] = {}
        images: list[Any] = [None] * n  # HxWx3 uint8 arrays, or [3,H,W] uint8 tensors on the device
        t = time.perf_counter()
        decoded: list[tuple[Any, RoitrackError | None, str]] = [(None, None, "")] * n
        pre = [_precheck(inp, cap) for inp in inputs]
        ok = [i for i in range(n) if pre[i] is None]
        got: list[tuple[Any, RoitrackError | None, str]]
        if self.tensor_preprocess:
            got = list(decode_to_device([inputs[i] for i in ok], self.detector.device, limit))
        elif len(ok) > 1:
            got = list(self._decode_pool.map(lambda i: _decode_one(inputs[i], limit), ok))
        else:
            got = [_decode_one(inputs[i], limit) for i in ok]
        for i, d in zip(ok, got, strict=True):
            decoded[i] = d
        for i, p in enumerate(pre):
            if p is not None:
                decoded[i] = (None, p[0], p[1])
        del got
        for i, (img, err, reason) in enumerate(decoded):
            if err is not None:
                outs[i].error, outs[i].error_reason = detached(err), reason
                continue
            assert img is not None
            images[i] = img
            hw = img.shape[1:3] if self.tensor_preprocess else img.shape[:2]  # [3,H,W] tensor / HxWx3 array
            outs[i].image_hw = (int(hw[0]), int(hw[1]))
        del decoded
        t = _timed(shared, "decode", t)

        # Frames that need the network: detector boxes wanted, or appearance on our features.
        want_app = [
            images[i] is not None and inp.appearance and inp.embedding == "roi" and self.embedder is not None
            for i, inp in enumerate(inputs)
        ]
        fwd = [
            i
            for i, inp in enumerate(inputs)
            if images[i] is not None and (inp.client_detections is None or want_app[i])
        ]
        for i, inp in enumerate(inputs):
            cd = inp.client_detections
            if images[i] is not None and cd is not None:
                h, w = outs[i].image_hw
                inside = cd.inside(w, h)
                keep = np.flatnonzero(inside & self._class_mask(cd.classes, inp.classes))
                outs[i].boxes = cd.boxes[keep].astype(np.float32)
                outs[i].scores = cd.scores[keep].astype(np.float32)
                outs[i].classes = cd.classes[keep].astype(np.int64)
                outs[i].det_source = keep
                outs[i].dropped_detections = int(len(inside) - int(inside.sum()))
        if fwd:
            self._forward_isolated(inputs, images, outs, fwd, want_app, shared)
        if self.reid is not None:
            crops = [
                i
                for i, inp in enumerate(inputs)
                if images[i] is not None
                and outs[i].error is None
                and inp.appearance
                and inp.embedding == "reid"
            ]
            if crops:
                self._reid_isolated(images, outs, crops, shared)
        nb = max(1, n)
        for o in outs:
            o.stage_s = {k: v / nb for k, v in shared.items()}
        self._motion_frames(inputs, images, outs)
        return outs

    def _motion_frames(
        self, inputs: Sequence[FrameInput], images: list[Any], outs: list[FrameOutput]
    ) -> None:
        """The grey frame of every decoded frame whose stream estimates camera motion (timed per frame as
        ``camera_motion``)."""
        for i, inp in enumerate(inputs):
            if not inp.camera_motion or images[i] is None:
                continue
            t0 = time.perf_counter()
            try:
                outs[i].gray = gray_frame(images[i], self.motion_width)
            except Exception as exc:  # never fail a frame over it: this frame is then tracked without motion
                log.warning("camera-motion grey frame failed: %r", exc)
            outs[i].stage_s["camera_motion"] = time.perf_counter() - t0

    def _forward_isolated(
        self,
        inputs: Sequence[FrameInput],
        images: list[Any],
        outs: list[FrameOutput],
        fwd: list[int],
        want_app: list[bool],
        shared: dict[str, float],
    ) -> None:
        """The batched forward; when it fails, each frame again on its own, so only the culprit fails."""
        try:
            self._forward(inputs, images, outs, fwd, want_app, shared)
            return
        except Exception as exc:
            if len(fwd) == 1:
                self._fail(outs[fwd[0]], exc)
                return
            log.warning("a batch of %d frames failed (%s): rerunning its frames one by one", len(fwd), exc)
        for i in fwd:
            outs[i].boxes, outs[i].scores, outs[i].classes, outs[i].embeddings = _client_or_empty(
                inputs[i], outs[i]
            )
            outs[i].embedding = ""
            try:
                self._forward(inputs, images, outs, [i], want_app, shared)
            except Exception as exc:
                self._fail(outs[i], exc)

    def _reid_isolated(
        self, images: list[Any], outs: list[FrameOutput], idx: list[int], shared: dict[str, float]
    ) -> None:
        """ReID embeddings of the frames ``idx`` (boxes already set), all their crops in one model input; when that
        fails, each frame on its own, so only the culprit fails. Adds the ``reid`` stage time."""
        t0 = time.perf_counter()
        try:
            self._reid(images, outs, idx)
        except Exception as exc:
            if len(idx) == 1:
                self._fail_reid(outs[idx[0]], exc)
            else:
                log.warning(
                    "ReID on a batch of %d frames failed (%s): rerunning its frames one by one", len(idx), exc
                )
                for i in idx:
                    try:
                        self._reid(images, outs, [i])
                    except Exception as exc1:
                        self._fail_reid(outs[i], exc1)
        dt = time.perf_counter() - t0
        shared["reid"] = shared.get("reid", 0.0) + dt
        crops = sum(outs[i].reid_crops for i in idx)
        for i in idx:
            outs[i].reid_s_per_crop = dt / crops if crops else 0.0

    def _reid(self, images: list[Any], outs: list[FrameOutput], idx: list[int]) -> None:
        assert self.reid is not None
        frames = [_host_rgb(images[i]) for i in idx]
        embs = self.reid.embed(frames, [outs[i].boxes for i in idx])
        for i, e in zip(idx, embs, strict=True):
            outs[i].embeddings = np.asarray(e, np.float32)
            outs[i].embedding = "reid"
            outs[i].reid_crops = len(e)

    @staticmethod
    def _fail_reid(out: FrameOutput, exc: BaseException) -> None:
        out.embeddings, out.reid_crops = None, 0
        if isinstance(exc, InvalidInputError):
            out.error, out.error_reason = detached(exc), "invalid_detections"
        else:
            log.warning("ReID failed on a frame: %r", exc)
            out.error = RunnerFrameError(f"internal error in the ReID model ({type(exc).__name__})")
            out.error_reason = "internal"

    @staticmethod
    def _fail(out: FrameOutput, exc: BaseException) -> None:
        if isinstance(exc, RoitrackError):
            out.error, out.error_reason = detached(exc), "invalid_image"
        else:
            log.warning("frame failed in the model runner: %r", exc)
            out.error = RunnerFrameError(f"internal error while processing the frame ({type(exc).__name__})")
            out.error_reason = "internal"

    @staticmethod
    def _class_mask(classes: np.ndarray, allowed: tuple[int, ...] | None) -> np.ndarray:
        if allowed is None:
            return np.ones(len(classes), dtype=bool)
        return np.isin(classes, np.asarray(allowed, dtype=np.int64))

    @torch.inference_mode()
    def _forward(
        self,
        inputs: Sequence[FrameInput],
        images: list[Any],
        outs: list[FrameOutput],
        fwd: list[int],
        want_app: list[bool],
        shared: dict[str, float],
    ) -> None:
        det = self.detector
        frames = [images[i] for i in fwd]
        t = time.perf_counter()
        size = (self.input_size, self.input_size)
        if self.tensor_preprocess:
            x, transforms = letterbox_batch(frames, size, det.dtype, channels_last=det.device.type == "cuda")
        else:
            x, transforms = det.preprocess(frames, size)
        t = _timed(shared, "letterbox", t)
        taps, pred = self.backend.forward_taps(x)
        if pred.device.type == "cuda":
            torch.cuda.synchronize(pred.device)
        t = _timed(shared, "inference", t)
        for j, i in enumerate(fwd):
            inp = inputs[i]
            if inp.client_detections is not None:
                continue
            classes = list(inp.classes) if inp.classes is not None else None
            ((boxes, scores, cls),) = det.postprocess(
                pred[j : j + 1],
                [transforms[j]],
                conf=inp.conf_threshold,
                iou=inp.iou_threshold,
                max_det=self.max_det,
                classes=classes,
            )
            # Boxes clipped to the frame can collapse to zero width/height (e.g. from the padding): not objects.
            keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
            outs[i].boxes, outs[i].scores, outs[i].classes = boxes[keep], scores[keep], cls[keep]
        t = _timed(shared, "nms", t)
        app = [j for j, i in enumerate(fwd) if want_app[i]]
        if not app or self.embedder is None:
            return
        boxes = [outs[fwd[j]].boxes for j in app]
        dim = int(getattr(self.embedder.encoder, "embed_dim", 128))
        roi_s = enc_s = 0.0
        parts: list[np.ndarray] = []
        # ROI Align + encoder run over groups of at most ``roi_chunk`` boxes (a frame's boxes split too). On the
        # CPU cache-sized: a whole batch's [N,C,10,10] block (8 frames x 50 boxes x 256 ch = 41 MB) fell out of
        # cache and made the batched per-frame cost grow with the batch. Everywhere: memory bounded per call
        # whatever the boxes per frame (the frames' count is capped by max_detections).
        for group in _box_chunks([len(bx) for bx in boxes], self.roi_chunk):
            t = time.perf_counter()
            idx = [app[j] for j, _, _ in group]
            whole = idx == list(range(x.shape[0]))
            sel = None if whole else torch.as_tensor(idx, device=x.device)
            sub_taps = {st: (m if sel is None else m.index_select(0, sel)) for st, m in taps.items()}
            sub_x = (x if sel is None else x.index_select(0, sel)) if self.embedder.needs_pixels else None
            sub_boxes = [boxes[j][lo:hi] for j, lo, hi in group]
            feats = self.embedder.features(sub_taps, sub_boxes, [transforms[k] for k in idx], sub_x)
            if feats.device.type == "cuda":
                torch.cuda.synchronize(feats.device)
            t1 = time.perf_counter()
            roi_s += t1 - t
            if feats.shape[0]:
                parts.append(self.backend.encode(feats))
            enc_s += time.perf_counter() - t1
        emb = np.concatenate(parts) if parts else np.zeros((0, dim), np.float32)
        shared["roi_align"] = shared.get("roi_align", 0.0) + roi_s
        shared["encoder"] = shared.get("encoder", 0.0) + enc_s
        start = 0
        for j, bx in zip(app, boxes, strict=True):
            outs[fwd[j]].embeddings = emb[start : start + len(bx)]
            outs[fwd[j]].embedding = "roi"
            start += len(bx)


class RunnerFrameError(RoitrackError):
    """An unexpected failure of one frame inside the model runner (the message hides internals)."""


def _host_rgb(image: Any) -> np.ndarray:
    """A decoded frame as an ``HxWx3`` uint8 RGB array on the host (device-decoded frames are ``[3,H,W]`` tensors)."""
    if isinstance(image, np.ndarray):
        return image
    return np.ascontiguousarray(image.permute(1, 2, 0).contiguous().cpu().numpy())


def _client_or_empty(
    inp: FrameInput, out: FrameOutput
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """A frame's outputs before its forward: its client detections (already set) or nothing."""
    if inp.client_detections is not None:
        return out.boxes, out.scores, out.classes, None
    empty = FrameOutput()
    return empty.boxes, empty.scores, empty.classes, None


def _box_chunks(counts: Sequence[int], limit: int | None) -> list[list[tuple[int, int, int]]]:
    """Split the boxes of consecutive frames (``counts[j]`` boxes in frame ``j``) into groups of at most ``limit``
    boxes, in order: each group is a list of ``(frame j, first box, end box)``; a frame's boxes may be split over
    groups. Frames without boxes are left out; ``limit=None``: one group."""
    groups: list[list[tuple[int, int, int]]] = []
    cur: list[tuple[int, int, int]] = []
    room = limit
    for j, c in enumerate(counts):
        lo = 0
        while lo < c:
            take = c - lo if room is None else min(c - lo, room)
            cur.append((j, lo, lo + take))
            lo += take
            if room is not None:
                room -= take
                if room == 0:
                    groups.append(cur)
                    cur, room = [], limit
    if cur:
        groups.append(cur)
    return groups


def reference_backend(detector: Any, embedder: Embedder | None) -> Any:
    """The torch backend at the detector's own precision (fp32 on the CPU, fp16 on CUDA): the reference."""
    from tracker_core.inference import InferenceOptions, build_backend

    precision = "fp16" if detector.device.type == "cuda" else "fp32"
    return build_backend(
        detector, embedder, InferenceOptions(backend="torch", precision=precision, verify=False)
    )


def pick_device(name: str) -> torch.device:
    """``auto`` -> CUDA when present, else CPU; ``cuda`` without a GPU is a clear error."""
    from tracker_core.errors import ConfigError

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but no CUDA device is available")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ConfigError(f"device {name!r} does not exist ({torch.cuda.device_count()} CUDA device(s))")
    return dev


RunBatch = Callable[[Sequence[FrameInput]], list[FrameOutput]]
