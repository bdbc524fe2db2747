"""The in-process pipeline: decode -> detect -> ROI Align -> encode -> track, without gRPC.

The same :class:`ModelRunner` and :func:`track_frame` the server uses, called directly; the overhead benchmark
compares it with the gRPC path. One :class:`Pipeline` is one stream (it owns one tracker).

Like the server, the model runs on its own thread. Measured on this project's 2-core CI-class machine under
load, torch's OpenMP forward called from the process's *main* thread was 5-20x slower than the same call from
a worker thread (spin-waiting OpenMP workers starve the main thread; ``OMP_WAIT_POLICY=PASSIVE`` removes the
gap), so calling from the main thread would make the in-process baseline look far worse than the server.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from server.frames import ClientDetections, DecodedImage, EncodedImage, FrameInput
from server.model_runner import ModelRunner
from server.processor import camera_warp, track_frame
from tracker_core.errors import RoitrackError
from tracker_core.motion import CameraMotion, MotionMode


@dataclass
class PipelineResult:
    tracks: list[Any]  # TrackOutput
    boxes: np.ndarray  # the frame's detections [N,4] xyxy original px
    stage_ms: dict[str, float] = field(default_factory=dict)


class Pipeline:
    """``process(image, timestamp)`` for one stream. ``image``: JPEG/PNG bytes or an ``HxWx3`` uint8 RGB array."""

    def __init__(
        self,
        runner: ModelRunner,
        tracker_factory: Callable[[], Any],
        conf_threshold: float = 0.25,
        iou_threshold: float = 0.45,
        appearance: bool = True,
        camera_motion: str = "off",
        embedding: str | None = None,
    ) -> None:
        """``embedding``: ``roi`` | ``reid`` | ``off`` (default: what a server would give a stream that does not
        choose: ``roi`` when the runner has an encoder, else ``reid`` when it has a ReID model, else ``off``);
        ``EmbeddingUnavailableError`` for one the runner has no model for. ``appearance=False`` = ``off``."""
        from server.embedding import check_available, resolve_default

        self.runner = runner
        self.tracker = tracker_factory()
        self.camera_motion = CameraMotion(MotionMode.parse(camera_motion))
        self.conf_threshold = conf_threshold
        self.iou_threshold = iou_threshold
        available = runner.embeddings_available
        chosen = "off" if not appearance else embedding or resolve_default("auto", available)
        self.embedding = check_available(chosen, available)
        self.appearance = self.embedding != "off"
        self._model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="roitrack-pipeline-model")

    def process(
        self,
        image: bytes | np.ndarray,
        timestamp: float,
        detections: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    ) -> PipelineResult:
        """One frame. ``detections``: the caller's own ``(boxes [N,4] xyxy, scores [N], classes [N])``, used instead
        of the detector's (appearance still from our features). Raises the frame's named error."""
        img = EncodedImage(bytes(image)) if isinstance(image, bytes | bytearray) else DecodedImage(image)
        dets = None
        if detections is not None:
            b, s, c = detections
            dets = ClientDetections(
                np.asarray(b, np.float32).reshape(-1, 4), np.asarray(s, np.float32), np.asarray(c, np.int64)
            )
        inp = FrameInput(
            img,
            dets,
            self.conf_threshold,
            self.iou_threshold,
            None,
            self.appearance,
            camera_motion=self.camera_motion.enabled,
            embedding=self.embedding,
        )
        (out,) = self._model_thread.submit(self.runner.run, [inp]).result()
        if out.error is not None:
            raise out.error
        warp, cm_s = camera_warp(self.camera_motion, out, timestamp)
        t0 = time.perf_counter()
        tracks = track_frame(self.tracker, out, timestamp, self.appearance, warp)
        stage_ms = {k: v * 1000.0 for k, v in out.stage_s.items()}
        stage_ms["tracking"] = (time.perf_counter() - t0) * 1000.0
        if self.camera_motion.enabled:
            stage_ms["camera_motion"] = stage_ms.get("camera_motion", 0.0) + cm_s * 1000.0
        return PipelineResult(tracks, out.boxes, stage_ms)

    def close(self) -> None:
        self._model_thread.shutdown(wait=True)


__all__ = ["Pipeline", "PipelineResult", "RoitrackError"]
