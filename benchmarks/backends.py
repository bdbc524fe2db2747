"""Bench — inference backends: the detector forward of every backend and precision against torch fp32 (NCHW, the
models as they are: today's path), quiet and with busy processes beside it.

For each arch at ``--size`` (default both arches at 640): torch fp32 (the reference), every installed backend at
every precision this CPU runs fast, and the one ``--backend auto`` picks (the default of ``serve``), measured in
the same process on a synthetic scene frame letterboxed to the input size. Per backend:

* ``forward`` ms: ``forward_taps`` (detector + the stride-32 map + the fp32 head decode), batch 1, median;
* ``encoder`` ms: ROI Align + encoder of ``--dets`` boxes (the random ROI encoder of the other benchmarks);
* ``busy`` ms: the same forward while ``--busy`` (default 2) processes spin (``python -c "while True: pass"``)
  on this machine's cores; ``busy / quiet`` says how gracefully each thread pool shares a CPU;
* parity with the reference on that frame (``tracker_core.inference.parity``).

Method: rounds alternate a quiet block and a busy block (busy processes started before the block, killed after);
inside a block every backend runs one frame in turn, the order rotating, so a neighbour's load hits all alike.
Medians over all rounds. ``speedup`` = reference median / backend median (quiet), measured in this run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

import numpy as np

from benchmarks.common import (
    REFERENCE_LABEL,
    BenchOptions,
    SyntheticScene,
    bench_appearance,
    detector_for,
    machine,
    make_bench_backend,
    md_table,
    median_ms,
    on_worker_thread,
    resolve_backend,
)

ARCHS = ("yolov7-tiny", "yolov7")
ROUNDS = 3


def busy_processes(n: int) -> list[subprocess.Popen[bytes]]:
    """``n`` processes that spin on a core each until killed."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.kill()
    for p in procs:
        p.wait()


