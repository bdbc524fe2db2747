"""The gRPC side of the benchmarks: a real ``roitrack serve`` process on loopback, and camera-like clients.

The server runs as its own process (so its resident memory and CPU are its own, and the clients' Python does
not share its GIL); it is configured through ``ROITRACK_*`` environment variables (the fields of
``server.config.ServerConfig``), seeded so that two servers, or a server and an in-process pipeline, hold the
same random detector.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tracker_core.errors import UnavailableError

# Runs `roitrack serve` after seeding torch, so the randomly initialised detector (and encoder) are the same
# in every process the benchmarks start.
_SEEDED_SERVE = (
    "import sys, torch; torch.manual_seed(int(sys.argv[1])); "
    "from roitrack_cli.main import main; sys.exit(main(['serve']))"
)


REPO_ROOT = Path(__file__).resolve().parent.parent


def child_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for a child Python process that must import this checkout (whatever the working dir)."""
    env = dict(os.environ if env is None else env)
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as `roitrack` itself sets it (roitrack_cli.main)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServerProcess:
    """``roitrack serve`` on loopback in a child process; ``settings`` are ServerConfig fields."""

    settings: dict[str, Any]
    seed: int = 0
    start_timeout_s: float = 240.0
    log_path: str | None = None
    port: int = 0
    metrics_port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    _log: Any = field(default=None, repr=False)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self.launch()
        self.wait_serving()

    def launch(self) -> None:
        """Start the process without waiting (two servers can load their models at the same time)."""
        self.port, self.metrics_port = free_port(), free_port()
        env = child_env({k: v for k, v in os.environ.items() if not k.startswith("ROITRACK_")})
        settings = {
            "host": "127.0.0.1",
            "port": self.port,
            "metrics_port": self.metrics_port,
            **self.settings,
        }
        for k, v in settings.items():
            if v is not None:
                env["ROITRACK_" + k.upper()] = str(v).lower() if isinstance(v, bool) else str(v)
        # The server's log goes to a file (a pipe nobody reads would block the server once full).
        self._log = open(self.log_path, "w+b") if self.log_path else tempfile.TemporaryFile()  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _SEEDED_SERVE, str(self.seed)],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=False,  # same scheduling autogroup as the clients: a fair comparison
        )

    def log_tail(self, n: int = 3000) -> str:
        """The last ``n`` characters the server logged."""
        if self._log is None:
            return ""
        self._log.flush()
        self._log.seek(0)
        text = self._log.read().decode(errors="replace")
        self._log.seek(0, 2)
        return str(text[-n:])

    def wait_serving(self) -> None:
        """Block until the server's health service says SERVING (models loaded and warmed up)."""
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        deadline = time.monotonic() + self.start_timeout_s
        assert self.proc is not None
        with grpc.insecure_channel(self.address) as ch:
            stub = health_pb2_grpc.HealthStub(ch)
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise UnavailableError(
                        f"server exited with {self.proc.returncode} while starting:\n{self.log_tail()}"
                    )
                try:
                    st = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0).status
                    if st == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
                time.sleep(0.2)
        tail = self.log_tail()
        self.stop()
        raise UnavailableError(f"server did not become SERVING within {self.start_timeout_s:.0f} s:\n{tail}")

    def stop(self) -> None:
        """SIGTERM (graceful drain), then SIGKILL after 30 s."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log is not None:
            self._log.close()
        self._log = None

    def metrics(self) -> dict[str, list[tuple[dict[str, str], float]]]:
        """The server's ``/metrics``: sample name -> [(labels, value)]."""
        from prometheus_client.parser import text_string_to_metric_families

        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            text = r.read().decode()
        out: dict[str, list[tuple[dict[str, str], float]]] = {}
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                out.setdefault(s.name, []).append((dict(s.labels), float(s.value)))
        return out


def metric_sum(metrics: dict[str, list[tuple[dict[str, str], float]]], name: str) -> float:
    return float(sum(v for _, v in metrics.get(name, [])))


# ----------------------------------------------------------------------------------------------- clients


@dataclass(frozen=True)
class FrameItem:
    """A pre-encoded frame and (optionally sent) client detections."""

    jpeg: bytes
    boxes: np.ndarray
    scores: np.ndarray


