"""One frame of one stream, end to end, without any gRPC: batcher -> tracker (off the event loop) -> result.

Both the gRPC servicer and the in-process :class:`server.pipeline.Pipeline` go through :func:`track_frame`.
"""

from __future__ import annotations

import asyncio
import math
import time
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from server.batcher import Batcher
from server.frames import FrameOutput, detached
from server.metrics import ServerMetrics
from server.session import PendingFrame, StreamSession
from tracker_core.errors import InvalidInputError, RoitrackError
from tracker_core.motion import CameraMotion

MODEL_STAGES = ("decode", "letterbox", "inference", "nms", "roi_align", "encoder", "reid")


@dataclass
class FrameResult:
    """What a stream's client gets for one frame. Times in milliseconds."""

    frame_id: int
    timestamp: float
    tracks: list[Any] = field(default_factory=list)  # TrackOutput
    error_reason: str = ""
    error_message: str = ""
    queue_ms: float = 0.0
    inference_ms: float = 0.0
    tracking_ms: float = 0.0
    total_ms: float = 0.0
    batch_size: int = 0
    dropped: int = 0
    t_arrival: float = 0.0
    camera_motion_ms: float = 0.0  # grey frame (runner) + estimate; not part of tracking_ms
    embedding: str = ""  # the stream's embedding: off | roi | reid
    # Client detections: the client's index of each box the tracker saw (``None``: the detector's boxes), and
    # the client boxes dropped for lying wholly outside the frame.
    det_source: Any = None
    dropped_detections: int = 0


def track_frame(
    tracker: Any, out: FrameOutput, timestamp: float, appearance: bool, warp: Any = None
) -> list[Any]:
    """Update ``tracker`` with one frame's detections (motion only when ``appearance`` is off or there are no
    embeddings) and the camera motion into this frame (``warp [2,3]`` or ``None``). Raises ``InvalidInputError``
    for boxes the tracker refuses."""
    emb = out.embeddings if appearance else None
    return list(
        tracker.update(out.boxes, out.scores, timestamp, classes=out.classes, embeddings=emb, warp=warp)
    )


def camera_warp(motion: CameraMotion | None, out: FrameOutput, timestamp: float) -> tuple[Any, float]:
    """The stream's camera motion into this frame (``None`` when off, static or unknown) and the seconds the
    estimate took."""
    if motion is None or not motion.enabled:
        return None, 0.0
    t0 = time.perf_counter()
    warp = motion.update(out.gray, out.boxes, timestamp)
    return warp, time.perf_counter() - t0


def _locked_track(
    session: StreamSession, out: FrameOutput, timestamp: float, appearance: bool
) -> tuple[list[Any], float]:
    with session.track_lock:
        warp, cm_s = camera_warp(session.camera_motion, out, timestamp)
        return track_frame(session.tracker, out, timestamp, appearance, warp), cm_s


