"""What one frame carries into the model runner and what comes back out (plain data, no gRPC, no torch)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from server.decode import decode_encoded, decode_raw
from tracker_core.errors import InvalidInputError, RoitrackError
from tracker_core.motion import GrayFrame


@dataclass(frozen=True)
class EncodedImage:
    """JPEG/PNG bytes as received."""

    data: bytes

    def decode(self, max_pixels: int) -> np.ndarray:
        return decode_encoded(self.data, max_pixels)


@dataclass(frozen=True)
class RawImageData:
    """A raw buffer as received (``pixel_format``: the values of ``roitrack.v1.PixelFormat``)."""

    width: int
    height: int
    pixel_format: int
    data: bytes

    def decode(self, max_pixels: int) -> np.ndarray:
        return decode_raw(self.width, self.height, self.pixel_format, self.data, max_pixels)


@dataclass(frozen=True)
class DecodedImage:
    """An ``HxWx3`` uint8 RGB array (the in-process pipeline hands frames over like this)."""

    rgb: np.ndarray

    def decode(self, max_pixels: int) -> np.ndarray:
        a = self.rgb
        if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
            raise InvalidInputError(f"frames must be HxWx3 uint8 RGB, got {a.shape} {a.dtype}")
        return a


ImageInput = EncodedImage | RawImageData | DecodedImage


@dataclass(frozen=True)
class ClientDetections:
    """Detections the client sent: ``boxes`` ``[N,4]`` xyxy original px, ``scores`` ``[N]``, ``classes`` ``[N]``."""

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray

    def validate(self) -> None:
        """Refuse malformed detections (``InvalidInputError``): wrong shapes, NaN/inf coordinates, non-positive
        size, scores outside [0, 1]. Needs no image, so the runner checks it before decoding the frame."""
        b, s = self.boxes, self.scores
        if b.ndim != 2 or b.shape[1] != 4 or len(s) != len(b) or len(self.classes) != len(b):
            raise InvalidInputError(
                f"client detections must be [N,4] boxes with N scores/classes, got {b.shape}"
            )
        if not np.isfinite(b).all():
            raise InvalidInputError("client detections contain NaN or infinite coordinates")
        if (b[:, 2] <= b[:, 0]).any() or (b[:, 3] <= b[:, 1]).any():
            raise InvalidInputError("client detections must be xyxy with x1 < x2 and y1 < y2 (positive size)")
        if not np.isfinite(s).all() or (s < 0).any() or (s > 1).any():
            raise InvalidInputError("client detection scores must be in [0, 1]")

    def inside(self, width: int, height: int) -> np.ndarray:
        """``[N]`` bool: the boxes that overlap the ``width x height`` frame. A box wholly outside it (a detector's
        rounding, letterbox padding, an object that left the view) is not an error: the runner drops it and
        counts it. Boxes reaching past the frame's edges are kept: they are tracked as sent, and their
        appearance is read from the part inside the frame."""
        b = self.boxes
        return (b[:, 0] < width) & (b[:, 1] < height) & (b[:, 2] > 0) & (b[:, 3] > 0)


def detached(exc: RoitrackError) -> RoitrackError:
    """``exc`` without its traceback. An error kept in a frame's output must not keep the frames it was raised
    through alive: their locals hold decoded images, and the traceback -> frame -> ``exc`` cycle would keep them
    until the cycle collector happens to run (a flood of refused 4096x4096 frames grew the server by GBs)."""
    exc.__traceback__ = None
    exc.__context__ = None
    exc.__cause__ = None
    return exc


@dataclass(frozen=True)
class FrameInput:
    """One frame for the model runner, with the options of its stream."""

    image: ImageInput
    client_detections: ClientDetections | None = None
    conf_threshold: float = 0.25
    iou_threshold: float = 0.45
    classes: tuple[int, ...] | None = None  # None: all classes
    appearance: bool = True
    camera_motion: bool = (
        False  # the runner also returns the downscaled grey frame the motion estimator reads
    )
    embedding: str = "roi"  # with appearance: "roi" (ROI encoder) or "reid" (ReID model on image crops)


@dataclass
class FrameOutput:
    """Detections of one frame (``boxes`` ``[N,4]`` xyxy original px), or the error that made it unusable.

    ``stage_s`` holds this frame's share of each batched stage (seconds): decode, letterbox, inference, nms,
    roi_align, encoder, reid; and ``camera_motion`` (this frame's grey frame for the motion estimator).
    ``embedding`` names what made ``embeddings`` (``roi`` | ``reid``; ``""``: none); with ``reid``, ``reid_crops``
    is this frame's crop count and ``reid_s_per_crop`` its batch's ReID time per crop.
    """

    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    scores: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.float32))
    classes: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))
    embeddings: np.ndarray | None = None  # [N,D] float32 L2-normalised, None when appearance is off
    error: RoitrackError | None = None
    # invalid_image | image_too_large | invalid_detections | too_many_detections | internal
    error_reason: str = ""
    stage_s: dict[str, float] = field(default_factory=dict)
    batch_size: int = 1
    t_batch_start: float = 0.0  # time.perf_counter() when its batch started running
    run_s: float = 0.0  # wall time of its batch in the model runner
    image_hw: tuple[int, int] = (0, 0)
    gray: GrayFrame | None = None  # the camera-motion estimator's grey frame (FrameInput.camera_motion)
    embedding: str = ""
    reid_crops: int = 0
    reid_s_per_crop: float = 0.0
    # Client detections only: the client's index of each kept box (``boxes[k]`` is the client's
    # ``det_source[k]``), and how many of its boxes were dropped for lying wholly outside the frame.
    det_source: np.ndarray | None = None
    dropped_detections: int = 0
