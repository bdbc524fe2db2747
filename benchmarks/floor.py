"""Bench 5 — the floor: how far the detector and the whole pipeline are from what the hardware allows.

The detector's FLOPs per frame are counted with ``torch.utils.flop_counter.FlopCounterMode`` (2 FLOPs per
multiply-accumulate). The hardware's peak is a dense matrix multiply measured in the same run for each precision
the backends use (fp32: AVX-512 FMA; bf16: AMX / AVX-512 BF16 through oneDNN), best of several sizes, each twice.
Every inference backend and precision (``tracker_core.inference``; the ``--backend``/``--precision`` filter, all
installed by default) runs the forward at batch 1 and 4, the backends taking turns. Then per backend

* ``share_of_peak`` = FLOPs / fastest forward time / the peak of its precision (and of fp32),

and for the default backend (what ``serve`` runs; ``--backend auto``) also

* ``pipeline_fraction`` = FLOPs / fastest whole frame of the pipeline (bench ``stages``) / its precision's peak,

so the report says what share of the machine the forward and the service turn into useful detector work.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmarks.common import BenchOptions, detector_for, machine, md_table, now, sync


def detector_flops(det: Any, size: int) -> int:
    """FLOPs of one ``forward_raw`` of a ``1x3xSxS`` input."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.rand(1, 3, size, size, device=det.device, dtype=det.dtype)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        det.forward_raw(x)
    return int(counter.get_total_flops())


