"""The camera client: one bidirectional ``Track`` call per stream, with pacing, an in-flight limit, reconnection
with exponential backoff, and resumption of the stream's track IDs after a reconnect.

:class:`StreamClient` is plain asyncio and knows nothing of the CLI; ``roitrack stream``, ``roitrack loadgen``
and ``roitrack demo`` drive it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import cv2
import grpc
import numpy as np

from client.connection import KEEPALIVE_S, KEEPALIVE_TIMEOUT_S, aio_channel, stream_metadata
from client.health import validate_target
from client.sources import SourceFrame
from roitrack_api.roitrack.v1 import tracking_pb2 as pb
from roitrack_api.roitrack.v1 import tracking_pb2_grpc as pb_grpc
from tracker_core.errors import (
    AlreadyExistsError,
    InvalidInputError,
    NotFoundError,
    ResourceExhaustedError,
    RoitrackError,
    UnauthenticatedError,
    UnavailableError,
)

# Codes after which the client reconnects (with backoff) and resumes, whoever made them.
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
# Codes gRPC core gives a call whose connection or stream broke underneath it (a reset stream, a proxy that
# dropped the connection mid-message, a write that raced the call's end: grpc/grpc#36066, where the Python client
# reports INTERNAL "Internal error from Core" in place of the server's own status). They mean "the connection
# broke" only when the server did not send them: see :func:`connection_broke`.
CORE_BROKEN = (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)
# Trailing metadata a roitrack server puts on every status it sends on purpose (server/status_map.py).
STATUS_ORIGIN_KEY = "roitrack-status-origin"
_REFUSAL_TYPES: dict[grpc.StatusCode, type[RoitrackError]] = {
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidInputError,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExistsError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
}


class StreamRefusedError(RoitrackError):
    """The server refused or ended the call; ``code`` is the gRPC status code name."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.details = message


def server_sent(exc: grpc.aio.AioRpcError) -> bool:
    """The status came from a roitrack server on purpose (its trailing metadata carries the server's marker), not
    from gRPC core, a proxy or a load balancer."""
    return any(k == STATUS_ORIGIN_KEY and v == "server" for k, v in exc.trailing_metadata() or ())


def connection_broke(exc: grpc.aio.AioRpcError) -> bool:
    """Reconnect (and fail over) after this status: UNAVAILABLE / CANCELLED whoever made them, and INTERNAL /
    UNKNOWN that the server did not send (made by gRPC core for a broken connection or stream). A status the server
    sent on purpose with any other code is a refusal."""
    code = exc.code()
    return code in RETRYABLE or (code in CORE_BROKEN and not server_sent(exc))


def refusal(exc: grpc.aio.AioRpcError) -> RoitrackError:
    """A named error whose message starts with the gRPC status name (``UNAUTHENTICATED: invalid bearer token``)."""
    code = exc.code()
    cls = _REFUSAL_TYPES.get(code)
    details = exc.details() or ""
    if code in CORE_BROKEN and not server_sent(exc):
        details += " (made by gRPC itself, not sent by the server: the connection or stream broke)"
    err = StreamRefusedError(code.name, details)
    if cls is None:
        return err
    named = cls(str(err))
    named.code = code.name  # type: ignore[attr-defined]
    return named


@dataclass(frozen=True)
class StreamConfig:
    server: str  # HOST:PORT, or a comma-separated failover list tried in turn on reconnects
    stream_id: str
    token: str | None = None
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_server_name: str | None = None
    fps: float = 0.0  # pace sending at this rate; 0: as fast as max_in_flight allows
    max_in_flight: int = 2
    # Never let the server drop a frame (file sources: every frame must be tracked, as `roitrack eval-mot` does):
    # in-flight frames are capped at the server's per-stream queue size (GetInfo), so "latest frame wins" never
    # triggers whatever the pacing.
    lossless: bool = False
    jpeg_quality: int = 90
    raw: bool = False  # send raw BGR pixels instead of JPEG
    send_detections: bool = False  # send the source's detections (the server then tracks those)
    classes: tuple[int, ...] = ()
    conf_threshold: float | None = None
    iou_threshold: float | None = None
    appearance: bool | None = None
    # off | roi | reid: the stream's appearance embedding (None: the server's default). See server/embedding.py.
    embedding: str | None = None
    return_lost: bool = False
    camera_motion: str | None = None  # auto | on | off; None: the server's default
    resume: bool = False  # resume on the first connect too
    reconnect: bool = True
    max_retries: int = 6
    backoff_s: float = 0.25
    backoff_max_s: float = 5.0
    keepalive_s: float = (
        KEEPALIVE_S  # ping the server this often; no answer within keepalive_timeout_s: reconnect
    )
    keepalive_timeout_s: float = KEEPALIVE_TIMEOUT_S

    def __post_init__(self) -> None:
        if self.max_in_flight < 1:
            raise InvalidInputError(f"--max-in-flight must be >= 1, got {self.max_in_flight}")
        if self.fps < 0:
            raise InvalidInputError(f"--fps must be >= 0, got {self.fps}")
        if not 1 <= self.jpeg_quality <= 100:
            raise InvalidInputError(f"JPEG quality must be 1..100, got {self.jpeg_quality}")
        for target in self.servers:
            validate_target(target)
        if self.embedding is not None and self.embedding not in EMBEDDING_CODES:
            raise InvalidInputError(f"--embedding must be roi, reid or off, got {self.embedding!r}")

    @property
    def servers(self) -> list[str]:
        """The failover list (one entry for a plain ``HOST:PORT``)."""
        return [t.strip() for t in self.server.split(",")] if "," in self.server else [self.server]


