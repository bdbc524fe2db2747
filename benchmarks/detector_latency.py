"""Detector latency per stage — letterbox, forward, NMS — for yolov7 and yolov7-tiny, fused vs unfused.

    python -m benchmarks.detector_latency [--json out.json] [--md docs/detector.md] [--iters 3]

For every arch x input size (320, 640) x batch (1, 4) both the unfused and the fused model are timed in the
same run, their iterations interleaved (unfused, fused, unfused, ...) so that load from other processes on a
shared machine hits both alike; the figure that matters is the ratio fused / unfused. Frames are 768x576
(PETS09-S2L1 frames when ``../shared`` is there, else a fixed random image). Times are in ms; the table shows
the best of the timed iterations (least disturbed by other processes on a shared CPU), the JSON also holds
every sample and the medians.
Weights are random (``build_detector``) unless ``--weights-dir`` holds ``<arch>.safetensors``: latency does not
depend on the weight values, except NMS, which depends on how many boxes pass the threshold (reported).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

MARK_BEGIN = "<!-- bench:detector_latency:begin -->"
MARK_END = "<!-- bench:detector_latency:end -->"
FRAME_H, FRAME_W = 576, 768


def _frames(n: int) -> list[np.ndarray]:
    import cv2

    shared = Path(os.environ.get("ROITRACK_SHARED", Path(__file__).resolve().parents[2] / "shared"))
    img_dir = shared / "data" / "PETS09-S2L1-dev" / "img1"
    files = sorted(img_dir.glob("*.jpg"))[100 : 100 + n] if img_dir.is_dir() else []
    out = []
    for f in files:
        bgr = cv2.imread(str(f))
        if bgr is not None:
            out.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    rng = np.random.default_rng(0)
    while len(out) < n:
        out.append(rng.integers(0, 256, (FRAME_H, FRAME_W, 3), dtype=np.uint8))
    return out


def _loadavg() -> str:
    try:
        return " ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def _detector(arch: str, fuse: bool, weights_dir: Path | None, device: str) -> Any:
    from tracker_core.detector import build_detector, load_detector

    if weights_dir is not None and (weights_dir / f"{arch}.safetensors").is_file():
        return load_detector(weights_dir / f"{arch}.safetensors", device=device, fuse=fuse)
    return build_detector(arch, device=device, fuse=fuse)


def _time_once(det: Any, frames: list[np.ndarray], size: int, conf: float) -> dict[str, float]:
    import torch

    def sync() -> None:
        if det.device.type == "cuda":
            torch.cuda.synchronize(det.device)

    t0 = time.perf_counter()
    x, transforms = det.preprocess(frames, (size, size))
    sync()
    t1 = time.perf_counter()
    _tap, pred = det.forward_raw(x)
    sync()
    t2 = time.perf_counter()
    results = det.postprocess(pred, transforms, conf=conf)
    sync()
    t3 = time.perf_counter()
    return {
        "letterbox_ms": (t1 - t0) * 1e3,
        "forward_ms": (t2 - t1) * 1e3,
        "nms_ms": (t3 - t2) * 1e3,
        "boxes": float(sum(len(r[0]) for r in results)),
    }


def run(
    arches: list[str],
    sizes: list[int],
    batches: list[int],
    iters: int,
    warmup: int,
    threads: int,
    device: str = "cpu",
    conf: float = 0.25,
    weights_dir: Path | None = None,
) -> dict[str, Any]:
    import torch

    torch.set_num_threads(threads)
    load_start = _loadavg()
    frames_all = _frames(max(batches))
    rows: list[dict[str, Any]] = []
    ratios: list[dict[str, Any]] = []
    for arch in arches:
        models = {fuse: _detector(arch, fuse, weights_dir, device) for fuse in (False, True)}
        for size in sizes:
            for batch in batches:
                frames = frames_all[:batch]
                samples: dict[bool, list[dict[str, float]]] = {False: [], True: []}
                for i in range(warmup + iters):
                    for fuse in (False, True):
                        s = _time_once(models[fuse], frames, size, conf)
                        if i >= warmup:
                            samples[fuse].append(s)
                med = {}
                for fuse in (False, True):
                    keys = list(samples[fuse][0])
                    best = {k: min(x[k] for x in samples[fuse]) for k in keys}
                    best["total_ms"] = best["letterbox_ms"] + best["forward_ms"] + best["nms_ms"]
                    best["per_frame_ms"] = best["total_ms"] / batch
                    median = {f"median_{k}": statistics.median(x[k] for x in samples[fuse]) for k in keys}
                    med[fuse] = best
                    rows.append(
                        {
                            "arch": arch,
                            "size": size,
                            "batch": batch,
                            "fused": fuse,
                            **best,
                            **median,
                            "samples": samples[fuse],
                        }
                    )
                ratios.append(
                    {
                        "arch": arch,
                        "size": size,
                        "batch": batch,
                        "forward_fused_over_unfused": med[True]["forward_ms"] / med[False]["forward_ms"],
                        "total_fused_over_unfused": med[True]["total_ms"] / med[False]["total_ms"],
                    }
                )
                print(
                    f"{arch:12s} {size}x{size} b{batch}: letterbox {med[True]['letterbox_ms']:.1f} ms, "
                    f"forward {med[False]['forward_ms']:.1f} -> {med[True]['forward_ms']:.1f} ms fused "
                    f"({ratios[-1]['forward_fused_over_unfused']:.2f}x), NMS {med[True]['nms_ms']:.1f} ms",
                    flush=True,
                )
    return {
        "benchmark": "detector_latency",
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cpu_count": os.cpu_count(),
            "torch_threads": threads,
            "processor": platform.processor() or platform.machine(),
            "device": device,
            "loadavg_start": load_start,
            "loadavg_end": _loadavg(),
        },
        "config": {
            "arches": arches,
            "sizes": sizes,
            "batches": batches,
            "iters": iters,
            "warmup": warmup,
            "conf": conf,
            "frame": f"{FRAME_W}x{FRAME_H}",
            "weights": "converted" if weights_dir else "random (build_detector)",
        },
        "rows": rows,
        "ratios": ratios,
    }


def markdown(result: dict[str, Any]) -> str:
    cfg, mach = result["config"], result["machine"]
    lines = [
        f"Machine: {mach['processor']}, {mach['cpu_count']} cores visible, torch {mach['torch']} with "
        f"{mach['torch_threads']} threads, device {mach['device']}; frames {cfg['frame']}; "
        f"best of {cfg['iters']} interleaved iterations after {cfg['warmup']} warm-up; "
        f"weights {cfg['weights']}; load average at start {mach['loadavg_start']}, at end {mach['loadavg_end']}.",
        "",
        "| arch | input | batch | letterbox ms | forward unfused ms | forward fused ms | fused / unfused "
        "| NMS ms | total ms / frame (fused) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    by_key = {(r["arch"], r["size"], r["batch"], r["fused"]): r for r in result["rows"]}
    for q in result["ratios"]:
        un = by_key[(q["arch"], q["size"], q["batch"], False)]
        fu = by_key[(q["arch"], q["size"], q["batch"], True)]
        lines.append(
            f"| {q['arch']} | {q['size']}x{q['size']} | {q['batch']} | {fu['letterbox_ms']:.1f} "
            f"| {un['forward_ms']:.1f} | {fu['forward_ms']:.1f} | {q['forward_fused_over_unfused']:.2f} "
            f"| {fu['nms_ms']:.1f} | {fu['per_frame_ms']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def write_markdown(path: Path, table: str, command: str) -> None:
    """Replace the block between the markers in ``path`` (append one if absent)."""
    block = f"{MARK_BEGIN}\n\nReproduce: `{command}`\n\n{table}\n{MARK_END}"
    text = path.read_text() if path.exists() else ""
    if MARK_BEGIN in text and MARK_END in text:
        pattern = re.compile(re.escape(MARK_BEGIN) + r".*?" + re.escape(MARK_END), re.S)
        text = pattern.sub(lambda _m: block, text)
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + block + "\n"
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--arch", nargs="+", default=["yolov7-tiny", "yolov7"])
    p.add_argument("--sizes", nargs="+", type=int, default=[320, 640])
    p.add_argument("--batches", nargs="+", type=int, default=[1, 4])
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1: stable on a shared, loaded CPU)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--weights-dir", type=Path, default=None, help="folder with <arch>.safetensors (optional)")
    p.add_argument("--json", type=Path, default=None, help="write the result as JSON here")
    p.add_argument("--md", type=Path, default=None, help="write the table into this Markdown file (markers)")
    args = p.parse_args(argv)
    result = run(
        args.arch,
        args.sizes,
        args.batches,
        args.iters,
        args.warmup,
        args.threads,
        args.device,
        0.25,
        args.weights_dir,
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    table = markdown(result)
    print(table)
    if args.md:
        cmd = "python -m benchmarks.detector_latency " + " ".join(
            argv if argv is not None else __import__("sys").argv[1:]
        )
        write_markdown(args.md, table, cmd.strip())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
