"""The thin gRPC servicer of ``roitrack.v1.Tracking``: wire <-> sessions, processor and registry."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import grpc
from google.protobuf.message import DecodeError

from roitrack_api.roitrack.v1 import tracking_pb2 as pb
from roitrack_api.roitrack.v1 import tracking_pb2_grpc as pb_grpc
from server.config import ServerConfig
from server.convert import (
    EMBEDDING_CODES,
    FRAME_ERROR_CODES,
    frame_from_pb,
    options_from_pb,
    tracks_to_pb,
)
from server.metrics import ServerMetrics
from server.model_runner import RunnerInfo
from server.processor import FrameResult, StreamProcessor
from server.registry import OpenTimeoutError, SessionRegistry
from server.session import PendingFrame, StreamSession, session_key
from server.state_keeper import StateKeeper
from server.status_map import SERVER_STATUS_METADATA, read_first_then, status_code, status_message
from tracker_core import __version__
from tracker_core.errors import (
    InvalidInputError,
    ResourceExhaustedError,
    RoitrackError,
    UnavailableError,
)

log = logging.getLogger(__name__)

RESUMED_METADATA_KEY = "roitrack-resumed"
# The id of the last frame the stream's tracker has processed (-1: none): after a reconnect the client re-sends
# its unanswered frames with larger ids, so a failover loses no frame and processes none twice.
LAST_FRAME_METADATA_KEY = "roitrack-last-frame-id"
# The embedding the stream tracks with: off | roi | reid (also in every TrackResponse).
EMBEDDING_METADATA_KEY = "roitrack-embedding"
DRAIN_GOODBYE_S = 2.0
"""While draining: how long a call waits for its client to half-close after the `draining` notice."""


@dataclass
class ServiceState:
    """What the servicer works with; ``draining`` is set by graceful shutdown."""

    config: ServerConfig
    registry: SessionRegistry
    processor: StreamProcessor
    info: RunnerInfo
    appearance_available: bool
    metrics: ServerMetrics
    draining: bool = False
    keeper: StateKeeper | None = None  # durable stream state (--state-store); None: in-memory only
    # Embeddings streams may choose (server/embedding.py) and what a stream that does not choose gets.
    embeddings: tuple[str, ...] = ("off",)
    default_embedding: str = "off"
    reid_sha256: str = ""
    # Who is calling (server.auth.principal_of): streams belong to the principal that opened them.
    identify: Callable[[grpc.aio.ServicerContext], str] = lambda context: ""
    opening: int = 0  # Track calls waiting for their `open` message: they count toward max_streams
    # The same, per principal (bounded by max_waiting_per_principal).
    waiting: dict[str, int] = field(default_factory=dict)


class RequestStreamError(RoitrackError):
    """The request stream failed underneath the call for an unexpected reason (UNKNOWN)."""


def undecodable(exc: DecodeError) -> InvalidInputError:
    return InvalidInputError(f"a request message could not be decoded as roitrack.v1.TrackRequest: {exc}")


def response_from_result(res: FrameResult, return_lost: bool) -> pb.TrackResponse:
    resp = pb.TrackResponse(
        frame_id=res.frame_id,
        timestamp=res.timestamp,
        tracks=tracks_to_pb(res.tracks, return_lost, res.det_source),
        timings=pb.Timings(
            queue_ms=res.queue_ms,
            inference_ms=res.inference_ms,
            tracking_ms=res.tracking_ms,
            total_ms=res.total_ms,
            batch_size=res.batch_size,
            camera_motion_ms=res.camera_motion_ms,
        ),
        dropped_frames=res.dropped,
        embedding=EMBEDDING_CODES.get(res.embedding, pb.EMBEDDING_UNSPECIFIED),
        dropped_detections=res.dropped_detections,
    )
    if res.error_reason:
        resp.error.code = FRAME_ERROR_CODES.get(res.error_reason, pb.FRAME_ERROR_CODE_INTERNAL)
        resp.error.message = res.error_message
    return resp


class TrackingServicer(pb_grpc.TrackingServicer):
    def __init__(self, state: ServiceState) -> None:
        self.state = state

    async def _abort(self, context: grpc.aio.ServicerContext, exc: BaseException) -> None:
        await context.abort(status_code(exc), status_message(exc), SERVER_STATUS_METADATA)

    async def Track(
        self, request_iterator: AsyncIterator[pb.TrackRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.TrackResponse]:
        st = self.state
        context.set_trailing_metadata(SERVER_STATUS_METADATA)  # an OK end is the server's word too
        if st.draining:
            await read_first_then(request_iterator)  # so the client's open cannot race the refusal
            await self._abort(context, UnavailableError("the server is shutting down; reconnect later"))
        # A call waiting for its `open` holds a stream slot (registry.open counts them) until it opens or times out.
        # The caller is known before `open` (its token or certificate): one principal may hold at most
        # max_waiting_per_principal of them, so the rest stay free for the others' new streams and resumes.
        owner = st.identify(context)
        cap = st.config.max_waiting_per_principal
        mine = st.waiting.get(owner, 0)
        if st.opening >= st.config.max_streams:
            await read_first_then(request_iterator)
            await self._abort(
                context,
                ResourceExhaustedError(
                    f"{st.opening} calls are already waiting for their `open` message (max_streams "
                    f"{st.config.max_streams})"
                ),
            )
        if cap > 0 and mine >= cap:
            await read_first_then(request_iterator)
            await self._abort(
                context,
                ResourceExhaustedError(
                    f"this principal already has {mine} calls waiting for their `open` message "
                    f"(max_waiting_per_principal {cap})"
                ),
            )
        st.opening += 1
        st.waiting[owner] = mine + 1
        try:
            first = await asyncio.wait_for(anext(aiter(request_iterator)), st.config.open_timeout_s)
        except StopAsyncIteration:
            await self._abort(context, InvalidInputError("the call ended before its `open` message"))
            return
        except TimeoutError:
            await self._abort(
                context,
                OpenTimeoutError(f"no `open` message within {st.config.open_timeout_s:g} s (open_timeout_s)"),
            )
            return
        except DecodeError as exc:
            await self._abort(context, undecodable(exc))
            return
        finally:
            st.opening -= 1
            left = st.waiting.get(owner, 1) - 1
            if left > 0:
                st.waiting[owner] = left
            else:
                st.waiting.pop(owner, None)
        if first.WhichOneof("message") != "open":
            await self._abort(
                context,
                InvalidInputError("the first message of a Track call must be `open` (stream id, options)"),
            )
        try:
            options = options_from_pb(
                first.open.options,
                st.config.conf_threshold,
                st.config.iou_threshold,
                st.config.camera_motion,
                embedding_default=st.default_embedding,
                embeddings=st.embeddings,
            )
            session, resumed = st.registry.open(
                first.open.stream_id, first.open.resume, options, owner, reserved=st.opening
            )
        except RoitrackError as exc:
            await self._abort(context, exc)
            return
        if st.keeper is not None:
            try:
                origin = await st.keeper.open(session, first.open.resume, resumed)
            except RoitrackError as exc:
                if resumed:
                    st.registry.detach(session)
                else:
                    st.registry.close(session.stream_id, session.owner)
                await self._abort(context, exc)
                return
            if origin is not None:
                resumed = True
                st.metrics.stream_resumes.labels(origin).inc()
            elif resumed:
                st.metrics.stream_resumes.labels("same_replica").inc()
        elif resumed:
            st.metrics.stream_resumes.labels("same_replica").inc()
        st.metrics.active_streams.set(st.registry.live_count)
        log.info(
            "stream %s opened (resumed=%s, embedding %s) from %s",
            session.stream_id,
            resumed,
            session.options.embedding,
            context.peer(),
        )
        await context.send_initial_metadata(
            (
                (RESUMED_METADATA_KEY, "true" if resumed else "false"),
                (LAST_FRAME_METADATA_KEY, str(session.last_frame_id)),
                (EMBEDDING_METADATA_KEY, session.options.embedding),
            )
        )
        reader = asyncio.get_running_loop().create_task(self._read(request_iterator, session))
        try:
            while True:
                pf = await session.next_frame()
                if pf is None:
                    break
                res = await st.processor.process(session, pf)
                t0 = time.perf_counter()
                resp = response_from_result(res, session.options.return_lost)
                st.metrics.stage_latency.labels("serialize").observe(time.perf_counter() - t0)
                yield resp
                st.metrics.frame_latency.observe(time.perf_counter() - pf.t_arrival)
                if st.keeper is not None:
                    st.keeper.after_frame(session)
            if session.end_error is not None:
                await self._abort(context, session.end_error)
            if st.draining:
                if st.keeper is not None:  # the state is in the store before the client is told to move
                    await st.keeper.close(session, "drain")
                # Tell the client before the call ends: it stops writing and half-closes, then the call ends. A
                # client write that races the call's end fails inside gRPC core, and gRPC's Python client then
                # reports INTERNAL "Internal error from Core" in place of this UNAVAILABLE (grpc/grpc#36066): a
                # failover that died on an error it did not recognise. Clients that ignore the notice are ended
                # after DRAIN_GOODBYE_S as before.
                yield pb.TrackResponse(
                    draining=True,
                    embedding=EMBEDDING_CODES.get(session.options.embedding, pb.EMBEDDING_UNSPECIFIED),
                )
                with contextlib.suppress(TimeoutError, asyncio.CancelledError, Exception):
                    await asyncio.wait_for(asyncio.shield(reader), DRAIN_GOODBYE_S)
                await self._abort(
                    context, UnavailableError("the server is shutting down; reconnect and resume")
                )
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
            if st.keeper is not None:
                st.keeper.close_soon(session, "close")
            st.registry.detach(session)
            st.metrics.active_streams.set(st.registry.live_count)
            log.info("stream %s call ended", session.stream_id)

    async def _read(self, request_iterator: AsyncIterator[pb.TrackRequest], session: StreamSession) -> None:
        """Move frames from the wire into the session's queue (latest frame wins when it is full)."""
        st = self.state
        try:
            async for req in request_iterator:
                if req.WhichOneof("message") != "frame":
                    session.end_with(
                        InvalidInputError("a Track call takes one `open` message, then only frames"),
                        answer_queued=True,
                    )
                    return
                if st.draining:
                    continue
                t_arrival = time.perf_counter()
                try:
                    inp = frame_from_pb(req.frame, session.options)
                except InvalidInputError as exc:
                    session.end_with(exc, answer_queued=True)
                    return
                dropped = session.push(PendingFrame(req.frame.frame_id, req.frame.timestamp, inp, t_arrival))
                if dropped:
                    st.metrics.frames_dropped.labels(st.metrics.stream_label(session.key)).inc(dropped)
        except (asyncio.CancelledError, grpc.aio.AioRpcError):
            pass
        except DecodeError as exc:  # never end with OK; the frames sent before it are still answered
            session.end_with(undecodable(exc), answer_queued=True)
        except Exception as exc:  # the call broke underneath us; the worker ends the call with an error
            log.debug("reader of stream %s ended", session.stream_id, exc_info=True)
            session.end_with(RequestStreamError(f"the request stream failed: {type(exc).__name__}"))
        finally:
            session.end_input()

    async def ListStreams(
        self, request: pb.ListStreamsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListStreamsResponse:
        now = time.monotonic()
        return pb.ListStreamsResponse(
            streams=[
                pb.StreamInfo(
                    stream_id=s.stream_id,
                    live=s.live,
                    frames_processed=s.frames_processed,
                    frames_dropped=s.frames_dropped,
                    frames_failed=s.frames_failed,
                    active_tracks=s.active_tracks,
                    idle_s=s.idle_s(now),
                )
                for s in sorted(
                    self.state.registry.sessions(self.state.identify(context)), key=lambda s: s.stream_id
                )
            ]
        )

    async def CloseStream(
        self, request: pb.CloseStreamRequest, context: grpc.aio.ServicerContext
    ) -> pb.CloseStreamResponse:
        keeper = self.state.keeper
        owner = self.state.identify(context)
        session = self.state.registry.get(request.stream_id, owner)
        try:
            was_live = self.state.registry.close(request.stream_id, owner)
        except RoitrackError as exc:
            if keeper is None:
                await self._abort(context, exc)
                raise  # unreachable: abort raises
            was_live = False  # not held here; it may still be stored
        if keeper is not None:
            await keeper.forget(session_key(owner, request.stream_id), session)
        return pb.CloseStreamResponse(was_live=was_live)

    async def GetInfo(
        self, request: pb.GetInfoRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetInfoResponse:
        st, cfg = self.state, self.state.config
        return pb.GetInfoResponse(
            version=__version__,
            detector_arch=st.info.arch,
            weights_sha256=st.info.weights_sha256,
            encoder_sha256=st.info.encoder_sha256,
            device=st.info.device,
            input_size=st.info.input_size,
            appearance_available=st.appearance_available,
            batching=cfg.batching,
            limits=pb.Limits(
                max_streams=cfg.max_streams,
                max_pixels=cfg.max_pixels,
                max_message_bytes=cfg.max_message_bytes,
                max_batch=cfg.max_batch if cfg.batching else 1,
                max_wait_ms=cfg.max_wait_ms,
                queue_size=cfg.queue_size,
                resume_window_s=cfg.resume_window_s,
                idle_timeout_s=cfg.idle_timeout_s,
                max_detections=cfg.max_detections,
            ),
            class_names=list(st.info.class_names),
            reid_model_sha256=st.reid_sha256,
            embeddings=[EMBEDDING_CODES[e] for e in st.embeddings],
            default_embedding=EMBEDDING_CODES[st.default_embedding],
        )