@dataclass
class StreamStats:
    sent: int = 0
    answered: int = 0
    dropped: int = 0  # reported by the server (backpressure)
    errors: int = 0  # per-frame errors
    lost: int = 0  # in flight when a call broke
    reconnects: int = 0
    resumed: bool = False
    embedding: str = ""  # what the server says the stream tracks with (roitrack-embedding): off | roi | reid
    id_restarts: int = 0  # the server restarted track IDs (no resume); later IDs were offset to stay unique
    latencies_ms: list[float] = field(default_factory=list)
    t_start: float = field(default_factory=time.perf_counter)
    t_end: float = 0.0
    track_ids: set[int] = field(default_factory=set)
    error_messages: list[str] = field(default_factory=list)
    # Why each call broke before a reconnect ("CODE: details", the first 20): the server's word or gRPC core's.
    reconnect_reasons: list[str] = field(default_factory=list)

    @property
    def elapsed_s(self) -> float:
        return (self.t_end or time.perf_counter()) - self.t_start

    @property
    def fps(self) -> float:
        return self.answered / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")

    def summary(self) -> dict[str, float | int | str]:
        return {
            "sent": self.sent,
            "answered": self.answered,
            "dropped": self.dropped,
            "errors": self.errors,
            "lost": self.lost,
            "reconnects": self.reconnects,
            "id_restarts": self.id_restarts,
            "fps": round(self.fps, 2),
            "p50_ms": round(self.percentile(50), 2),
            "p95_ms": round(self.percentile(95), 2),
            "p99_ms": round(self.percentile(99), 2),
            "tracks": len(self.track_ids),
            "embedding": self.embedding,
        }


EMBEDDING_CODES = {"off": pb.EMBEDDING_OFF, "roi": pb.EMBEDDING_ROI, "reid": pb.EMBEDDING_REID}

ResultCallback = Callable[[SourceFrame, pb.TrackResponse, float], None]


def build_open(cfg: StreamConfig, resume: bool) -> pb.TrackRequest:
    opts = pb.StreamOptions(classes=list(cfg.classes), return_lost=cfg.return_lost)
    if cfg.conf_threshold is not None:
        opts.conf_threshold = cfg.conf_threshold
    if cfg.iou_threshold is not None:
        opts.iou_threshold = cfg.iou_threshold
    if cfg.appearance is not None:
        opts.appearance = cfg.appearance
    if cfg.embedding is not None:
        opts.embedding = EMBEDDING_CODES[cfg.embedding]
    if cfg.camera_motion is not None:
        opts.camera_motion = {
            "auto": pb.CAMERA_MOTION_AUTO,
            "on": pb.CAMERA_MOTION_ON,
            "off": pb.CAMERA_MOTION_OFF,
        }[cfg.camera_motion]
    return pb.TrackRequest(open=pb.OpenStream(stream_id=cfg.stream_id, resume=resume, options=opts))


