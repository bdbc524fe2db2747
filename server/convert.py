"""Wire messages (``roitrack.v1``) <-> the server's plain data. The only module that knows both sides."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from roitrack_api.roitrack.v1 import tracking_pb2 as pb
from server.frames import ClientDetections, EncodedImage, FrameInput, RawImageData
from server.session import StreamOptions
from tracker_core.errors import InvalidInputError

_KNOWN_PIXEL_FORMATS = (pb.PIXEL_FORMAT_RGB8, pb.PIXEL_FORMAT_BGR8, pb.PIXEL_FORMAT_GRAY8)

# FrameOutput.error_reason -> wire code
FRAME_ERROR_CODES = {
    "invalid_image": pb.FRAME_ERROR_CODE_INVALID_IMAGE,
    "image_too_large": pb.FRAME_ERROR_CODE_IMAGE_TOO_LARGE,
    "invalid_detections": pb.FRAME_ERROR_CODE_INVALID_DETECTIONS,
    "internal": pb.FRAME_ERROR_CODE_INTERNAL,
    "invalid_timestamp": pb.FRAME_ERROR_CODE_INVALID_TIMESTAMP,
    "too_many_detections": pb.FRAME_ERROR_CODE_TOO_MANY_DETECTIONS,
}


def options_from_pb(msg: pb.StreamOptions, conf_default: float, iou_default: float) -> StreamOptions:
    """Per-stream options; out-of-range values raise ``InvalidInputError``."""
    return StreamOptions(
        classes=tuple(int(c) for c in msg.classes) or None,
        conf_threshold=float(msg.conf_threshold) if msg.HasField("conf_threshold") else conf_default,
        iou_threshold=float(msg.iou_threshold) if msg.HasField("iou_threshold") else iou_default,
        appearance=bool(msg.appearance) if msg.HasField("appearance") else True,
        return_lost=bool(msg.return_lost),
    )


def frame_from_pb(msg: pb.Frame, options: StreamOptions) -> FrameInput:
    """A frame message -> :class:`FrameInput`. Protocol misuse (unknown pixel format) raises ``InvalidInputError``;
    bad content (corrupt image, NaN boxes) is left for the runner to report as a per-frame error."""
    which = msg.WhichOneof("image")
    image: EncodedImage | RawImageData
    if which == "raw":
        raw = msg.raw
        if raw.format not in _KNOWN_PIXEL_FORMATS:
            raise InvalidInputError(
                f"frame {msg.frame_id}: unknown raw pixel format {raw.format}; use PIXEL_FORMAT_RGB8, BGR8 or GRAY8"
            )
        image = RawImageData(int(raw.width), int(raw.height), int(raw.format), raw.data)
    else:
        image = EncodedImage(msg.encoded)
    dets = None
    if msg.use_client_detections:
        n = len(msg.detections)
        boxes = np.array(
            [(d.box.x1, d.box.y1, d.box.x2, d.box.y2) for d in msg.detections], dtype=np.float32
        ).reshape(n, 4)
        scores = np.array([d.score for d in msg.detections], dtype=np.float32)
        classes = np.array([d.class_id for d in msg.detections], dtype=np.int64)
        dets = ClientDetections(boxes, scores, classes)
    return FrameInput(
        image=image,
        client_detections=dets,
        conf_threshold=options.conf_threshold,
        iou_threshold=options.iou_threshold,
        classes=options.classes,
        appearance=options.appearance,
    )


def tracks_to_pb(tracks: Sequence[Any], return_lost: bool, det_source: Any = None) -> list[pb.Track]:
    """``TrackOutput`` list -> wire tracks (lost ones only when the stream asked for them). ``det_source``: the
    client's index of each detection the tracker saw (client detections, some dropped or filtered by class), so
    ``detection_index`` always names the client's own detection."""
    out = []
    for t in tracks:
        lost = t.state == "lost"
        if lost and not return_lost:
            continue
        b = t.box
        out.append(
            pb.Track(
                track_id=int(t.track_id),
                box=pb.Box(x1=float(b[0]), y1=float(b[1]), x2=float(b[2]), y2=float(b[3])),
                score=float(t.score),
                class_id=int(t.class_id),
                state=pb.TRACK_STATE_LOST if lost else pb.TRACK_STATE_CONFIRMED,
                detection_index=_source_index(int(t.det_index), det_source),
                age_s=float(t.age_s),
            )
        )
    return out


def _source_index(k: int, det_source: Any) -> int:
    if k < 0 or det_source is None:
        return k
    return int(det_source[k])