def make_items(n: int, dets: int, seed: int = 0) -> list[FrameItem]:
    """``n`` frames of the synthetic scene, JPEG-encoded up front (clients only send)."""
    from benchmarks.common import SyntheticScene, encode_jpeg

    scene = SyntheticScene(n=dets, seed=seed)
    items = []
    for _ in range(n):
        frame, boxes, scores, _ = scene.step(0.1)
        # a box that left the frame entirely is not a detection (the server fails such a frame as
        # INVALID_DETECTIONS); boxes reaching past an edge are kept
        h, w = frame.shape[:2]
        inside = (boxes[:, 0] < w) & (boxes[:, 1] < h) & (boxes[:, 2] > 0) & (boxes[:, 3] > 0)
        items.append(FrameItem(encode_jpeg(frame), boxes[inside], scores[inside]))
    return items


def capture_time(i: int, fps: float) -> float:
    """Frame ``i``'s (from 0) capture time on the camera's clock: ``(i + 1) / fps``, never 0 (a first timestamp of 0
    puts a stream on the server's clock, and capture times after it are refused)."""
    return (i + 1) / fps


def frame_request(item: FrameItem, frame_id: int, ts: float, client_dets: bool) -> Any:
    from roitrack_api.roitrack.v1 import tracking_pb2 as pb

    fr = pb.Frame(frame_id=frame_id, timestamp=ts, encoded=item.jpeg, use_client_detections=client_dets)
    if client_dets:
        for b, s in zip(item.boxes, item.scores, strict=True):
            fr.detections.add(box=pb.Box(x1=b[0], y1=b[1], x2=b[2], y2=b[3]), score=float(s), class_id=0)
    return pb.TrackRequest(frame=fr)


@dataclass
class StreamStats:
    """What one client stream saw."""

    stream_id: str
    sent: int = 0
    answered: int = 0
    errors: int = 0
    dropped: int = 0  # reported by the server (backpressure)
    skipped: int = 0  # not sent: the client's own in-flight window was full
    latencies_s: list[float] = field(default_factory=list)
    batch_sizes: list[int] = field(default_factory=list)
    tracks: list[int] = field(default_factory=list)
    server_total_ms: list[float] = field(default_factory=list)  # arrival at the server to response ready
    server_queue_ms: list[float] = field(default_factory=list)
    server_inference_ms: list[float] = field(default_factory=list)
    server_tracking_ms: list[float] = field(default_factory=list)
    first_answer: float = 0.0
    last_answer: float = 0.0