def build_frame(cfg: StreamConfig, frame: SourceFrame) -> pb.TrackRequest:
    """The wire frame: the source's own JPEG/PNG bytes when it has them, else a fresh JPEG (or raw BGR)."""
    msg = pb.Frame(frame_id=frame.index, timestamp=frame.timestamp)
    if cfg.raw:
        h, w = frame.bgr.shape[:2]
        msg.raw.CopyFrom(
            pb.RawImage(
                width=w, height=h, format=pb.PIXEL_FORMAT_BGR8, data=np.ascontiguousarray(frame.bgr).tobytes()
            )
        )
    elif frame.encoded is not None:
        msg.encoded = frame.encoded
    else:
        ok, buf = cv2.imencode(".jpg", frame.bgr, [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality])
        if not ok:
            raise InvalidInputError(f"cannot JPEG-encode frame {frame.index}")
        msg.encoded = buf.tobytes()
    if cfg.send_detections and frame.detections is not None:
        boxes, scores, classes = frame.detections
        msg.use_client_detections = True
        msg.detections.extend(
            pb.Detection(box=pb.Box(x1=b[0], y1=b[1], x2=b[2], y2=b[3]), score=s, class_id=c)
            for b, s, c in zip(boxes.tolist(), scores.tolist(), classes.tolist(), strict=True)
        )
    return pb.TrackRequest(frame=msg)


