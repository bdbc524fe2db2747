"""``roitrack loadgen``: N concurrent camera streams against one server for a fixed duration.

Frames are read and JPEG-encoded once up front and replayed in a loop, so the generator itself costs little.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np

from client.sources import FrameSource, SourceFrame
from client.stream import StreamClient, StreamConfig
from tracker_core.errors import InvalidInputError, RoitrackError


def preload(source: FrameSource, max_frames: int = 100, quality: int = 90) -> list[SourceFrame]:
    """Up to ``max_frames`` frames of ``source``, each with JPEG bytes ready to send."""
    out = []
    for frame in source:
        if frame.encoded is None:
            ok, buf = cv2.imencode(".jpg", frame.bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
            if not ok:
                raise InvalidInputError(f"cannot encode frame {frame.index}")
            frame.encoded = buf.tobytes()
        out.append(frame)
        if len(out) >= max_frames:
            break
    if not out:
        raise InvalidInputError(f"source {source.spec!r} gave no frames")
    return out


def replay(frames: list[SourceFrame], duration_s: float, fps: float) -> Iterator[SourceFrame]:
    """Cycle ``frames`` until ``duration_s`` has passed; indices and timestamps keep increasing."""
    end = time.perf_counter() + duration_s
    step = 1.0 / fps if fps > 0 else 0.1
    i = 0
    while time.perf_counter() < end:
        f = frames[i % len(frames)]
        i += 1
        yield SourceFrame(i, i * step, f.bgr, f.encoded, f.detections)


async def run_loadgen(
    base: StreamConfig, n_streams: int, frames: list[SourceFrame], duration_s: float, prefix: str = "load"
) -> dict[str, Any]:
    """Run ``n_streams`` streams; per-stream and aggregate fps, latency percentiles, drops and errors."""
    if n_streams < 1:
        raise InvalidInputError(f"--streams must be >= 1, got {n_streams}")
    if duration_s <= 0:
        raise InvalidInputError(f"--duration must be > 0, got {duration_s}")
    clients = [
        StreamClient(dataclasses.replace(base, stream_id=f"{prefix}-{k}", reconnect=False))
        for k in range(n_streams)
    ]

    async def one(c: StreamClient) -> str | None:
        try:
            await c.run(replay(frames, duration_s, base.fps))
        except RoitrackError as exc:
            return str(exc)
        return None

    t0 = time.perf_counter()
    failures = await asyncio.gather(*(one(c) for c in clients))
    wall = time.perf_counter() - t0
    per_stream = []
    all_lat: list[float] = []
    for c, failure in zip(clients, failures, strict=True):
        row: dict[str, Any] = {"stream_id": c.cfg.stream_id, **c.stats.summary()}
        if failure:
            row["failure"] = failure
        per_stream.append(row)
        all_lat += c.stats.latencies_ms
    answered = sum(c.stats.answered for c in clients)

    def pct(q: float) -> float:
        return round(float(np.percentile(all_lat, q)), 2) if all_lat else float("nan")

    return {
        "streams": n_streams,
        "duration_s": round(wall, 2),
        "aggregate_fps": round(answered / wall, 2) if wall > 0 else 0.0,
        "answered": answered,
        "sent": sum(c.stats.sent for c in clients),
        "dropped": sum(c.stats.dropped for c in clients),
        "errors": sum(c.stats.errors for c in clients),
        "failed_streams": sum(1 for f in failures if f),
        "p50_ms": pct(50),
        "p95_ms": pct(95),
        "p99_ms": pct(99),
        "per_stream": per_stream,
    }
