"""Bench 5 — the floor: how far the detector and the whole pipeline are from what the hardware allows.

The detector's FLOPs per frame are counted with ``torch.utils.flop_counter.FlopCounterMode`` (2 FLOPs per
multiply-accumulate). The hardware's rate is a dense matrix multiply measured in the same run, in the
detector's dtype (fp32 on CPU, the detector's dtype on CUDA), best of several sizes. Then

* ``forward_fraction``   = FLOPs / fastest forward time / matmul rate (batch 1 and batch 4),
* ``pipeline_fraction``  = FLOPs / fastest whole frame of the pipeline (bench ``stages``) / matmul rate,

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


def run(opts: BenchOptions) -> dict[str, Any]:
    from benchmarks.common import on_worker_thread

    return dict(on_worker_thread(_run, opts))


def _run(opts: BenchOptions) -> dict[str, Any]:
    from benchmarks import stages

    size = opts.size or 640
    reps = opts.frames or 8
    det = detector_for(opts, fuse=True)
    flops = detector_flops(det, size)
    enc_flops = encoder_flops(det, opts.dets)
    mm = matmul_rate(opts.device, det.dtype, seconds=0.5)
    fwd1 = forward_seconds(det, size, 1, reps)
    fwd4 = forward_seconds(det, size, 4, max(2, reps // 2)) / 4
    mm2 = matmul_rate(opts.device, det.dtype, seconds=0.5)  # again: the machine may be shared
    peak = max(mm["flops_per_s"], mm2["flops_per_s"])
    pipe = stages.measure(det, size, reps, opts.dets, opts.device, seed=opts.seed)
    pipe_s = pipe["frame_ms_min"] / 1e3  # fastest whole frame, like the forward and the matmul
    return {
        "bench": "floor",
        "arch": str(det.arch),
        "size": size,
        "device": opts.device,
        "dtype": str(det.dtype).replace("torch.", ""),
        "machine": machine(),
        "flops_per_frame": flops,
        "gflops_per_frame": flops / 1e9,
        "encoder_gflops_per_frame": enc_flops / 1e9,
        "dets": opts.dets,
        "matmul_gflops_per_s": peak / 1e9,
        "matmul_n": mm["n"] if mm["flops_per_s"] >= mm2["flops_per_s"] else mm2["n"],
        "forward_ms_b1": fwd1 * 1e3,
        "forward_ms_per_frame_b4": fwd4 * 1e3,
        "pipeline_ms_per_frame": pipe["frame_ms_min"],
        "pipeline_ms_per_frame_median": pipe["frame_ms_median"],
        "forward_gflops_per_s_b1": flops / fwd1 / 1e9,
        "forward_gflops_per_s_b4": flops / fwd4 / 1e9,
        "forward_fraction_b1": flops / fwd1 / peak,
        "forward_fraction_b4": flops / fwd4 / peak,
        "pipeline_fraction": flops / pipe_s / peak,
        "pipeline_fraction_with_encoder": (flops + enc_flops) / pipe_s / peak,
        "floor_ms_per_frame": flops / peak * 1e3,
    }


def markdown(result: dict[str, Any]) -> str:
    r = result
    rows = [
        ["detector FLOPs per frame", f"{r['gflops_per_frame']:.2f} GFLOP"],
        [
            f"ROI encoder FLOPs per frame ({r['dets']} boxes)",
            f"{r['encoder_gflops_per_frame']:.2f} GFLOP ({100 * r['encoder_gflops_per_frame'] / r['gflops_per_frame']:.0f}% of the detector)",
        ],
        [f"matmul rate ({r['dtype']}, n={r['matmul_n']})", f"{r['matmul_gflops_per_s']:.1f} GFLOP/s"],
        ["floor: FLOPs / matmul rate", f"{r['floor_ms_per_frame']:.1f} ms/frame"],
        [
            "forward, batch 1",
            f"{r['forward_ms_b1']:.1f} ms = {r['forward_gflops_per_s_b1']:.1f} GFLOP/s "
            f"= {100 * r['forward_fraction_b1']:.1f}% of matmul",
        ],
        [
            "forward, batch 4 (per frame)",
            f"{r['forward_ms_per_frame_b4']:.1f} ms = {r['forward_gflops_per_s_b4']:.1f} GFLOP/s "
            f"= {100 * r['forward_fraction_b4']:.1f}% of matmul",
        ],
        [
            "whole pipeline, batch 1 (fastest frame)",
            f"{r['pipeline_ms_per_frame']:.1f} ms = {100 * r['pipeline_fraction']:.1f}% of matmul "
            f"({100 * r['pipeline_fraction_with_encoder']:.1f}% counting the encoder's FLOPs)",
        ],
    ]
    m = r["machine"]
    return (
        f"The floor: {r['arch']} at {r['size']}x{r['size']} on {r['device']} "
        f"({m.get('gpu') or m['cpu']}, {m['torch_threads']} torch threads)\n\n"
        + md_table(["", "value"], rows)
    )