def encoder_flops(det: Any, dets: int) -> int:
    """FLOPs of the ROI encoder on ``dets`` ROIs of ``det``'s tap (``[dets, C, 10, 10]``)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from benchmarks.stages import make_encoder
    from tracker_core.features import ROI_SIZE

    enc = make_encoder(det, str(det.device))
    x = torch.rand(dets, int(det.tap_channels), ROI_SIZE, ROI_SIZE, device=det.device)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        enc(x)
    return int(counter.get_total_flops())


def matmul_rate(
    device: str, dtype: Any, seconds: float = 1.0, sizes: tuple[int, ...] | None = None
) -> dict[str, Any]:
    """Best dense ``n x n @ n x n`` FLOP/s over a few sizes (2 n^3 FLOPs per product)."""
    import torch

    if sizes is None:
        sizes = (1024, 2048) if device == "cpu" else (4096, 8192)
    best: dict[str, Any] = {"flops_per_s": 0.0, "n": 0}
    for n in sizes:
        a = torch.rand(n, n, device=device, dtype=dtype)
        b = torch.rand(n, n, device=device, dtype=dtype)
        torch.mm(a, b)  # warm-up (allocations, kernel selection)
        sync(device)
        reps, t0 = 0, now()
        laps = []
        while now() - t0 < seconds / len(sizes) or reps < 2:
            t1 = now()
            torch.mm(a, b)
            sync(device)
            laps.append(now() - t1)
            reps += 1
        rate = 2.0 * n**3 / min(laps)
        if rate > best["flops_per_s"]:
            best = {"flops_per_s": rate, "n": n}
    return best


def forward_seconds(det: Any, size: int, batch: int, reps: int) -> float:
    """Fastest of ``reps`` ``forward_raw`` calls on a ``batch x 3 x S x S`` input, in seconds (like the matmul
    rate, the best case: on a shared machine other processes only ever add time)."""
    import torch

    x = torch.rand(batch, 3, size, size, device=det.device, dtype=det.dtype)
    laps = []
    with torch.inference_mode():
        det.forward_raw(x)
        sync(str(det.device))
        for _ in range(reps):
            t0 = now()
            det.forward_raw(x)
            sync(str(det.device))
            laps.append(now() - t0)
    return float(np.min(laps))


def backend_forward_seconds(
    backends: dict[str, Any], size: int, batch: int, reps: int, device: str
) -> dict[str, float]:
    """Fastest of ``reps`` ``forward_taps`` calls of each backend on a ``batch x 3 x S x S`` input, the backends
    taking turns (order rotating), in seconds."""
    import torch

    x = torch.rand(batch, 3, size, size)
    laps: dict[str, list[float]] = {k: [] for k in backends}
    labels = list(backends)
    with torch.inference_mode():
        for b in backends.values():
            b.forward_taps(x)
        for r in range(reps):
            for label in labels[r % len(labels) :] + labels[: r % len(labels)]:
                t0 = now()
                backends[label].forward_taps(x)
                sync(device)
                laps[label].append(now() - t0)
    return {k: float(np.min(v)) for k, v in laps.items()}


PEAK_DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def peak_rates(device: str, precisions: list[str], seconds: float = 0.5) -> dict[str, dict[str, Any]]:
    """The matmul rate of each precision, measured twice in turns (best kept): the CPU's real peak for it
    (fp32: AVX-512 FMA; bf16: AMX tiles / AVX-512 BF16 through oneDNN)."""
    import torch

    best: dict[str, dict[str, Any]] = {}
    for _ in range(2):  # the machine may be shared: each precision twice, taking turns
        for p in precisions:
            r = matmul_rate(device, getattr(torch, PEAK_DTYPES[p]), seconds=seconds)
            if r["flops_per_s"] > best.get(p, {}).get("flops_per_s", 0.0):
                best[p] = r
    return best


def run(opts: BenchOptions) -> dict[str, Any]:
    from benchmarks.common import on_worker_thread

    return dict(on_worker_thread(_run, opts))


def _run(opts: BenchOptions) -> dict[str, Any]:
    from benchmarks import stages
    from benchmarks.common import bench_appearance, make_bench_backend, resolve_backend
    from tracker_core.inference import InferenceOptions, candidates

    size = opts.size or 640
    reps = opts.frames or 8
    det = detector_for(opts, fuse=True)
    app = bench_appearance(det)
    flops = detector_flops(det, size)
    enc_flops = encoder_flops(det, opts.dets)
    name, precision, selection = resolve_backend(opts, det, size, app)
    default = f"{name}/{precision}"
    pairs = candidates(InferenceOptions(opts.backend, opts.precision), det.device.type)
    reference = ("torch", "fp16") if opts.device.startswith("cuda") else ("torch", "fp32")
    pairs = list(dict.fromkeys([reference, *pairs, (name, precision)]))
    backends = {f"{b}/{p}": make_bench_backend(det, app, b, p) for b, p in pairs}
    precisions = sorted({p for _, p in pairs}, key=list(PEAK_DTYPES).index)
    peaks = peak_rates(opts.device, precisions)
    fwd1 = backend_forward_seconds(backends, size, 1, reps, opts.device)
    fwd4 = {
        k: v / 4
        for k, v in backend_forward_seconds(backends, size, 4, max(2, reps // 2), opts.device).items()
    }
    peaks2 = peak_rates(opts.device, precisions)  # again: the machine may be shared
    for p, r in peaks2.items():
        if r["flops_per_s"] > peaks[p]["flops_per_s"]:
            peaks[p] = r
    rows = []
    for label, b in backends.items():
        peak = peaks[b.precision]["flops_per_s"]
        rows.append(
            {
                "backend": label,
                "precision": b.precision,
                "forward_ms_b1": fwd1[label] * 1e3,
                "forward_ms_per_frame_b4": fwd4[label] * 1e3,
                "gflops_per_s_b1": flops / fwd1[label] / 1e9,
                "gflops_per_s_b4": flops / fwd4[label] / 1e9,
                "share_of_peak_b1": flops / fwd1[label] / peak,
                "share_of_peak_b4": flops / fwd4[label] / peak,
                "share_of_fp32_peak_b1": flops / fwd1[label] / peaks["fp32"]["flops_per_s"]
                if "fp32" in peaks
                else float("nan"),
            }
        )
    pipe = stages.measure(det, size, reps, opts.dets, opts.device, seed=opts.seed, backend=backends[default])
    for b in backends.values():
        b.close()
    pipe_s = pipe["frame_ms_min"] / 1e3  # fastest whole frame, like the forward and the matmul
    d = next(r for r in rows if r["backend"] == default)
    peak = peaks[precision]["flops_per_s"]
    return {
        "bench": "floor",
        "arch": str(det.arch),
        "size": size,
        "device": opts.device,
        "dtype": precision,
        "default": default,
        "selection": selection,
        "machine": machine(),
        "flops_per_frame": flops,
        "gflops_per_frame": flops / 1e9,
        "encoder_gflops_per_frame": enc_flops / 1e9,
        "dets": opts.dets,
        "peaks_gflops_per_s": {p: r["flops_per_s"] / 1e9 for p, r in peaks.items()},
        "peaks_n": {p: r["n"] for p, r in peaks.items()},
        "backends": rows,
        # the default backend (what `serve` runs), against the peak of its precision
        "matmul_gflops_per_s": peak / 1e9,
        "matmul_n": peaks[precision]["n"],
        "forward_ms_b1": d["forward_ms_b1"],
        "forward_ms_per_frame_b4": d["forward_ms_per_frame_b4"],
        "pipeline_ms_per_frame": pipe["frame_ms_min"],
        "pipeline_ms_per_frame_median": pipe["frame_ms_median"],
        "forward_gflops_per_s_b1": d["gflops_per_s_b1"],
        "forward_gflops_per_s_b4": d["gflops_per_s_b4"],
        "forward_fraction_b1": d["share_of_peak_b1"],
        "forward_fraction_b4": d["share_of_peak_b4"],
        "pipeline_fraction": flops / pipe_s / peak,
        "pipeline_fraction_with_encoder": (flops + enc_flops) / pipe_s / peak,
        "floor_ms_per_frame": flops / peak * 1e3,
    }


def markdown(result: dict[str, Any]) -> str:
    r = result
    peaks = r["peaks_gflops_per_s"]
    rows = [
        ["detector FLOPs per frame", f"{r['gflops_per_frame']:.2f} GFLOP"],
        [
            f"ROI encoder FLOPs per frame ({r['dets']} boxes)",
            f"{r['encoder_gflops_per_frame']:.2f} GFLOP ({100 * r['encoder_gflops_per_frame'] / r['gflops_per_frame']:.0f}% of the detector)",
        ],
        *(
            [
                f"matmul peak, {p} (n={r['peaks_n'][p]})",
                f"{v:.1f} GFLOP/s ({v / peaks.get('fp32', v):.1f}x fp32)",
            ]
            for p, v in peaks.items()
        ),
        [
            f"floor of the default backend ({r['default']}): FLOPs / {r['dtype']} peak",
            f"{r['floor_ms_per_frame']:.1f} ms/frame",
        ],
        [
            f"whole pipeline, batch 1, {r['default']} (fastest frame)",
            f"{r['pipeline_ms_per_frame']:.1f} ms = {100 * r['pipeline_fraction']:.1f}% of the {r['dtype']} peak "
            f"({100 * r['pipeline_fraction_with_encoder']:.1f}% counting the encoder's FLOPs)",
        ],
    ]
    headers = [
        "backend",
        "forward ms, batch 1",
        "GFLOP/s",
        "share of its precision's peak",
        "share of the fp32 peak",
        "ms per frame, batch 4",
        "share (batch 4)",
    ]
    brows = [
        [
            f"**{b['backend']}** (default)" if b["backend"] == r["default"] else b["backend"],
            b["forward_ms_b1"],
            b["gflops_per_s_b1"],
            f"{100 * b['share_of_peak_b1']:.1f}%",
            f"{100 * b['share_of_fp32_peak_b1']:.1f}%",
            b["forward_ms_per_frame_b4"],
            f"{100 * b['share_of_peak_b4']:.1f}%",
        ]
        for b in r["backends"]
    ]
    m = r["machine"]
    return (
        f"The floor: {r['arch']} at {r['size']}x{r['size']} on {r['device']} "
        f"({m.get('gpu') or m['cpu']}, AMX {'yes' if m.get('amx_bf16') else 'no'}, load {m['loadavg_1m']:.1f}); "
        f"fastest of the runs, backends taking turns\n\n"
        + md_table(["", "value"], rows)
        + "\n\n"
        + md_table(headers, brows)
    )