def measure(opts: BenchOptions, arch: str | None, size: int, frames: int, busy: int) -> dict[str, Any]:
    import torch

    from tracker_core.inference import compare, installed_backends, supported_precisions
    from tracker_core.inference.parity import run_outputs

    det = detector_for(opts, arch, fuse=True)
    app = bench_appearance(det)
    auto_name, auto_prec, selection = resolve_backend(opts, det, size, app)
    pairs = [(b, p) for b in installed_backends() for p in supported_precisions(b)]
    if opts.backend != "auto":
        pairs = [bp for bp in pairs if bp[0] == opts.backend]
    if opts.precision != "auto":
        pairs = [bp for bp in pairs if bp[1] == opts.precision]
    pairs = list(dict.fromkeys([("torch", "fp32"), *pairs, (auto_name, auto_prec)]))
    backends = {f"{b}/{p}": make_bench_backend(det, app, b, p) for b, p in pairs}
    scene = SyntheticScene(n=opts.dets, seed=opts.seed)
    frame, boxes, _, _ = scene.step(0.1)
    x, tf = det.preprocess([frame], (size, size))
    ref_out = None
    rows: dict[str, dict[str, Any]] = {}
    with torch.inference_mode():
        for label, b in backends.items():  # first call: build, warm up, parity
            out = run_outputs(b, x, [boxes], tf)
            if label == REFERENCE_LABEL:
                ref_out = out
            rows[label] = {"backend": b.name, "precision": b.precision, "threads": b.threads}
        assert ref_out is not None
        for label, b in backends.items():
            if label != REFERENCE_LABEL:
                rows[label]["parity"] = compare(
                    ref_out, run_outputs(b, x, [boxes], tf), b.precision
                ).as_dict()
        laps: dict[str, dict[str, list[float]]] = {
            k: {"quiet": [], "busy": [], "encoder": []} for k in backends
        }
        labels = list(backends)
        per_block = max(1, frames // ROUNDS)
        load = {"quiet": [], "busy": []}  # type: dict[str, list[float]]
        for rnd in range(ROUNDS):
            for cond in ("quiet", "busy") if busy > 0 else ("quiet",):
                procs = busy_processes(busy) if cond == "busy" else []
                try:
                    time.sleep(0.3 if procs else 0.0)
                    for k in range(per_block):
                        order = labels[(rnd + k) % len(labels) :] + labels[: (rnd + k) % len(labels)]
                        for label in order:
                            b = backends[label]
                            t0 = time.perf_counter()
                            maps, _ = b.forward_taps(x)
                            t1 = time.perf_counter()
                            laps[label][cond].append(t1 - t0)
                            if cond == "quiet":
                                b.embed(maps, [boxes], tf)
                                laps[label]["encoder"].append(time.perf_counter() - t1)
                finally:
                    stop(procs)
                load[cond].append(os.getloadavg()[0])
    ref_ms = median_ms(laps[REFERENCE_LABEL]["quiet"])
    for label, r in rows.items():
        q, bz = median_ms(laps[label]["quiet"]), median_ms(laps[label]["busy"])
        r.update(
            {
                "forward_ms": q,
                "forward_ms_min": float(min(laps[label]["quiet"]) * 1e3),
                "busy_ms": bz,
                "busy_over_quiet": bz / q if laps[label]["busy"] else float("nan"),
                "encoder_ms": median_ms(laps[label]["encoder"]),
                "speedup": ref_ms / q,
                "samples": len(laps[label]["quiet"]),
            }
        )
    for b in backends.values():
        b.close()
    default = f"{auto_name}/{auto_prec}"
    return {
        "arch": str(det.arch),
        "size": size,
        "default": default,
        "default_mode": opts.backend if opts.backend != "auto" or opts.precision != "auto" else "auto",
        "selection": selection,
        "reference_ms": ref_ms,
        "default_speedup": rows[default]["speedup"],
        "default_busy_over_quiet": rows[default]["busy_over_quiet"],
        "rows": rows,
        "loadavg_during": {k: v for k, v in load.items() if v},
    }


def run(opts: BenchOptions) -> dict[str, Any]:
    size = opts.size or 640
    frames = opts.frames or 9
    busy = int(opts.extra.get("busy", 2))
    archs: tuple[str | None, ...] = (None,) if opts.weights else ((opts.arch,) if opts.arch else ARCHS)
    results = [on_worker_thread(measure, opts, arch, size, frames, busy) for arch in archs]
    return {
        "bench": "backends",
        "device": opts.device,
        "weights": opts.weights or "random",
        "size": size,
        "dets": opts.dets,
        "busy_processes": busy,
        "machine": machine(),
        "results": results,
    }


def markdown(result: dict[str, Any]) -> str:
    headers = [
        "arch",
        "backend",
        "threads",
        "forward ms",
        "vs torch fp32",
        f"busy ms ({result['busy_processes']} busy)",
        "busy / quiet",
        f"ROI Align + encoder ms ({result['dets']} boxes)",
        "parity (boxes / probs / maps, rel. L2)",
    ]
    rows = []
    for res in result["results"]:
        for label, r in res["rows"].items():
            par = r.get("parity")
            verdict = (
                "reference"
                if par is None
                else (
                    f"{par['box']:.1e} / {par['prob']:.1e} / {max(par['maps'].values()):.1e} "
                    + ("pass" if par["passed"] else "**fail**")
                )
            )
            name = f"**{label}** (default)" if label == res["default"] else label
            rows.append(
                [
                    res["arch"],
                    name,
                    r["threads"],
                    r["forward_ms"],
                    f"{r['speedup']:.2f}x",
                    r["busy_ms"],
                    f"{r['busy_over_quiet']:.2f}",
                    r["encoder_ms"],
                    verdict,
                ]
            )
    m = result["machine"]
    loads = ", ".join(
        f"{res['arch']}: quiet {np.mean(res['loadavg_during'].get('quiet', [np.nan])):.1f} / busy "
        f"{np.mean(res['loadavg_during'].get('busy', [np.nan])):.1f}"
        for res in result["results"]
    )
    return (
        f"Inference backends ({result['size']}x{result['size']}, batch 1, {result['weights']} weights; median ms; "
        f"{m['cpu']}, {m['cores']} cores, AMX {'yes' if m.get('amx_bf16') else 'no'}; 1-min load during the "
        f"blocks: {loads})\n\n" + md_table(headers, rows)
    )
