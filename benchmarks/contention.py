"""Bench — thread pools on a shared CPU: each backend's forward quiet and with busy processes beside it, under the
thread and wait-policy settings that decide how it degrades.

Every variant runs in a process of its own (``python -m benchmarks.contention VARIANT_JSON``: a thread pool's wait
policy is fixed when its library loads), on a random detector of ``--arch`` at ``--size`` (default yolov7-tiny,
640), batch 1, on a worker thread as the server runs it. Inside the process, rounds alternate a quiet block and a
busy block (``--busy`` processes spinning ``python -c "while True: pass"`` started before the block, killed after).
Reported per variant: median forward ms quiet and busy, ``busy / quiet``, and busy against the *default* variant's
quiet time (what a deployment with the defaults sees when neighbours load the CPU).

Variants: torch fp32 and bf16 with ``OMP_WAIT_POLICY=PASSIVE`` (what ``roitrack`` sets) and ``ACTIVE`` (libgomp's
spinning default), and 1 thread; OpenVINO bf16 / f32 with all CPUs and 1 thread (pinning off); ONNX Runtime with
spinning off (our default) and on, and 1 thread.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import numpy as np

from benchmarks.common import BenchOptions, machine, md_table, median_ms

ROUNDS = 3


def variants(opts: BenchOptions) -> list[dict[str, Any]]:
    from tracker_core.inference import installed_backends, supported_precisions

    out: list[dict[str, Any]] = []
    bf16 = "bf16" in supported_precisions("torch")
    for prec in ["fp32", *(["bf16"] if bf16 else [])]:
        out += [
            {"backend": "torch", "precision": prec, "threads": 0, "omp": "PASSIVE"},
            {"backend": "torch", "precision": prec, "threads": 0, "omp": "ACTIVE"},
            {"backend": "torch", "precision": prec, "threads": 1, "omp": "PASSIVE"},
        ]
    if "openvino" in installed_backends():
        for prec in reversed(supported_precisions("openvino")):
            out += [
                {"backend": "openvino", "precision": prec, "threads": 0},
                {"backend": "openvino", "precision": prec, "threads": 1},
            ]
    if "onnxruntime" in installed_backends():
        out += [
            {"backend": "onnxruntime", "precision": "fp32", "threads": 0, "spinning": False},
            {"backend": "onnxruntime", "precision": "fp32", "threads": 0, "spinning": True},
            {"backend": "onnxruntime", "precision": "fp32", "threads": 1, "spinning": False},
        ]
    if opts.backend != "auto":
        out = [v for v in out if v["backend"] == opts.backend]
    if opts.precision != "auto":
        out = [v for v in out if v["precision"] == opts.precision]
    return out


def label(v: dict[str, Any]) -> str:
    parts = [f"{v['backend']}/{v['precision']}", f"threads {v['threads'] or 'all'}"]
    if "omp" in v:
        parts.append(f"OMP_WAIT_POLICY={v['omp']}")
    if "spinning" in v:
        parts.append(f"allow_spinning={int(v['spinning'])}")
    return ", ".join(parts)


def is_default(v: dict[str, Any]) -> bool:
    """The settings `roitrack` runs with: all CPUs, passive OpenMP, no ONNX Runtime spinning."""
    return v["threads"] == 0 and v.get("omp", "PASSIVE") == "PASSIVE" and not v.get("spinning", False)


def run(opts: BenchOptions) -> dict[str, Any]:
    from benchmarks.service import child_env

    arch = opts.arch or "yolov7-tiny"
    size = opts.size or 640
    frames = opts.frames or 6
    busy = int(opts.extra.get("busy", 2))
    rows = []
    for v in variants(opts):
        env = child_env()
        env["OMP_WAIT_POLICY"] = v.get("omp", "PASSIVE")
        job = {**v, "arch": arch, "size": size, "frames": frames, "busy": busy, "seed": opts.seed}
        res = subprocess.run(
            [sys.executable, "-m", "benchmarks.contention", json.dumps(job)],
            env=env,
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
        if res.returncode != 0:
            raise RuntimeError(f"variant {label(v)} failed:\n{res.stderr[-3000:]}")
        laps = json.loads(res.stdout.strip().splitlines()[-1])
        q, b = median_ms(laps["quiet"]), median_ms(laps["busy"])
        rows.append({**v, "label": label(v), "default": is_default(v), "quiet_ms": q, "busy_ms": b,
                     "busy_over_quiet": b / q, "busy_max_ms": float(max(laps["busy"]) * 1e3),
                     "loadavg": laps["loadavg"]})  # fmt: skip
    for r in rows:  # busy against the default settings' quiet time of the same backend and precision
        base = next(
            (
                d
                for d in rows
                if d["default"] and d["backend"] == r["backend"] and d["precision"] == r["precision"]
            ),
            r,
        )
        r["busy_over_default_quiet"] = r["busy_ms"] / base["quiet_ms"]
    return {
        "bench": "contention",
        "arch": arch,
        "size": size,
        "busy_processes": busy,
        "frames_per_block": max(1, frames // ROUNDS),
        "rounds": ROUNDS,
        "machine": machine(),
        "results": rows,
    }


def markdown(result: dict[str, Any]) -> str:
    headers = ["variant", "quiet ms", f"busy ms ({result['busy_processes']} busy)", "busy / quiet",
               "busy / default quiet", "busy max ms", "1-min load (quiet / busy)"]  # fmt: skip
    rows = [
        [
            f"**{r['label']}** (default)" if r["default"] else r["label"],
            r["quiet_ms"],
            r["busy_ms"],
            f"{r['busy_over_quiet']:.2f}",
            f"{r['busy_over_default_quiet']:.2f}",
            r["busy_max_ms"],
            f"{np.mean(r['loadavg']['quiet']):.1f} / {np.mean(r['loadavg']['busy']):.1f}",
        ]
        for r in result["results"]
    ]
    m = result["machine"]
    return (
        f"Forward on a shared CPU ({result['arch']} at {result['size']}, batch 1, random weights; median of "
        f"{result['rounds']} rounds of a quiet and a busy block; each variant in a process of its own; "
        f"{m['cpu']}, {m['cores']} cores)\n\n" + md_table(headers, rows)
    )


# ------------------------------------------------------------------------------------------ the variant process


def _variant_main(job: dict[str, Any]) -> dict[str, Any]:
    import torch

    from benchmarks.backends import busy_processes, stop
    from benchmarks.common import bench_appearance, on_worker_thread
    from tracker_core.detector import build_detector
    from tracker_core.inference.graphs import ModelGraphs
    from tracker_core.inference.select import make_backend

    det = build_detector(job["arch"], fuse=True, seed=job["seed"])
    app = bench_appearance(det)
    graphs = ModelGraphs(det, app.encoder)
    if job["backend"] == "onnxruntime":
        from tracker_core.inference.onnxruntime_backend import OnnxRuntimeBackend

        backend: Any = OnnxRuntimeBackend(graphs, "fp32", job["threads"], app, spinning=job["spinning"])
    else:
        backend = make_backend(job["backend"], job["precision"], graphs, job["threads"], app)
    x = torch.rand(1, 3, job["size"], job["size"])
    per_block = max(1, job["frames"] // ROUNDS)

    def measure() -> dict[str, Any]:
        laps: dict[str, list[float]] = {"quiet": [], "busy": []}
        load: dict[str, list[float]] = {"quiet": [], "busy": []}
        with torch.inference_mode():
            for _ in range(2):
                backend.forward_taps(x)
            for _ in range(ROUNDS):
                for cond in ("quiet", "busy"):
                    procs = busy_processes(job["busy"]) if cond == "busy" else []
                    try:
                        time.sleep(0.3 if procs else 0.0)
                        for _ in range(per_block):
                            t0 = time.perf_counter()
                            backend.forward_taps(x)
                            laps[cond].append(time.perf_counter() - t0)
                    finally:
                        stop(procs)
                    load[cond].append(os.getloadavg()[0])
        return {**laps, "loadavg": load}

    return dict(on_worker_thread(measure))


if __name__ == "__main__":
    print(json.dumps(_variant_main(json.loads(sys.argv[1]))), flush=True)
