"""Bench 2 — service overhead: the same frames through the in-process pipeline and through the gRPC server.

In-process: ``server.pipeline.Pipeline`` (the server's own ``ModelRunner`` + ``track_frame``, no gRPC, no
batcher, no event loop) built from the same ``ServerConfig`` the server gets. gRPC: a ``roitrack serve``
process on loopback, one stream, lock-step (send a frame, wait for its response, send the next), timed at the
client from send to response. Both get the synthetic scene's JPEGs with ``--dets`` client boxes (same frames,
same boxes, same random detector and ROI encoder, fresh tracker per round), so they do the same model work.
Two servers are measured: the default configuration (batching on) and batching off, because with a single
stream the batcher's ``max_wait_ms`` is pure added latency.

Rounds alternate the paths (in-process, gRPC on, gRPC off, ...) so a neighbour's load on a shared machine hits
all of them alike; figures are medians over all timed frames. ``overhead_share`` = gRPC / in-process - 1.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import DEFAULT_ARCH, BenchOptions, machine, md_table, median_ms, now
from benchmarks.scaling import server_settings
from benchmarks.service import FrameItem, ServerProcess, make_items, run_async, run_stream

WARMUP_FRAMES = 2


def in_process_models(settings: dict[str, Any]) -> tuple[Any, Any]:
    """``(runner, tracker_factory)``: the models the server loads for ``settings`` (ServerConfig fields), warm."""
    from server.config import ServerConfig, validate
    from server.loading import build_runner, tracker_factory

    cfg = ServerConfig(**{**settings, "check_port": False, "metrics_port": 0, "port": 0})
    validate(cfg)
    runner = build_runner(cfg)
    runner.warmup()
    return runner, tracker_factory()


def time_in_process(runner: Any, factory: Any, items: list[FrameItem], k: int) -> list[float]:
    """Per-frame seconds of ``Pipeline.process`` over ``k`` frames (fresh tracker), warm-up frames dropped."""
    from server.pipeline import Pipeline

    pipe = Pipeline(runner, factory)
    laps = []
    for i in range(k):
        it = items[i % len(items)]
        cls = np.zeros(len(it.boxes), np.int64)
        t0 = now()
        pipe.process(it.jpeg, i / 10.0, detections=(it.boxes, it.scores, cls))
        laps.append(now() - t0)
    return laps[WARMUP_FRAMES:]


def time_grpc(server: ServerProcess, items: list[FrameItem], k: int, tag: str) -> tuple[list[float], Any]:
    st = run_async(
        run_stream(server.address, tag, items, n_frames=k, fps=None, max_in_flight=1, client_dets=True)
    )
    if st.errors or st.answered != k:
        raise RuntimeError(f"gRPC path answered {st.answered}/{k} frames with {st.errors} errors")
    return st.latencies_s[WARMUP_FRAMES:], st


def run(opts: BenchOptions) -> dict[str, Any]:
    size = opts.size or 640
    k = (opts.frames or 20) + WARMUP_FRAMES
    rounds = int(opts.extra.get("rounds", 3))
    items = make_items(k, opts.dets, seed=opts.seed)
    laps: dict[str, list[float]] = {"in_process": [], "grpc": [], "grpc_batching_off": []}
    server_side: dict[str, dict[str, list[float]]] = {"grpc": {}, "grpc_batching_off": {}}
    with tempfile.TemporaryDirectory(prefix="roitrack-bench-") as tmp:
        from benchmarks.service import write_random_encoder

        encoder = None if opts.weights else write_random_encoder(Path(tmp), opts.arch or DEFAULT_ARCH)
        on = server_settings(opts, size, True, encoder)
        off = server_settings(opts, size, False, encoder)
        s_on, s_off = ServerProcess(on, seed=opts.seed), ServerProcess(off, seed=opts.seed)
        try:
            s_on.launch()
            s_off.launch()
            runner, factory = in_process_models(on)  # loads while the servers load
            s_on.wait_serving()
            s_off.wait_serving()
            for r in range(rounds):
                laps["in_process"] += time_in_process(runner, factory, items, k)
                for name, srv in (("grpc", s_on), ("grpc_batching_off", s_off)):
                    lat, st = time_grpc(srv, items, k, f"overhead-{name}-{r}")
                    laps[name] += lat
                    for key in (
                        "server_total_ms",
                        "server_queue_ms",
                        "server_inference_ms",
                        "server_tracking_ms",
                    ):
                        server_side[name].setdefault(key, []).extend(getattr(st, key)[WARMUP_FRAMES:])
        finally:
            s_on.stop()
            s_off.stop()
    ms = {name: median_ms(v) for name, v in laps.items()}
    res: dict[str, Any] = {
        "bench": "overhead",
        "arch": (opts.arch or DEFAULT_ARCH) if not opts.weights else "from weights",
        "weights": opts.weights or "random",
        "size": size,
        "device": opts.device,
        "dets": opts.dets,
        "frames": len(laps["in_process"]),
        "rounds": rounds,
        "machine": machine(),
        "in_process_ms": ms["in_process"],
        "grpc_ms": ms["grpc"],
        "grpc_batching_off_ms": ms["grpc_batching_off"],
        "overhead_ms": ms["grpc"] - ms["in_process"],
        "overhead_share": ms["grpc"] / ms["in_process"] - 1.0,
        "overhead_batching_off_ms": ms["grpc_batching_off"] - ms["in_process"],
        "overhead_share_batching_off": ms["grpc_batching_off"] / ms["in_process"] - 1.0,
        "mean_ms": {name: float(np.mean(v) * 1e3) for name, v in laps.items()},
        "server_side_ms": {
            name: {key: float(np.median(v)) for key, v in d.items() if v} for name, d in server_side.items()
        },
        "target_overhead_share": 0.05,
    }
    return res


def markdown(result: dict[str, Any]) -> str:
    r = result
    ss = r["server_side_ms"]
    rows = [
        ["in-process pipeline (`Pipeline.process`)", r["in_process_ms"], "-", "-", "-"],
        [
            "gRPC, default server (batching on)",
            r["grpc_ms"],
            r["overhead_ms"],
            f"{100 * r['overhead_share']:.1f}%",
            ss.get("grpc", {}).get("server_total_ms", float("nan")),
        ],
        [
            "gRPC, batching off",
            r["grpc_batching_off_ms"],
            r["overhead_batching_off_ms"],
            f"{100 * r['overhead_share_batching_off']:.1f}%",
            ss.get("grpc_batching_off", {}).get("server_total_ms", float("nan")),
        ],
    ]
    m = r["machine"]
    return (
        f"Service overhead ({r['arch']} at {r['size']}, {r['device']}, {r['dets']} client boxes per frame, "
        f"one stream lock-step, median of {r['frames']} frames in {r['rounds']} alternating rounds; "
        f"{m.get('gpu') or m['cpu']}, {m['cores']} cores)\n\n"
        + md_table(["path", "ms/frame", "overhead ms", "overhead share", "server-side total ms"], rows)
    )