async def run_stream(
    address: str,
    stream_id: str,
    items: Sequence[FrameItem],
    duration_s: float | None = None,
    n_frames: int | None = None,
    fps: float | None = None,
    max_in_flight: int = 1,
    client_dets: bool = False,
    stats: StreamStats | None = None,
    channel: Any = None,
    embedding: str | None = None,
) -> StreamStats:
    """One camera: opens ``stream_id`` and sends frames until ``duration_s`` or ``n_frames``.

    ``fps=None``: closed loop, at most ``max_in_flight`` frames unanswered (``1`` = lock-step). ``fps=F``:
    a camera that captures at ``F`` frames per second whether or not the server keeps up; a frame is skipped
    (counted) only when ``max_in_flight`` frames are already unanswered. Latency = send to response, per
    answered frame. ``embedding``: the stream's choice (``roi`` | ``reid`` | ``off``; None: the server's default).
    """
    import grpc

    from roitrack_api.roitrack.v1 import tracking_pb2 as pb
    from roitrack_api.roitrack.v1 import tracking_pb2_grpc as pbg

    st = stats or StreamStats(stream_id)
    own = channel is None
    ch = channel or grpc.aio.insecure_channel(
        address,
        options=[("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)],
    )
    stub = pbg.TrackingStub(ch)
    call = stub.Track()
    pending: dict[int, float] = {}
    window = asyncio.Semaphore(max_in_flight)
    done_sending = asyncio.Event()
    t_start = time.perf_counter()

    async def reader() -> None:
        while True:
            resp = await call.read()
            if resp is grpc.aio.EOF:
                return
            t = time.perf_counter()
            fid = int(resp.frame_id)
            released = 0
            for k in [k for k in pending if k <= fid]:  # frames before it that got no response were dropped
                sent_at = pending.pop(k)
                released += 1
                if k == fid:
                    st.latencies_s.append(t - sent_at)
            for _ in range(released):
                window.release()
            st.dropped += int(resp.dropped_frames)
            if resp.HasField("error") and resp.error.code != 0:
                st.errors += 1
            else:
                st.answered += 1
                st.batch_sizes.append(int(resp.timings.batch_size))
                st.tracks.append(len(resp.tracks))
                tm = resp.timings
                st.server_total_ms.append(float(tm.total_ms))
                st.server_queue_ms.append(float(tm.queue_ms))
                st.server_inference_ms.append(float(tm.inference_ms))
                st.server_tracking_ms.append(float(tm.tracking_ms))
                if st.first_answer == 0.0:
                    st.first_answer = t
                st.last_answer = t
            if done_sending.is_set() and not pending:
                return

    opts = pb.StreamOptions()
    if embedding is not None:
        opts.embedding = {"off": pb.EMBEDDING_OFF, "roi": pb.EMBEDDING_ROI, "reid": pb.EMBEDDING_REID}[
            embedding
        ]
    await call.write(pb.TrackRequest(open=pb.OpenStream(stream_id=stream_id, options=opts)))
    read_task = asyncio.create_task(reader())
    try:
        i = 0
        next_t = time.perf_counter()
        while True:
            if n_frames is not None and i >= n_frames:
                break
            if duration_s is not None and time.perf_counter() - t_start >= duration_s:
                break
            if fps is not None:
                next_t += 1.0 / fps
                if window.locked():  # window full: this capture is lost on the client
                    st.skipped += 1
                else:
                    await window.acquire()
                    await _send(call, pending, items, i, fps, client_dets)
                    st.sent += 1
                await asyncio.sleep(max(0.0, next_t - time.perf_counter()))
            else:
                await window.acquire()
                await _send(call, pending, items, i, 10.0, client_dets)
                st.sent += 1
            i += 1
            if read_task.done():
                break
        done_sending.set()
        await call.done_writing()  # the server answers what it still holds, then ends the call (EOF)
        if pending:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(read_task, timeout=120)
    finally:
        if not read_task.done():
            read_task.cancel()
        call.cancel()
        if own:
            await ch.close()
    return st


async def _send(
    call: Any, pending: dict[int, float], items: Sequence[FrameItem], i: int, fps: float, cd: bool
) -> None:
    req = frame_request(items[i % len(items)], i, capture_time(i, fps), cd)
    pending[i] = time.perf_counter()
    await call.write(req)


class LockstepStream:
    """One open ``Track`` call driven one frame at a time: ``await send(item, i)`` returns the response and the
    client-side round trip (send to response) in seconds. For interleaving with other paths frame by frame."""

    def __init__(self, address: str, stream_id: str, client_dets: bool = True) -> None:
        self.address, self.stream_id, self.client_dets = address, stream_id, client_dets
        self._ch: Any = None
        self._call: Any = None

    async def open(self) -> None:
        import grpc

        from roitrack_api.roitrack.v1 import tracking_pb2 as pb
        from roitrack_api.roitrack.v1 import tracking_pb2_grpc as pbg

        self._ch = grpc.aio.insecure_channel(
            self.address,
            options=[
                ("grpc.max_send_message_length", 64 << 20),
                ("grpc.max_receive_message_length", 64 << 20),
            ],
        )
        self._call = pbg.TrackingStub(self._ch).Track()
        await self._call.write(pb.TrackRequest(open=pb.OpenStream(stream_id=self.stream_id)))

    async def send(self, item: FrameItem, i: int, fps: float = 10.0) -> tuple[Any, float]:
        import grpc

        req = frame_request(item, i, capture_time(i, fps), self.client_dets)
        t0 = time.perf_counter()
        await self._call.write(req)
        resp = await self._call.read()
        dt = time.perf_counter() - t0
        if resp is grpc.aio.EOF:
            raise UnavailableError(f"stream {self.stream_id}: the server ended the call")
        if resp.HasField("error") and resp.error.code != 0:
            raise UnavailableError(f"stream {self.stream_id} frame {i}: {resp.error.message}")
        return resp, dt

    async def close(self) -> None:
        if self._call is not None:
            with contextlib.suppress(Exception):
                await self._call.done_writing()
            self._call.cancel()
        if self._ch is not None:
            await self._ch.close()


async def run_streams(
    address: str,
    n: int,
    items: Sequence[FrameItem],
    duration_s: float,
    fps: float | None,
    max_in_flight: int,
    client_dets: bool,
    prefix: str = "bench",
    embedding: str | None = None,
) -> list[StreamStats]:
    """``n`` concurrent cameras for ``duration_s`` seconds; each stream starts at a different frame of the scene.
    ``fps`` ``None`` or ``0``: closed loop (each stream keeps ``max_in_flight`` frames unanswered)."""
    import grpc

    if fps is not None and fps <= 0:
        fps = None

    stats = [StreamStats(f"{prefix}-{k}") for k in range(n)]
    async with grpc.aio.insecure_channel(
        address,
        options=[("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)],
    ) as ch:
        await asyncio.gather(
            *(
                run_stream(
                    address,
                    s.stream_id,
                    list(items[k * 7 % len(items) :]) + list(items[: k * 7 % len(items)]),
                    duration_s=duration_s,
                    fps=fps,
                    max_in_flight=max_in_flight,
                    client_dets=client_dets,
                    stats=s,
                    channel=ch,
                    embedding=embedding,
                )
                for k, s in enumerate(stats)
            )
        )
    return stats


def summarise(stats: Sequence[StreamStats], wall_s: float) -> dict[str, Any]:
    """Aggregate fps, latency percentiles, drops and batch sizes of a set of streams."""
    from benchmarks.common import percentiles_ms

    lat = [x for s in stats for x in s.latencies_s]
    answered = sum(s.answered for s in stats)
    sizes = [b for s in stats for b in s.batch_sizes]
    hist: dict[str, int] = {}
    for b in sorted(set(sizes)):
        hist[str(b)] = sizes.count(b)
    return {
        "streams": len(stats),
        "fps": answered / wall_s if wall_s > 0 else float("nan"),
        "fps_per_stream": answered / wall_s / max(1, len(stats)) if wall_s > 0 else float("nan"),
        "latency_ms": percentiles_ms(lat),
        "sent": sum(s.sent for s in stats),
        "answered": answered,
        "errors": sum(s.errors for s in stats),
        "dropped": sum(s.dropped for s in stats),
        "skipped": sum(s.skipped for s in stats),
        "batch_sizes": hist,
        "mean_batch": float(np.mean(sizes)) if sizes else float("nan"),
        "max_batch_seen": max(sizes) if sizes else 0,
    }


def write_random_encoder(directory: Path, arch: str, seed: int = 0) -> Path:
    """A randomly initialised ROI encoder checkpoint for the server's random ``arch`` detector, so a benchmark
    server runs ROI Align + encoder (their cost does not depend on the weights). The server builds its random
    detector with ``build_detector(arch)`` (default seed), whose content hash the metadata must name."""
    import torch

    from tracker_core.detector import build_detector
    from tracker_core.encoder import EncoderMeta, RoiEncoder, save_encoder

    det = build_detector(arch)
    torch.manual_seed(seed)
    enc = RoiEncoder(in_channels=int(det.tap_channels))
    meta = EncoderMeta(
        detector_arch=str(det.arch),
        detector_sha256=str(det.weights_sha256),
        features="spp",
        tap_channels={"32": int(det.tap_channels)},
        training={"note": "randomly initialised, for benchmarks"},
    )
    path = Path(directory) / f"encoder-random-{arch}-seed{seed}.safetensors"
    save_encoder(path, enc, meta)
    return path


def run_async(coro: Any) -> Any:
    return asyncio.run(coro)


__all__ = [
    "FrameItem",
    "LockstepStream",
    "ServerProcess",
    "StreamStats",
    "make_items",
    "metric_sum",
    "run_async",
    "run_stream",
    "run_streams",
    "summarise",
    "write_random_encoder",
]
