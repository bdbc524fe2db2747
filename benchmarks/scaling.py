"""Bench 3 — multi-stream scaling: 1, 2, 4, 8, 16 concurrent cameras, cross-stream batching on vs off.

One ``roitrack serve`` process per mode (``batching=true`` / ``false``, everything else equal, a random
ROI encoder so ROI Align + encoder run), on loopback. Each stream is a camera that captures ``--fps`` frames
per second (default 10) whether or not the server keeps up and sends the synthetic scene's JPEG with its
``--dets`` boxes as client detections (a random detector's boxes are meaningless; with client detections the
tracker, ROI Align and encoder get a realistic, fixed load, and the detector forward still runs for the
features). When the offered rate exceeds what the server can do, the server's backpressure drops the oldest
waiting frame (reported as ``dropped``), so the measured ``fps`` is the server's capacity and the latency
stays bounded. ``speedup`` = fps with batching on / fps with batching off, per stream count.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import (
    DEFAULT_ARCH,
    BenchOptions,
    camera,
    machine,
    md_table,
    on_worker_thread,
)
from benchmarks.service import (
    ServerProcess,
    make_items,
    run_async,
    run_streams,
    summarise,
    write_random_encoder,
)

COUNTS = (1, 2, 4, 8, 16)
WARMUP_S = 2.0


def server_settings(
    opts: BenchOptions,
    size: int,
    batching: bool,
    encoder: Path | None,
    backend: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """ServerConfig fields of a benchmark server; ``backend``: ``(backend, precision)`` (default: ``opts``')."""
    name, precision = backend if backend is not None else (opts.backend, opts.precision)
    s: dict[str, Any] = {
        "backend": name,
        "precision": precision,
        "device": opts.device,
        "input_size": size,
        "batching": batching,
        "max_batch": int(opts.extra.get("max_batch", 8)),
        "max_streams": 64,
        "resume_window_s": 0,
    }
    if opts.weights:
        s["weights"] = opts.weights
    else:
        s["random_weights"] = True
        s["arch"] = opts.arch or DEFAULT_ARCH
    if encoder is not None:
        s["encoder"] = str(encoder)
    return s


def bench_backend_choice(opts: BenchOptions, size: int) -> tuple[tuple[str, str], Any]:
    """``((backend, precision), selection)`` the benchmark's servers run: ``auto`` resolved once here, on the
    models the servers load (the random detector of ``--arch`` or ``--weights``, the random ROI encoder)."""
    from benchmarks.common import bench_appearance, detector_for, resolve_backend

    det = detector_for(opts, fuse=True)
    name, precision, selection = resolve_backend(opts, det, size, bench_appearance(det))
    return (name, precision), selection


def measure_point(
    server: ServerProcess,
    n: int,
    items: list[Any],
    duration: float,
    fps: float,
    tag: str,
    warmup_s: float = WARMUP_S,
) -> dict[str, Any]:
    """``n`` streams for ``duration`` seconds after a short untimed warm-up of the same streams' shape."""
    if warmup_s > 0:
        run_async(run_streams(server.address, n, items, warmup_s, fps, 4, True, prefix=f"{tag}-warm-{n}"))
    t0 = time.perf_counter()
    stats = run_async(run_streams(server.address, n, items, duration, fps, 4, True, prefix=f"{tag}-{n}"))
    wall = time.perf_counter() - t0
    res = summarise(stats, wall)
    # latency in the first and second half of the run: bounded latency does not grow
    from benchmarks.common import percentiles_ms

    half = [[], []]  # type: list[list[float]]
    for s in stats:
        k = len(s.latencies_s) // 2
        half[0].extend(s.latencies_s[:k])
        half[1].extend(s.latencies_s[k:])
    res["p99_first_half_ms"] = percentiles_ms(half[0])["p99"]
    res["p99_second_half_ms"] = percentiles_ms(half[1])["p99"]
    res["wall_s"] = wall
    return res


def runner_batch_costs(
    settings: dict[str, Any], batches: tuple[int, ...], items: list[Any], reps: int = 3
) -> Any:
    """The server's ``ModelRunner`` alone (no gRPC, no tracker), per-frame ms at each batch size: what batching
    can gain or lose on this device before any service effect. Fastest and median of ``reps`` batches."""
    import numpy as np

    from benchmarks.overhead import in_process_models
    from server.frames import ClientDetections, EncodedImage, FrameInput

    runner, _ = in_process_models(settings)
    inputs = [
        FrameInput(
            EncodedImage(it.jpeg), ClientDetections(it.boxes, it.scores, np.zeros(len(it.boxes), np.int64))
        )
        for it in items
    ]
    for b in batches:  # every shape once, untimed
        runner.run(inputs[:b])
    laps: dict[int, list[float]] = {b: [] for b in batches}
    stage: dict[int, dict[str, list[float]]] = {b: {} for b in batches}
    for r in range(reps):
        for b in batches:
            batch = [inputs[(r * b + k) % len(inputs)] for k in range(b)]
            t0 = time.perf_counter()
            outs = runner.run(batch)
            laps[b].append((time.perf_counter() - t0) / b)
            for key, v in outs[0].stage_s.items():
                stage[b].setdefault(key, []).append(v * 1e3)
    return {
        str(b): {
            "ms_per_frame_min": float(min(laps[b]) * 1e3),
            "ms_per_frame_median": float(np.median(laps[b]) * 1e3),
            "stage_ms": {k: float(np.median(v)) for k, v in stage[b].items()},
        }
        for b in batches
    }


def run(opts: BenchOptions) -> dict[str, Any]:
    size = opts.size or 320
    duration = opts.duration or 20.0
    fps = float(opts.extra.get("fps", 10.0))  # 0: closed loop, as fast as the server answers
    counts = tuple(c for c in COUNTS if c <= (opts.streams or COUNTS[-1])) or (opts.streams or 1,)
    warmup_s = float(opts.extra.get("warmup_s", WARMUP_S))
    items = make_items(40, opts.dets, seed=opts.seed)
    chosen, selection = bench_backend_choice(opts, size)
    modes: dict[str, list[dict[str, Any]]] = {"on": [], "off": []}
    if opts.vs_reference:
        modes["reference"] = []
    with tempfile.TemporaryDirectory(prefix="roitrack-bench-") as tmp:
        encoder = None if opts.weights else write_random_encoder(Path(tmp), opts.arch or DEFAULT_ARCH)
        servers = {
            mode: ServerProcess(server_settings(opts, size, mode == "on", encoder, chosen), seed=opts.seed)
            for mode in ("off", "on")
        }
        if opts.vs_reference:  # today's path: torch fp32, batching on
            servers["reference"] = ServerProcess(
                server_settings(opts, size, True, encoder, ("torch", "fp32")), seed=opts.seed
            )
        try:
            for srv in servers.values():  # both load their models at the same time
                srv.launch()
            for srv in servers.values():
                srv.wait_serving()
            for mode, srv in servers.items():  # one at a time: the idle one uses no CPU
                for n in counts:
                    modes[mode].append(measure_point(srv, n, items, duration, fps, f"b{mode}", warmup_s))
        finally:
            for srv in servers.values():
                srv.stop()
        # the model runner alone, after the servers are gone (nothing else of ours runs)
        max_b = min(int(opts.extra.get("max_batch", 8)), max(counts))
        batches = tuple(b for b in (1, 2, 4, 8, 16) if b <= max_b)
        settings = server_settings(opts, size, True, encoder, chosen)
        runner_costs = on_worker_thread(runner_batch_costs, settings, batches, items)
    rows = []
    for k, (on, off) in enumerate(zip(modes["on"], modes["off"], strict=True)):
        row = {
            "streams": on["streams"],
            "on": on,
            "off": off,
            "speedup": on["fps"] / off["fps"] if off["fps"] > 0 else float("nan"),
        }
        if opts.vs_reference:
            ref = modes["reference"][k]
            row["reference"] = ref
            row["fps_vs_reference"] = on["fps"] / ref["fps"] if ref["fps"] > 0 else float("nan")
        rows.append(row)
    at8 = next((r for r in rows if r["streams"] == 8), rows[-1])
    return {
        "bench": "scaling",
        "arch": (opts.arch or DEFAULT_ARCH) if not opts.weights else "from weights",
        "weights": opts.weights or "random",
        "size": size,
        "device": opts.device,
        "duration_s": duration,
        "camera_fps": fps,
        "dets": opts.dets,
        "machine": machine(),
        "results": rows,
        "speedup_at_8": at8["speedup"],
        "backend": f"{chosen[0]}/{chosen[1]}",
        "backend_selection": selection,
        "fps_vs_reference_at_8": at8.get("fps_vs_reference"),
        "runner_ms_per_frame_by_batch": runner_costs,
        "runner_batch_gain": runner_costs["1"]["ms_per_frame_min"]
        / runner_costs[str(batches[-1])]["ms_per_frame_min"],
        "streams_for_target": at8["streams"],
        "target_speedup": 1.3 if opts.device == "cpu" else 3.0,
    }


def markdown(result: dict[str, Any]) -> str:
    headers = [
        "streams",
        "fps off",
        "fps on",
        "speedup",
        "p50 off",
        "p95 off",
        "p99 off",
        "p50 on",
        "p95 on",
        "p99 on",
        "drops off",
        "drops on",
        "mean batch on",
        "batch sizes on",
    ]
    ref = any("reference" in r for r in result["results"])
    if ref:
        headers += ["fps torch fp32 (on)", "p99 torch fp32", "fps on / torch fp32"]
    rows = []
    for r in result["results"]:
        on, off = r["on"], r["off"]
        extra = (
            [r["reference"]["fps"], r["reference"]["latency_ms"]["p99"], f"{r['fps_vs_reference']:.2f}x"]
            if ref
            else []
        )
        rows.append(
            [
                r["streams"],
                off["fps"],
                on["fps"],
                f"{r['speedup']:.2f}x",
                off["latency_ms"]["p50"],
                off["latency_ms"]["p95"],
                off["latency_ms"]["p99"],
                on["latency_ms"]["p50"],
                on["latency_ms"]["p95"],
                on["latency_ms"]["p99"],
                off["dropped"],
                on["dropped"],
                on["mean_batch"],
                " ".join(f"{k}:{v}" for k, v in on["batch_sizes"].items()),
                *extra,
            ]
        )
    rc = result["runner_ms_per_frame_by_batch"]
    stages = list(rc[next(iter(rc))]["stage_ms"])
    runner_rows = [
        [
            b,
            v["ms_per_frame_min"],
            v["ms_per_frame_median"],
            *(v["stage_ms"].get(k, float("nan")) for k in stages),
        ]
        for b, v in rc.items()
    ]
    runner_table = (
        "\n\nThe model runner alone (decode ... encoder, no gRPC, no tracker), ms per frame by batch size "
        f"(fastest / median of 3 batches; stages: median): gain of the largest batch over batch 1 "
        f"{result['runner_batch_gain']:.2f}x\n\n"
        + md_table(["batch", "min ms/frame", "median ms/frame", *stages], runner_rows, nd=1)
    )
    m = result["machine"]
    return (
        f"Multi-stream scaling ({result['arch']} at {result['size']}, {result['device']}, "
        f"inference {result.get('backend', 'torch/fp32')}, "
        f"{camera(result['camera_fps'])} with {result['dets']} client boxes each, {result['duration_s']:g} s per "
        f"point; latency in ms, send to response; {m.get('gpu') or m['cpu']}, {m['cores']} cores)\n\n"
        + md_table(headers, rows, nd=1)
        + runner_table
    )


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from benchmarks.common import small_png

    n = [r["streams"] for r in result["results"]]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8, 3))
    for mode, style in (("on", "o-"), ("off", "s--")):
        a1.plot(n, [r[mode]["fps"] for r in result["results"]], style, label=f"batching {mode}")
        a2.plot(n, [r[mode]["latency_ms"]["p99"] for r in result["results"]], style, label=f"batching {mode}")
    for a, title in ((a1, "aggregate frames/s"), (a2, "p99 latency (ms)")):
        a.set_xscale("log", base=2)
        a.set_xticks(n, [str(x) for x in n])
        a.set_xlabel("concurrent streams")
        a.set_title(title)
        a.grid(alpha=0.3)
        a.legend()
    small_png(fig, path)
