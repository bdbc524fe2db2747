"""Per-stream state: the stream's tracker, its options and its bounded frame queue (latest frame wins).

A session outlives its gRPC call: when the call ends it is *detached* and kept for the resume window, so a
client that reconnects with ``resume`` continues with the same tracker and track IDs.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from server.frames import FrameInput
from tracker_core.errors import InvalidInputError, RoitrackError
from tracker_core.motion import CameraMotion, MotionMode

CAMERA_MOTION_MODES = ("auto", "on", "off")


@dataclass(frozen=True)
class StreamOptions:
    """Per-stream options (validated ranges; ``classes`` None means all classes). ``embedding``: ``roi`` |
    ``reid`` | ``off`` (server/embedding.py); ``appearance`` is false exactly when it is ``off``."""

    classes: tuple[int, ...] | None = None
    conf_threshold: float = 0.25
    iou_threshold: float = 0.45
    appearance: bool = True
    return_lost: bool = False
    camera_motion: str = "auto"  # auto | on | off (tracker_core.motion.MotionMode)
    embedding: str = "roi"

    def __post_init__(self) -> None:
        if self.camera_motion not in CAMERA_MOTION_MODES:
            raise InvalidInputError(f"camera_motion must be auto, on or off, got {self.camera_motion!r}")
        if self.embedding not in ("roi", "reid", "off"):
            raise InvalidInputError(f"embedding must be roi, reid or off, got {self.embedding!r}")
        if not self.appearance:
            object.__setattr__(self, "embedding", "off")
        elif self.embedding == "off":
            object.__setattr__(self, "appearance", False)
        if not 0.01 <= self.conf_threshold <= 0.99:
            raise InvalidInputError(f"conf_threshold must be in [0.01, 0.99], got {self.conf_threshold}")
        if not 0.1 <= self.iou_threshold <= 0.95:
            raise InvalidInputError(f"iou_threshold must be in [0.1, 0.95], got {self.iou_threshold}")
        if self.classes is not None and any(c < 0 or c > 10000 for c in self.classes):
            raise InvalidInputError(f"class ids must be in [0, 10000], got {list(self.classes)}")


def session_key(owner: str, stream_id: str) -> str:
    """``owner/stream_id``: stream ids are per principal ("/" is in neither)."""
    return f"{owner}/{stream_id}" if owner else stream_id


@dataclass
class PendingFrame:
    """A frame waiting in a stream's queue. ``t_arrival``: ``time.perf_counter()`` when it was read."""

    frame_id: int
    timestamp: float
    inp: FrameInput
    t_arrival: float


class StreamSession:
    """State of one stream. Only the stream's own worker touches ``tracker``, one frame at a time."""

    def __init__(
        self, stream_id: str, options: StreamOptions, tracker: Any, queue_size: int = 2, owner: str = ""
    ) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be >= 1")
        self.stream_id = stream_id
        # The principal that opened the stream (its token's name, or its mTLS subject; "" without authentication).
        # Stream ids are per principal: only the owner can list, close, resume or read this stream.
        self.owner = owner
        self.options = options
        self.tracker = tracker
        # Camera motion compensation: the estimator's previous frame and the auto policy's state, this stream's own.
        self.camera_motion = CameraMotion(MotionMode.parse(options.camera_motion))
        self.queue_size = queue_size
        self._queue: deque[PendingFrame] = deque()
        self._wakeup = asyncio.Event()
        self._ended = False  # the client half-closed: drain the queue, then stop
        self.end_error: RoitrackError | None = None  # set to end the call with this error (CloseStream, idle)
        self._answer_queued = False  # with end_error: answer the queued frames first
        self.live = False
        self.detached_at: float | None = None
        self.last_seen = time.monotonic()
        self.dropped_since_response = 0
        self.frames_received = 0
        self.frames_processed = 0
        self.frames_dropped = 0
        self.frames_failed = 0
        self.active_tracks = 0
        self.last_timestamp: float | None = None
        # Held while the tracker updates on the tracking pool: a call cancelled mid-update cannot race the update
        # of a call that resumed the stream.
        self.track_lock = threading.Lock()
        self.uses_client_clock = True
        self.clock_offset = (
            0.0  # added to the server clock (streams without client timestamps), see stream_state
        )
        self.last_frame_id = -1
        # Durable state (server/state_keeper.py): when the last interval snapshot started; whether this call's
        # call-end snapshot is done (True until a call opens with a state store).
        self.snapshot_at: float | None = None
        self.state_closed = True

    @property
    def key(self) -> str:
        """The registry's key: ``owner/stream_id`` (``stream_id`` alone without an owner)."""
        return session_key(self.owner, self.stream_id)

    # ---- queue (event-loop side) ----
    @property
    def queued(self) -> int:
        return len(self._queue)

    def push(self, frame: PendingFrame) -> int:
        """Queue a frame; when the queue is full the oldest waiting frame is dropped. Returns frames dropped."""
        dropped = 0
        while len(self._queue) >= self.queue_size:
            self._queue.popleft()
            dropped += 1
        self._queue.append(frame)
        self.frames_received += 1
        self.frames_dropped += dropped
        self.dropped_since_response += dropped
        self.last_seen = time.monotonic()
        self._wakeup.set()
        return dropped

    def end_input(self) -> None:
        """No more frames will come on this call (the client half-closed or went away)."""
        self._ended = True
        self._wakeup.set()

    def end_with(self, error: RoitrackError, answer_queued: bool = False) -> None:
        """End the live call with ``error``. Queued frames are discarded, or with ``answer_queued`` (the client
        broke the protocol after sending them) answered first: every frame the server took gets its answer."""
        self.end_error = error
        self._answer_queued = answer_queued
        if not answer_queued:
            self._queue.clear()
        self._ended = True
        self._wakeup.set()

    async def next_frame(self) -> PendingFrame | None:
        """The oldest waiting frame; ``None`` when the input ended and the queue is empty, or the call must end."""
        while True:
            if self.end_error is not None and not (self._answer_queued and self._queue):
                return None
            if self._queue:
                return self._queue.popleft()
            if self._ended:
                return None
            self._wakeup.clear()
            await self._wakeup.wait()

    def take_dropped(self) -> int:
        n = self.dropped_since_response
        self.dropped_since_response = 0
        return n

    # ---- life cycle (registry side) ----
    def attach(self, options: StreamOptions) -> None:
        if options.camera_motion != self.options.camera_motion:
            self.camera_motion = CameraMotion(MotionMode.parse(options.camera_motion))
        else:  # a resumed stream may have missed frames: the next estimate starts afresh
            self.camera_motion.estimator.reset()
        self.options = options
        self.live = True
        self.detached_at = None
        self._queue.clear()
        self._ended = False
        self.end_error = None
        self._answer_queued = False
        self._wakeup = asyncio.Event()
        self.last_seen = time.monotonic()

    def detach(self, now: float) -> None:
        self.live = False
        self.detached_at = now
        self._queue.clear()
        self.dropped_since_response = 0

    def idle_s(self, now: float | None = None) -> float:
        return (time.monotonic() if now is None else now) - self.last_seen