class StreamClient:
    def __init__(self, cfg: StreamConfig, on_result: ResultCallback | None = None) -> None:
        self.cfg = cfg
        self.on_result = on_result
        self.stats = StreamStats()
        self.max_in_flight = cfg.max_in_flight
        self.notices: list[str] = []  # things the user should know (printed by `roitrack stream`)
        self._fitted = False
        # Track IDs are unique within one run's output: when a reconnect is not resumed (the server restarted or
        # forgot the stream) the server starts again at 1, so later IDs are shifted past every ID seen so far.
        self._calls = 0
        self._id_offset = 0
        self._max_id = 0
        # A frame read from the source but not yet handed to a call: a call that breaks in between leaves it
        # here and the next call sends it first, so a reconnect never skips a frame unseen (sent nor lost).
        self._carry: tuple[SourceFrame, pb.TrackRequest] | None = None
        # Frames a broken call left unanswered: the next call re-sends those the server's tracker has not
        # processed yet (ids above its `roitrack-last-frame-id`); the others count as lost answers.
        self._unanswered: list[SourceFrame] = []
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"roitrack-src-{cfg.stream_id}")
        self._accepted = False  # the current call's open was accepted (it got roitrack-resumed)

    async def run(self, frames: Iterable[SourceFrame]) -> StreamStats:
        """Stream every frame of ``frames``; returns when they are all answered (or dropped). Raises a named error
        (message ``CODE: details``) when the server refuses the call or reconnecting fails."""
        cfg = self.cfg
        it = iter(frames)
        resume = cfg.resume
        attempt = 0
        md = stream_metadata(cfg.token, cfg.stream_id)
        servers = cfg.servers
        channels: dict[int, grpc.aio.Channel] = {}
        here = 0

        def stub_for(i: int) -> pb_grpc.TrackingStub:
            if i not in channels:
                channels[i] = aio_channel(
                    servers[i],
                    tls_ca=cfg.tls_ca,
                    tls_cert=cfg.tls_cert,
                    tls_key=cfg.tls_key,
                    tls_server_name=cfg.tls_server_name,
                    keepalive_s=cfg.keepalive_s,
                    keepalive_timeout_s=cfg.keepalive_timeout_s,
                )
            return pb_grpc.TrackingStub(channels[i])

        try:
            while True:
                answered_before = self.stats.answered
                try:
                    stub = stub_for(here)
                    if cfg.lossless and not self._fitted:
                        await self._fit_in_flight(stub, md)
                    if await self._one_call(stub, it, resume, md):
                        return self.stats
                except grpc.aio.AioRpcError as exc:
                    broke = connection_broke(exc)
                    if broke and exc.code() in CORE_BROKEN and not self._accepted:
                        # A refused call whose open raced the refusal surfaces as a core INTERNAL: ask the server
                        # with a call that cannot race (unary), and report its own word when it refuses us.
                        word = await self._server_word(stub, md)
                        if word is not None and not connection_broke(word):
                            raise refusal(word) from None
                    retry = broke or (resume and exc.code() == grpc.StatusCode.ALREADY_EXISTS and attempt > 0)
                    if not cfg.reconnect or not retry or attempt >= cfg.max_retries:
                        raise refusal(exc) from None
                    if len(self.stats.reconnect_reasons) < 20:
                        origin = "server" if server_sent(exc) else "grpc"
                        self.stats.reconnect_reasons.append(f"{exc.code().name}: {exc.details()} ({origin})")
                if self.stats.answered > answered_before:
                    attempt = 0
                attempt += 1
                self.stats.reconnects += 1
                if len(servers) > 1:  # fail over to the next server of the list (the stream resumes there)
                    here = (here + 1) % len(servers)
                    if attempt <= len(servers) - 1:
                        resume = True
                        continue
                await asyncio.sleep(min(cfg.backoff_s * 2 ** (attempt - 1), cfg.backoff_max_s))
                resume = True
        finally:
            self.lost_on_exit()
            self.stats.t_end = time.perf_counter()
            self._io.shutdown(wait=False, cancel_futures=True)
            for ch in channels.values():
                with contextlib.suppress(Exception):
                    await ch.close()

    @staticmethod
    async def _server_word(
        stub: pb_grpc.TrackingStub, md: tuple[tuple[str, str], ...]
    ) -> grpc.aio.AioRpcError | None:
        """The server's refusal of this client (bad token, ...) as a unary call gets it, or ``None``."""
        try:
            await stub.GetInfo(pb.GetInfoRequest(), metadata=md, timeout=10.0)
        except grpc.aio.AioRpcError as exc:
            return exc if server_sent(exc) else None
        return None

    async def _fit_in_flight(self, stub: pb_grpc.TrackingStub, md: tuple[tuple[str, str], ...]) -> None:
        """Cap in-flight frames at the server's queue size so it never has to drop one (``lossless``)."""
        info = await stub.GetInfo(pb.GetInfoRequest(), metadata=md, timeout=30.0)
        queue = int(info.limits.queue_size)
        if 0 < queue < self.max_in_flight:
            self.notices.append(
                f"--max-in-flight {self.max_in_flight} lowered to the server's queue size {queue}: "
                "a file source must not lose frames to the server's latest-frame-wins queue"
            )
            self.max_in_flight = queue
        self._fitted = True

    def _on_open(self, resumed: bool) -> None:
        """A call was accepted; a later call the server did not resume restarts its IDs: offset them."""
        if self._calls > 0 and not resumed and self._max_id > 0:
            self._id_offset = self._max_id
            self.stats.id_restarts += 1
            self.notices.append(
                f"the server did not resume stream {self.cfg.stream_id!r} after reconnect {self.stats.reconnects} "
                f"(it restarted, or the resume window passed): its new tracks restart at ID 1, so they are written "
                f"as ID + {self._id_offset} to keep every ID unique in this output"
            )
        self._calls += 1

    def lost_on_exit(self) -> None:
        """Frames still waiting to be re-sent when the client gives up count as lost."""
        self.stats.lost += len(self._unanswered)
        self._unanswered = []

    def _renumber(self, resp: pb.TrackResponse) -> None:
        for t in resp.tracks:
            t.track_id += self._id_offset
            self._max_id = max(self._max_id, t.track_id)

    def _produce(self, it: Iterator[SourceFrame]) -> tuple[SourceFrame, pb.TrackRequest] | None:
        if self._carry is not None:
            return self._carry
        frame = next(it, None)
        if frame is None:
            return None
        self._carry = (frame, build_frame(self.cfg, frame))
        return self._carry

    async def _one_call(
        self,
        stub: pb_grpc.TrackingStub,
        it: Iterator[SourceFrame],
        resume: bool,
        md: tuple[tuple[str, str], ...],
    ) -> bool:
        """One Track call. True when the source is exhausted and every frame was answered or dropped."""
        cfg = self.cfg
        loop = asyncio.get_running_loop()
        call = stub.Track(metadata=md)
        pending: OrderedDict[int, tuple[SourceFrame, float]] = OrderedDict()
        room = asyncio.Condition()
        exhausted = False
        # The server is draining (it said so): write nothing more and half-close, so no write races the call's
        # end; the frames in flight were not processed and go to the next call.
        draining = False
        self._accepted = False

        def has_room() -> bool:
            return draining or len(pending) < self.max_in_flight

        async def writer() -> None:
            # InvalidStateError / AioRpcError: the call already ended; the reader reports its status.
            with contextlib.suppress(asyncio.InvalidStateError, grpc.aio.AioRpcError):
                await write_all()

        async def write_all() -> None:
            nonlocal exhausted
            await call.write(build_open(cfg, resume))
            # The server sends initial metadata once the stream is open; a refused open ends the call instead.
            # Waiting avoids writing frames into a call the server is closing (gRPC then reports INTERNAL).
            await call.initial_metadata()
            if call.done():
                return
            if self._unanswered:
                last = _last_frame_id(await call.initial_metadata())
                self.stats.lost += sum(1 for f in self._unanswered if f.index <= last)
                self._unanswered = [f for f in self._unanswered if f.index > last]
                while self._unanswered:  # a frame leaves the list only once it is this call's
                    async with room:
                        await room.wait_for(has_room)
                    if draining:
                        break
                    frame = self._unanswered[0]
                    req = await loop.run_in_executor(self._io, build_frame, cfg, frame)
                    pending[frame.index] = (frame, time.perf_counter())
                    self._unanswered.pop(0)
                    await call.write(req)
            next_t = time.perf_counter()
            while not draining:
                async with room:
                    await room.wait_for(has_room)
                if draining:
                    break
                item = await loop.run_in_executor(self._io, self._produce, it)
                if item is None:
                    exhausted = True
                    break
                frame, req = item
                if cfg.fps > 0:
                    delay = next_t - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    next_t = max(next_t + 1.0 / cfg.fps, time.perf_counter() - 1.0 / cfg.fps)
                if draining:
                    break  # the frame stays in _carry: the next call sends it
                pending[frame.index] = (frame, time.perf_counter())
                self._carry = None  # from here on it is this call's: answered, dropped, re-sent or lost
                self.stats.sent += 1  # each source frame once, whether this write or a re-send delivers it
                await call.write(req)
            await call.done_writing()

        wtask = loop.create_task(writer())

        def writer_failed() -> BaseException | None:
            if wtask.done() and not wtask.cancelled():
                exc = wtask.exception()
                if exc is not None and not isinstance(exc, grpc.aio.AioRpcError):
                    return exc
            return None

        def on_writer_done(_: asyncio.Task[None]) -> None:
            if writer_failed() is not None:  # a source/encoding error: end the call, report that error
                call.cancel()

        wtask.add_done_callback(on_writer_done)
        try:
            md_in = await call.initial_metadata()
            # Only an accepted open carries roitrack-resumed (a refused one ends with empty metadata).
            opened = [v for k, v in (md_in or ()) if k == "roitrack-resumed"]
            used = [v for k, v in (md_in or ()) if k == "roitrack-embedding"]
            if used:
                self.stats.embedding = str(used[0])
            if opened:
                self._accepted = True
                self.stats.resumed = self.stats.resumed or opened[0] == "true"
                self._on_open(opened[0] == "true")
            async for resp in call:
                if resp.draining:  # not an answer: the server asks us to stop sending and half-close
                    draining = True
                    async with room:
                        room.notify_all()
                    continue
                now = time.perf_counter()
                while pending and next(iter(pending)) < resp.frame_id:  # dropped by the server
                    pending.popitem(last=False)
                entry = pending.pop(resp.frame_id, None)
                self._renumber(resp)
                self.stats.dropped += resp.dropped_frames
                async with room:
                    room.notify_all()
                if entry is None:
                    continue
                frame, t_send = entry
                latency = (now - t_send) * 1000.0
                if resp.HasField("error"):
                    self.stats.errors += 1
                    if len(self.stats.error_messages) < 20:
                        self.stats.error_messages.append(f"frame {resp.frame_id}: {resp.error.message}")
                else:
                    self.stats.answered += 1
                    self.stats.latencies_ms.append(latency)
                    self.stats.track_ids.update(t.track_id for t in resp.tracks)
                if self.on_result is not None:
                    self.on_result(frame, resp, latency)
            await wtask
        except (grpc.aio.AioRpcError, asyncio.CancelledError):
            if cfg.reconnect:  # the next call re-sends what the server has not processed
                left = {f.index: f for f in self._unanswered}
                left.update((frame.index, frame) for frame, _ in pending.values())
                self._unanswered = [left[k] for k in sorted(left)]
            else:
                self.stats.lost += len(pending)
            failure = writer_failed()
            if failure is not None:
                raise failure from None
            raise
        finally:
            if not wtask.done():
                wtask.cancel()
                with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError, Exception):
                    await wtask
        # The call ended OK: whatever is still pending was dropped by the server at the end.
        pending.clear()
        return exhausted


def _last_frame_id(md: Any) -> int:
    """The server's ``roitrack-last-frame-id`` initial metadata (-1 when absent or malformed)."""
    for k, v in md or ():
        if k == "roitrack-last-frame-id":
            try:
                return int(v)
            except (TypeError, ValueError):
                return -1
    return -1
