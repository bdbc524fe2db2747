"""Bench 4 — soak: 8 cameras for ``--duration`` seconds (default 600); does the server's memory stay flat?

A ``roitrack serve`` process (batching on, random ROI encoder) gets ``--streams`` (default 8) cameras at
``--fps`` (default 10) with the synthetic scene's boxes as client detections. The scene loops every 10 s, so
the tracker keeps losing, retiring and creating tracks: the state a long-running stream accumulates. The
server's resident memory (``/proc/<pid>/status`` VmRSS) and its ``roitrack_active_tracks`` gauge are sampled
over time. ``rss_growth`` = mean RSS over the last 10% of the run / mean RSS just after the warm-up - 1
(warm-up: the first 20% of the run, at most 60 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import DEFAULT_ARCH, BenchOptions, camera, machine, md_table, percentiles_ms, rss_bytes
from benchmarks.scaling import server_settings
from benchmarks.service import (
    ServerProcess,
    make_items,
    metric_sum,
    run_streams,
    summarise,
    write_random_encoder,
)


async def _soak(
    server: ServerProcess, n: int, items: list[Any], duration: float, fps: float, every: float
) -> Any:
    samples: list[dict[str, float]] = []
    loop = asyncio.get_running_loop()
    t0 = time.perf_counter()
    stop = asyncio.Event()

    async def sampler() -> None:
        while not stop.is_set():
            m = await loop.run_in_executor(None, server.metrics)
            samples.append(
                {
                    "t_s": time.perf_counter() - t0,
                    "rss_mb": rss_bytes(server.pid) / 2**20,
                    "tracks": metric_sum(m, "roitrack_active_tracks"),
                    "frames": metric_sum(m, "roitrack_frames_processed_total"),
                }
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=every)

    task = asyncio.create_task(sampler())
    stats = await run_streams(server.address, n, items, duration, fps, 4, True, prefix="soak")
    stop.set()
    await task
    return stats, samples, time.perf_counter() - t0


def run(opts: BenchOptions) -> dict[str, Any]:
    size = opts.size or 320
    duration = opts.duration or 600.0
    n = opts.streams or 8
    fps = float(opts.extra.get("fps", 10.0))  # 0: closed loop, as fast as the server answers
    every = max(0.5, duration / 150)
    items = make_items(100, opts.dets, seed=opts.seed)
    with tempfile.TemporaryDirectory(prefix="roitrack-bench-") as tmp:
        encoder = None if opts.weights else write_random_encoder(Path(tmp), opts.arch or DEFAULT_ARCH)
        with ServerProcess(server_settings(opts, size, True, encoder), seed=opts.seed) as server:
            rss_start = rss_bytes(server.pid) / 2**20
            stats, samples, wall = asyncio.run(_soak(server, n, items, duration, fps, every))
    res = summarise(stats, wall)
    warmup = min(60.0, 0.2 * duration)
    after = [s for s in samples if s["t_s"] >= warmup]
    k = max(1, len(after) // 10)
    base = float(np.mean([s["rss_mb"] for s in after[:k]])) if after else float("nan")
    end = float(np.mean([s["rss_mb"] for s in after[-k:]])) if after else float("nan")
    peak = max((s["rss_mb"] for s in after), default=float("nan"))
    tracks_base = float(np.mean([s["tracks"] for s in after[:k]])) if after else float("nan")
    tracks_end = float(np.mean([s["tracks"] for s in after[-k:]])) if after else float("nan")
    lat_half = [[], []]  # type: list[list[float]]
    for s in stats:
        h = len(s.latencies_s) // 2
        lat_half[0].extend(s.latencies_s[:h])
        lat_half[1].extend(s.latencies_s[h:])
    return {
        "bench": "soak",
        "arch": (opts.arch or DEFAULT_ARCH) if not opts.weights else "from weights",
        "size": size,
        "device": opts.device,
        "streams": n,
        "duration_s": duration,
        "camera_fps": fps,
        "dets": opts.dets,
        "machine": machine(),
        "warmup_s": warmup,
        "rss_start_mb": rss_start,
        "rss_after_warmup_mb": base,
        "rss_end_mb": end,
        "rss_peak_after_warmup_mb": peak,
        "rss_growth": end / base - 1.0 if base > 0 else float("nan"),
        "rss_peak_growth": peak / base - 1.0 if base > 0 else float("nan"),
        "tracks_after_warmup": tracks_base,
        "tracks_end": tracks_end,
        "p99_first_half_ms": percentiles_ms(lat_half[0])["p99"],
        "p99_second_half_ms": percentiles_ms(lat_half[1])["p99"],
        "target_rss_growth": 0.05,
        "service": res,
        "samples": samples,
    }


def markdown(result: dict[str, Any]) -> str:
    r = result
    s = r["service"]
    rows = [
        ["duration / warm-up", f"{r['duration_s']:g} s / {r['warmup_s']:g} s"],
        ["frames answered / fps", f"{s['answered']} / {s['fps']:.1f}"],
        ["dropped (backpressure) / errors", f"{s['dropped']} / {s['errors']}"],
        [
            "RSS at start / after warm-up / end",
            f"{r['rss_start_mb']:.0f} / {r['rss_after_warmup_mb']:.0f} / {r['rss_end_mb']:.0f} MiB",
        ],
        [
            "RSS growth after warm-up (end, peak)",
            f"{100 * r['rss_growth']:+.2f}%, {100 * r['rss_peak_growth']:+.2f}%",
        ],
        ["active tracks after warm-up / end", f"{r['tracks_after_warmup']:.0f} / {r['tracks_end']:.0f}"],
        ["latency p50 / p95 / p99", "{p50:.0f} / {p95:.0f} / {p99:.0f} ms".format(**s["latency_ms"])],
        ["p99 first half / second half", f"{r['p99_first_half_ms']:.0f} / {r['p99_second_half_ms']:.0f} ms"],
    ]
    m = r["machine"]
    return (
        f"Soak: {r['streams']} streams, {camera(r['camera_fps'])}, {r['dets']} client boxes each, {r['arch']} at "
        f"{r['size']}, {r['device']} ({m.get('gpu') or m['cpu']}, {m['cores']} cores)\n\n"
        + md_table(["", "value"], rows)
    )


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from benchmarks.common import small_png

    t = [s["t_s"] for s in result["samples"]]
    fig, a1 = plt.subplots(figsize=(7, 3))
    a1.plot(t, [s["rss_mb"] for s in result["samples"]], "b-", label="server RSS (MiB)")
    a1.set_xlabel("seconds")
    a1.set_ylabel("RSS (MiB)", color="b")
    a1.axvline(result["warmup_s"], color="grey", ls=":", label="end of warm-up")
    a2 = a1.twinx()
    a2.plot(t, [s["tracks"] for s in result["samples"]], "g-", alpha=0.6, label="active tracks")
    a2.set_ylabel("active tracks", color="g")
    a1.set_ylim(0, max(s["rss_mb"] for s in result["samples"]) * 1.15)
    a2.set_ylim(0, max(1.0, max(s["tracks"] for s in result["samples"])) * 1.15)
    a1.set_title(f"soak: {result['streams']} streams, RSS growth {100 * result['rss_growth']:+.1f}%")
    a1.legend(loc="lower left")
    small_png(fig, path)