class StreamProcessor:
    """Processes the frames of all sessions: one model batch through ``batcher``, tracking on ``tracking_pool``."""

    def __init__(
        self, batcher: Batcher, tracking_pool: Executor, metrics: ServerMetrics | None = None
    ) -> None:
        self.batcher = batcher
        self.pool = tracking_pool
        self.metrics = metrics

    async def process(self, session: StreamSession, pf: PendingFrame) -> FrameResult:
        res = FrameResult(
            frame_id=pf.frame_id,
            timestamp=pf.timestamp,
            t_arrival=pf.t_arrival,
            embedding=session.options.embedding,
        )
        try:
            out = await self.batcher.submit(pf.inp)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a runner bug: this frame fails, the stream goes on
            out = FrameOutput(error=_internal(exc), error_reason="internal")
        res.batch_size = out.batch_size
        res.det_source, res.dropped_detections = out.det_source, out.dropped_detections
        if out.run_s:
            res.queue_ms = (out.t_batch_start - pf.t_arrival) * 1000.0
            res.inference_ms = out.run_s * 1000.0
        if out.error is None:
            try:
                ts = _stream_time(session, pf)
            except InvalidInputError as exc:
                out.error, out.error_reason = detached(exc), "invalid_timestamp"
        if out.error is None:
            t0 = time.perf_counter()
            cm_s = 0.0
            try:
                res.tracks, cm_s = await asyncio.get_running_loop().run_in_executor(
                    self.pool, _locked_track, session, out, ts, session.options.appearance
                )
            except RoitrackError as exc:
                out.error, out.error_reason = detached(exc), "invalid_detections"
            except Exception as exc:
                out.error, out.error_reason = _internal(exc), "internal"
            res.tracking_ms = (time.perf_counter() - t0 - cm_s) * 1000.0
            if session.camera_motion.enabled:
                res.camera_motion_ms = (out.stage_s.get("camera_motion", 0.0) + cm_s) * 1000.0
        if out.error is not None:
            res.error_reason, res.error_message = out.error_reason or "internal", str(out.error)
            session.frames_failed += 1
        else:
            session.frames_processed += 1
            session.last_frame_id = pf.frame_id
            session.active_tracks = len(res.tracks)
        res.dropped = session.take_dropped()
        res.total_ms = (time.perf_counter() - pf.t_arrival) * 1000.0
        if self.metrics is not None:
            self._observe(session, out, res)
        return res

    def _observe(self, session: StreamSession, out: FrameOutput, res: FrameResult) -> None:
        m = self.metrics
        assert m is not None
        m.stage_latency.labels("queue").observe(res.queue_ms / 1000.0)
        if res.dropped_detections:
            m.client_detections_dropped.inc(res.dropped_detections)
        for stage in MODEL_STAGES:
            if stage in out.stage_s:
                m.stage_latency.labels(stage).observe(out.stage_s[stage])
        if out.embedding == "reid":
            m.reid_crops_per_frame.observe(out.reid_crops)
            if out.reid_crops:
                m.reid_crop_latency.observe(out.reid_s_per_crop)
        if res.error_reason:
            m.frames_failed.labels(res.error_reason).inc()
        else:
            m.stage_latency.labels("tracking").observe(res.tracking_ms / 1000.0)
            if session.camera_motion.enabled:
                m.stage_latency.labels("camera_motion").observe(res.camera_motion_ms / 1000.0)
            m.frames_processed.labels(m.stream_label(session.key)).inc()
            m.set_active_tracks(session.key, session.active_tracks)


MAX_TIMESTAMP_S = 1e12
"""Largest client timestamp magnitude accepted (seconds; ~31,700 years): beyond it the motion model's time steps
lose their meaning."""


def _stream_time(session: StreamSession, pf: PendingFrame) -> float:
    """The frame's time for the motion model. One rule, per stream: its first accepted frame picks the clock -
    timestamp 0: the server's arrival times, for good; a positive capture time: the client's clock, for good - and
    every later frame must keep to it. Refused, each failing only its own frame and never recorded as the stream's
    last time: a NaN / infinite / huge timestamp, a negative one (capture times are >= 0; it used to switch the
    stream to the server's clock silently), a time earlier than the stream's previous one (0 included), and a
    non-zero timestamp on a stream that runs on the server's clock."""
    t = pf.timestamp
    if not math.isfinite(t) or abs(t) > MAX_TIMESTAMP_S:
        raise InvalidInputError(
            f"frame {pf.frame_id}: timestamp {t!r} is not a finite number of seconds within "
            f"+-{MAX_TIMESTAMP_S:g} (send 0 on every frame to use the server's clock)"
        )
    if t < 0:
        raise InvalidInputError(
            f"frame {pf.frame_id}: timestamp {t:g} s is negative (capture times are >= 0 s; send 0 on every frame "
            "to use the server's clock)"
        )
    if session.last_timestamp is None:
        session.uses_client_clock = t > 0
    elif not session.uses_client_clock and t != 0:
        raise InvalidInputError(
            f"frame {pf.frame_id}: timestamp {t:g} s on a stream that runs on the server's clock (its first frame "
            "had timestamp 0): send 0 on every frame, or open a new stream to send capture times"
        )
    ts = t if session.uses_client_clock else pf.t_arrival + session.clock_offset
    last = session.last_timestamp
    if last is not None and ts < last:
        raise InvalidInputError(
            f"frame {pf.frame_id}: timestamp {ts:.6f} s is earlier than the stream's previous {last:.6f} s "
            "(timestamps must not go back; send 0 on every frame to use the server's clock)"
        )
    session.last_timestamp = ts
    return ts


class InternalError(RoitrackError):
    """An unexpected failure while processing one frame (the message hides internals)."""


def _internal(exc: BaseException) -> InternalError:
    return InternalError(f"internal error while processing the frame ({type(exc).__name__})")
