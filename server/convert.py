"""Wire messages (``roitrack.v1``) <-> the server's plain data. The only module that knows both sides."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from roitrack_api.roitrack.v1 import tracking_pb2 as pb
from server.embedding import check_available
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


# wire Embedding <-> the server's names (server/embedding.py)
EMBEDDING_NAMES = {pb.EMBEDDING_OFF: "off", pb.EMBEDDING_ROI: "roi", pb.EMBEDDING_REID: "reid"}
EMBEDDING_CODES = {v: k for k, v in EMBEDDING_NAMES.items()}


def embedding_from_pb(msg: pb.StreamOptions, default: str, available: Sequence[str]) -> str:
    """The stream's embedding: its choice, else ``off`` for the legacy ``appearance: false``, else ``default``.
    ``InvalidInputError`` for an unknown value or one contradicting ``appearance``;
    ``EmbeddingUnavailableError`` (FAILED_PRECONDITION) for a choice the server has no model for."""
    legacy = bool(msg.appearance) if msg.HasField("appearance") else None
    if msg.embedding == pb.EMBEDDING_UNSPECIFIED:
        # legacy clients: `appearance: false` = motion only; true or unset = the server's default
        return "off" if legacy is False else default
    name = EMBEDDING_NAMES.get(msg.embedding)
    if name is None:
        raise InvalidInputError(
            f"unknown embedding {msg.embedding}; use EMBEDDING_OFF, EMBEDDING_ROI or EMBEDDING_REID"
        )
    if legacy is not None and legacy != (name != "off"):
        raise InvalidInputError(
            f"options contradict each other: appearance {str(legacy).lower()} with embedding {name}"
        )
    return check_available(name, available)


_CAMERA_MOTION: dict[int, str] = {
    int(pb.CAMERA_MOTION_AUTO): "auto",
    int(pb.CAMERA_MOTION_ON): "on",
    int(pb.CAMERA_MOTION_OFF): "off",
}


def options_from_pb(
    msg: pb.StreamOptions,
    conf_default: float,
    iou_default: float,
    camera_motion_default: str = "auto",
    embedding_default: str = "roi",
    embeddings: Sequence[str] = ("off", "roi", "reid"),
) -> StreamOptions:
    """Per-stream options; out-of-range values raise ``InvalidInputError``, an embedding the server cannot serve
    ``EmbeddingUnavailableError``. ``embedding_default``: the server's resolved default; ``embeddings``: what it
    serves."""
    embedding = embedding_from_pb(msg, embedding_default, embeddings)
    cm = int(msg.camera_motion)
    if cm != pb.CAMERA_MOTION_UNSPECIFIED and cm not in _CAMERA_MOTION:
        raise InvalidInputError(f"unknown camera_motion {cm}; use CAMERA_MOTION_AUTO, _ON or _OFF")
    return StreamOptions(
        classes=tuple(int(c) for c in msg.classes) or None,
        conf_threshold=float(msg.conf_threshold) if msg.HasField("conf_threshold") else conf_default,
        iou_threshold=float(msg.iou_threshold) if msg.HasField("iou_threshold") else iou_default,
        appearance=embedding != "off",
        return_lost=bool(msg.return_lost),
        embedding=embedding,
        camera_motion=_CAMERA_MOTION.get(cm, camera_motion_default),
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
        embedding=options.embedding,
        camera_motion=options.camera_motion != "off",
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
