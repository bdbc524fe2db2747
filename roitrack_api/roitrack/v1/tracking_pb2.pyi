from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Embedding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EMBEDDING_UNSPECIFIED: _ClassVar[Embedding]
    EMBEDDING_OFF: _ClassVar[Embedding]
    EMBEDDING_ROI: _ClassVar[Embedding]
    EMBEDDING_REID: _ClassVar[Embedding]

class CameraMotion(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CAMERA_MOTION_UNSPECIFIED: _ClassVar[CameraMotion]
    CAMERA_MOTION_AUTO: _ClassVar[CameraMotion]
    CAMERA_MOTION_ON: _ClassVar[CameraMotion]
    CAMERA_MOTION_OFF: _ClassVar[CameraMotion]

class PixelFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PIXEL_FORMAT_UNSPECIFIED: _ClassVar[PixelFormat]
    PIXEL_FORMAT_RGB8: _ClassVar[PixelFormat]
    PIXEL_FORMAT_BGR8: _ClassVar[PixelFormat]
    PIXEL_FORMAT_GRAY8: _ClassVar[PixelFormat]

class TrackState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRACK_STATE_UNSPECIFIED: _ClassVar[TrackState]
    TRACK_STATE_CONFIRMED: _ClassVar[TrackState]
    TRACK_STATE_LOST: _ClassVar[TrackState]

class FrameErrorCode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FRAME_ERROR_CODE_UNSPECIFIED: _ClassVar[FrameErrorCode]
    FRAME_ERROR_CODE_INVALID_IMAGE: _ClassVar[FrameErrorCode]
    FRAME_ERROR_CODE_IMAGE_TOO_LARGE: _ClassVar[FrameErrorCode]
    FRAME_ERROR_CODE_INVALID_DETECTIONS: _ClassVar[FrameErrorCode]
    FRAME_ERROR_CODE_INTERNAL: _ClassVar[FrameErrorCode]
    FRAME_ERROR_CODE_INVALID_TIMESTAMP: _ClassVar[FrameErrorCode]
    FRAME_ERROR_CODE_TOO_MANY_DETECTIONS: _ClassVar[FrameErrorCode]
EMBEDDING_UNSPECIFIED: Embedding
EMBEDDING_OFF: Embedding
EMBEDDING_ROI: Embedding
EMBEDDING_REID: Embedding
CAMERA_MOTION_UNSPECIFIED: CameraMotion
CAMERA_MOTION_AUTO: CameraMotion
CAMERA_MOTION_ON: CameraMotion
CAMERA_MOTION_OFF: CameraMotion
PIXEL_FORMAT_UNSPECIFIED: PixelFormat
PIXEL_FORMAT_RGB8: PixelFormat
PIXEL_FORMAT_BGR8: PixelFormat
PIXEL_FORMAT_GRAY8: PixelFormat
TRACK_STATE_UNSPECIFIED: TrackState
TRACK_STATE_CONFIRMED: TrackState
TRACK_STATE_LOST: TrackState
FRAME_ERROR_CODE_UNSPECIFIED: FrameErrorCode
FRAME_ERROR_CODE_INVALID_IMAGE: FrameErrorCode
FRAME_ERROR_CODE_IMAGE_TOO_LARGE: FrameErrorCode
FRAME_ERROR_CODE_INVALID_DETECTIONS: FrameErrorCode
FRAME_ERROR_CODE_INTERNAL: FrameErrorCode
FRAME_ERROR_CODE_INVALID_TIMESTAMP: FrameErrorCode
FRAME_ERROR_CODE_TOO_MANY_DETECTIONS: FrameErrorCode

class TrackRequest(_message.Message):
    __slots__ = ("open", "frame")
    OPEN_FIELD_NUMBER: _ClassVar[int]
    FRAME_FIELD_NUMBER: _ClassVar[int]
    open: OpenStream
    frame: Frame
    def __init__(self, open: _Optional[_Union[OpenStream, _Mapping]] = ..., frame: _Optional[_Union[Frame, _Mapping]] = ...) -> None: ...

class OpenStream(_message.Message):
    __slots__ = ("stream_id", "resume", "options")
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    RESUME_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    stream_id: str
    resume: bool
    options: StreamOptions
    def __init__(self, stream_id: _Optional[str] = ..., resume: _Optional[bool] = ..., options: _Optional[_Union[StreamOptions, _Mapping]] = ...) -> None: ...

class StreamOptions(_message.Message):
    __slots__ = ("classes", "conf_threshold", "iou_threshold", "appearance", "return_lost", "camera_motion", "embedding")
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    CONF_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    IOU_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    APPEARANCE_FIELD_NUMBER: _ClassVar[int]
    RETURN_LOST_FIELD_NUMBER: _ClassVar[int]
    CAMERA_MOTION_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    classes: _containers.RepeatedScalarFieldContainer[int]
    conf_threshold: float
    iou_threshold: float
    appearance: bool
    return_lost: bool
    camera_motion: CameraMotion
    embedding: Embedding
    def __init__(self, classes: _Optional[_Iterable[int]] = ..., conf_threshold: _Optional[float] = ..., iou_threshold: _Optional[float] = ..., appearance: _Optional[bool] = ..., return_lost: _Optional[bool] = ..., camera_motion: _Optional[_Union[CameraMotion, str]] = ..., embedding: _Optional[_Union[Embedding, str]] = ...) -> None: ...

class RawImage(_message.Message):
    __slots__ = ("width", "height", "format", "data")
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    width: int
    height: int
    format: PixelFormat
    data: bytes
    def __init__(self, width: _Optional[int] = ..., height: _Optional[int] = ..., format: _Optional[_Union[PixelFormat, str]] = ..., data: _Optional[bytes] = ...) -> None: ...

class Box(_message.Message):
    __slots__ = ("x1", "y1", "x2", "y2")
    X1_FIELD_NUMBER: _ClassVar[int]
    Y1_FIELD_NUMBER: _ClassVar[int]
    X2_FIELD_NUMBER: _ClassVar[int]
    Y2_FIELD_NUMBER: _ClassVar[int]
    x1: float
    y1: float
    x2: float
    y2: float
    def __init__(self, x1: _Optional[float] = ..., y1: _Optional[float] = ..., x2: _Optional[float] = ..., y2: _Optional[float] = ...) -> None: ...

class Detection(_message.Message):
    __slots__ = ("box", "score", "class_id")
    BOX_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    CLASS_ID_FIELD_NUMBER: _ClassVar[int]
    box: Box
    score: float
    class_id: int
    def __init__(self, box: _Optional[_Union[Box, _Mapping]] = ..., score: _Optional[float] = ..., class_id: _Optional[int] = ...) -> None: ...

class Frame(_message.Message):
    __slots__ = ("frame_id", "timestamp", "encoded", "raw", "use_client_detections", "detections")
    FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    ENCODED_FIELD_NUMBER: _ClassVar[int]
    RAW_FIELD_NUMBER: _ClassVar[int]
    USE_CLIENT_DETECTIONS_FIELD_NUMBER: _ClassVar[int]
    DETECTIONS_FIELD_NUMBER: _ClassVar[int]
    frame_id: int
    timestamp: float
    encoded: bytes
    raw: RawImage
    use_client_detections: bool
    detections: _containers.RepeatedCompositeFieldContainer[Detection]
    def __init__(self, frame_id: _Optional[int] = ..., timestamp: _Optional[float] = ..., encoded: _Optional[bytes] = ..., raw: _Optional[_Union[RawImage, _Mapping]] = ..., use_client_detections: _Optional[bool] = ..., detections: _Optional[_Iterable[_Union[Detection, _Mapping]]] = ...) -> None: ...

class Track(_message.Message):
    __slots__ = ("track_id", "box", "score", "class_id", "state", "detection_index", "age_s")
    TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    CLASS_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    DETECTION_INDEX_FIELD_NUMBER: _ClassVar[int]
    AGE_S_FIELD_NUMBER: _ClassVar[int]
    track_id: int
    box: Box
    score: float
    class_id: int
    state: TrackState
    detection_index: int
    age_s: float
    def __init__(self, track_id: _Optional[int] = ..., box: _Optional[_Union[Box, _Mapping]] = ..., score: _Optional[float] = ..., class_id: _Optional[int] = ..., state: _Optional[_Union[TrackState, str]] = ..., detection_index: _Optional[int] = ..., age_s: _Optional[float] = ...) -> None: ...

class Timings(_message.Message):
    __slots__ = ("queue_ms", "inference_ms", "tracking_ms", "total_ms", "batch_size", "camera_motion_ms")
    QUEUE_MS_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_MS_FIELD_NUMBER: _ClassVar[int]
    TRACKING_MS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MS_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    CAMERA_MOTION_MS_FIELD_NUMBER: _ClassVar[int]
    queue_ms: float
    inference_ms: float
    tracking_ms: float
    total_ms: float
    batch_size: int
    camera_motion_ms: float
    def __init__(self, queue_ms: _Optional[float] = ..., inference_ms: _Optional[float] = ..., tracking_ms: _Optional[float] = ..., total_ms: _Optional[float] = ..., batch_size: _Optional[int] = ..., camera_motion_ms: _Optional[float] = ...) -> None: ...

class FrameError(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: FrameErrorCode
    message: str
    def __init__(self, code: _Optional[_Union[FrameErrorCode, str]] = ..., message: _Optional[str] = ...) -> None: ...

class TrackResponse(_message.Message):
    __slots__ = ("frame_id", "timestamp", "tracks", "timings", "dropped_frames", "error", "embedding", "dropped_detections", "draining")
    FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    TRACKS_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FRAMES_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    DROPPED_DETECTIONS_FIELD_NUMBER: _ClassVar[int]
    DRAINING_FIELD_NUMBER: _ClassVar[int]
    frame_id: int
    timestamp: float
    tracks: _containers.RepeatedCompositeFieldContainer[Track]
    timings: Timings
    dropped_frames: int
    error: FrameError
    embedding: Embedding
    dropped_detections: int
    draining: bool
    def __init__(self, frame_id: _Optional[int] = ..., timestamp: _Optional[float] = ..., tracks: _Optional[_Iterable[_Union[Track, _Mapping]]] = ..., timings: _Optional[_Union[Timings, _Mapping]] = ..., dropped_frames: _Optional[int] = ..., error: _Optional[_Union[FrameError, _Mapping]] = ..., embedding: _Optional[_Union[Embedding, str]] = ..., dropped_detections: _Optional[int] = ..., draining: _Optional[bool] = ...) -> None: ...

class ListStreamsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StreamInfo(_message.Message):
    __slots__ = ("stream_id", "live", "frames_processed", "frames_dropped", "frames_failed", "active_tracks", "idle_s")
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    LIVE_FIELD_NUMBER: _ClassVar[int]
    FRAMES_PROCESSED_FIELD_NUMBER: _ClassVar[int]
    FRAMES_DROPPED_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FAILED_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_TRACKS_FIELD_NUMBER: _ClassVar[int]
    IDLE_S_FIELD_NUMBER: _ClassVar[int]
    stream_id: str
    live: bool
    frames_processed: int
    frames_dropped: int
    frames_failed: int
    active_tracks: int
    idle_s: float
    def __init__(self, stream_id: _Optional[str] = ..., live: _Optional[bool] = ..., frames_processed: _Optional[int] = ..., frames_dropped: _Optional[int] = ..., frames_failed: _Optional[int] = ..., active_tracks: _Optional[int] = ..., idle_s: _Optional[float] = ...) -> None: ...

class ListStreamsResponse(_message.Message):
    __slots__ = ("streams",)
    STREAMS_FIELD_NUMBER: _ClassVar[int]
    streams: _containers.RepeatedCompositeFieldContainer[StreamInfo]
    def __init__(self, streams: _Optional[_Iterable[_Union[StreamInfo, _Mapping]]] = ...) -> None: ...

class CloseStreamRequest(_message.Message):
    __slots__ = ("stream_id",)
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    stream_id: str
    def __init__(self, stream_id: _Optional[str] = ...) -> None: ...

class CloseStreamResponse(_message.Message):
    __slots__ = ("was_live",)
    WAS_LIVE_FIELD_NUMBER: _ClassVar[int]
    was_live: bool
    def __init__(self, was_live: _Optional[bool] = ...) -> None: ...

class GetInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Limits(_message.Message):
    __slots__ = ("max_streams", "max_pixels", "max_message_bytes", "max_batch", "max_wait_ms", "queue_size", "resume_window_s", "idle_timeout_s", "max_detections")
    MAX_STREAMS_FIELD_NUMBER: _ClassVar[int]
    MAX_PIXELS_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_FIELD_NUMBER: _ClassVar[int]
    MAX_WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    QUEUE_SIZE_FIELD_NUMBER: _ClassVar[int]
    RESUME_WINDOW_S_FIELD_NUMBER: _ClassVar[int]
    IDLE_TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    MAX_DETECTIONS_FIELD_NUMBER: _ClassVar[int]
    max_streams: int
    max_pixels: int
    max_message_bytes: int
    max_batch: int
    max_wait_ms: float
    queue_size: int
    resume_window_s: float
    idle_timeout_s: float
    max_detections: int
    def __init__(self, max_streams: _Optional[int] = ..., max_pixels: _Optional[int] = ..., max_message_bytes: _Optional[int] = ..., max_batch: _Optional[int] = ..., max_wait_ms: _Optional[float] = ..., queue_size: _Optional[int] = ..., resume_window_s: _Optional[float] = ..., idle_timeout_s: _Optional[float] = ..., max_detections: _Optional[int] = ...) -> None: ...

class GetInfoResponse(_message.Message):
    __slots__ = ("version", "detector_arch", "weights_sha256", "encoder_sha256", "device", "input_size", "appearance_available", "batching", "limits", "class_names", "reid_model_sha256", "embeddings", "default_embedding")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DETECTOR_ARCH_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_SHA256_FIELD_NUMBER: _ClassVar[int]
    ENCODER_SHA256_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    INPUT_SIZE_FIELD_NUMBER: _ClassVar[int]
    APPEARANCE_AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    BATCHING_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAMES_FIELD_NUMBER: _ClassVar[int]
    REID_MODEL_SHA256_FIELD_NUMBER: _ClassVar[int]
    EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    version: str
    detector_arch: str
    weights_sha256: str
    encoder_sha256: str
    device: str
    input_size: int
    appearance_available: bool
    batching: bool
    limits: Limits
    class_names: _containers.RepeatedScalarFieldContainer[str]
    reid_model_sha256: str
    embeddings: _containers.RepeatedScalarFieldContainer[Embedding]
    default_embedding: Embedding
    def __init__(self, version: _Optional[str] = ..., detector_arch: _Optional[str] = ..., weights_sha256: _Optional[str] = ..., encoder_sha256: _Optional[str] = ..., device: _Optional[str] = ..., input_size: _Optional[int] = ..., appearance_available: _Optional[bool] = ..., batching: _Optional[bool] = ..., limits: _Optional[_Union[Limits, _Mapping]] = ..., class_names: _Optional[_Iterable[str]] = ..., reid_model_sha256: _Optional[str] = ..., embeddings: _Optional[_Iterable[_Union[Embedding, str]]] = ..., default_embedding: _Optional[_Union[Embedding, str]] = ...) -> None: ...
