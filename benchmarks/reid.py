"""``roitrack bench reid`` - what an ONNX ReID model costs a server: per frame, per crop, and as a share of the
frame time, at 1, 4 and 8 concurrent streams.

One ``roitrack serve`` process on loopback holds a (random) yolov7-tiny detector, a random ROI encoder and the
ReID model (``--reid-model``, default ``../shared/models/osnet_x0_25_msmt17.onnx``). For each stream count, the
streams run closed-loop (2 frames in flight each: the server is saturated and batches frames of several streams)
for ``--duration`` seconds, once choosing ``embedding roi`` and once ``embedding reid``, sending the synthetic
scene's JPEG frames with ``--dets`` client boxes (default 10: a busy pedestrian camera; PETS09 has 4-8). All
figures come from the server's own Prometheus metrics, scraped before and after each point:

- ``reid`` ms/frame: the ``reid`` stage (crops of all the batch's frames, resize, normalise, onnxruntime; a batch's
  time divided over its frames); crops/frame: ``roitrack_reid_crops_per_frame``; ms/crop = the two divided;
- frame ms: the sum of the server's per-frame stages (decode ... serialize, not the queue): the processing cost of
  a frame. ``reid share`` = reid / frame ms of the reid streams (their boxes came from the client: no detector
  forward). ``share with detector`` = reid / (the roi streams' frame ms - their roi_align and encoder + reid): the
  share a server that detects its own boxes and embeds them with the ReID model would spend on ReID.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import DEFAULT_ARCH, BenchOptions, machine, md_table
from benchmarks.service import (
    ServerProcess,
    make_items,
    run_async,
    run_streams,
    summarise,
    write_random_encoder,
)
from tracker_core.errors import ConfigError

COUNTS = (1, 4, 8)
DEFAULT_MODEL = "../shared/models/osnet_x0_25_msmt17.onnx"
FRAME_STAGES = (
    "decode",
    "letterbox",
    "inference",
    "nms",
    "roi_align",
    "encoder",
    "reid",
    "tracking",
    "serialize",
)
WARMUP_S = 3.0


def _scrape(srv: ServerProcess) -> dict[str, float]:
    """Cumulative sums and counts of the families this benchmark reads."""
    m = srv.metrics()
    out: dict[str, float] = {}
    for name, samples in m.items():
        if name.startswith("roitrack_stage_latency_seconds_"):
            for labels, v in samples:
                out[f"{name}:{labels.get('stage')}"] = v
        elif name.startswith(("roitrack_reid_", "roitrack_frames_processed_total")):
            out[name] = sum(v for _, v in samples)
    return out


def _delta(after: dict[str, float], before: dict[str, float], key: str) -> float:
    return after.get(key, 0.0) - before.get(key, 0.0)


def measure_point(
    srv: ServerProcess, n: int, items: list[Any], embedding: str, duration: float, warmup_s: float
) -> dict[str, Any]:
    if warmup_s > 0:
        run_async(run_streams(srv.address, n, items, warmup_s, None, 2, True, f"w{embedding}{n}", embedding))
    before = _scrape(srv)
    t0 = time.perf_counter()
    stats = run_async(
        run_streams(srv.address, n, items, duration, None, 2, True, f"{embedding}{n}", embedding)
    )
    wall = time.perf_counter() - t0
    after = _scrape(srv)
    res = summarise(stats, wall)
    stage_ms = {}
    for st in FRAME_STAGES:
        c = _delta(after, before, f"roitrack_stage_latency_seconds_count:{st}")
        s = _delta(after, before, f"roitrack_stage_latency_seconds_sum:{st}")
        stage_ms[st] = 1e3 * s / c if c else 0.0
    frames = _delta(after, before, "roitrack_reid_crops_per_frame_count")
    crops = _delta(after, before, "roitrack_reid_crops_per_frame_sum")
    per_crop_obs = _delta(after, before, "roitrack_reid_crop_seconds_count")
    res.update(
        embedding=embedding,
        wall_s=wall,
        stage_ms=stage_ms,
        frame_ms=sum(stage_ms.values()),
        reid_frames=frames,
        crops_per_frame=crops / frames if frames else 0.0,
        reid_ms_per_frame=stage_ms["reid"],
        reid_ms_per_crop=stage_ms["reid"] / (crops / frames) if crops else 0.0,
        reid_crop_metric_ms=1e3 * _delta(after, before, "roitrack_reid_crop_seconds_sum") / per_crop_obs
        if per_crop_obs
        else 0.0,
    )
    return res


def run(opts: BenchOptions) -> dict[str, Any]:
    model = str(opts.extra.get("reid_model") or DEFAULT_MODEL)
    if not Path(model).is_file():
        raise ConfigError(f"ReID model {model} not found: give --reid-model FILE.onnx")
    size = opts.size or 320
    duration = opts.duration or 20.0
    warmup_s = float(opts.extra.get("warmup_s", WARMUP_S))
    counts = tuple(c for c in COUNTS if c <= (opts.streams or COUNTS[-1])) or (1,)
    items = make_items(40, opts.dets, seed=opts.seed)
    rows = []
    with tempfile.TemporaryDirectory(prefix="roitrack-bench-reid-") as tmp:
        settings: dict[str, Any] = {
            "device": opts.device,
            "input_size": size,
            "max_batch": int(opts.extra.get("max_batch", 8)),
            "max_streams": 64,
            "resume_window_s": 0,
            "reid_model": model,
            "queue_size": 2,
        }
        if opts.weights:
            settings["weights"] = opts.weights
        else:
            settings.update(random_weights=True, arch=opts.arch or DEFAULT_ARCH)
            settings["encoder"] = str(write_random_encoder(Path(tmp), opts.arch or DEFAULT_ARCH))
        with ServerProcess(settings, seed=opts.seed, log_path=str(Path(tmp) / "serve.log")) as srv:
            for n in counts:
                roi = measure_point(srv, n, items, "roi", duration, warmup_s)
                reid = measure_point(srv, n, items, "reid", duration, warmup_s)
                detector_path = roi["frame_ms"] - roi["stage_ms"]["roi_align"] - roi["stage_ms"]["encoder"]
                rows.append(
                    {
                        "streams": n,
                        "roi": roi,
                        "reid": reid,
                        "reid_share": reid["reid_ms_per_frame"] / reid["frame_ms"]
                        if reid["frame_ms"]
                        else 0.0,
                        "reid_share_with_detector": reid["reid_ms_per_frame"]
                        / (detector_path + reid["reid_ms_per_frame"]),
                        "reid_vs_roi_encoder": reid["reid_ms_per_frame"]
                        / max(1e-9, roi["stage_ms"]["roi_align"] + roi["stage_ms"]["encoder"]),
                    }
                )
    from tracker_core.reid import file_sha256

    return {
        "bench": "reid",
        "reid_model": model,
        "reid_model_sha256": file_sha256(model),
        "arch": (opts.arch or DEFAULT_ARCH) if not opts.weights else "from weights",
        "weights": opts.weights or "random",
        "size": size,
        "device": opts.device,
        "duration_s": duration,
        "dets": opts.dets,
        "machine": machine(),
        "results": rows,
    }


def markdown(result: dict[str, Any]) -> str:
    headers = [
        "streams",
        "reid fps",
        "roi fps",
        "mean batch (reid)",
        "crops/frame",
        "reid ms/frame",
        "reid ms/crop",
        "frame ms (reid)",
        "reid share",
        "frame ms (roi)",
        "roi_align+encoder ms",
        "reid share with detector",
    ]
    rows = []
    for r in result["results"]:
        reid, roi = r["reid"], r["roi"]
        rows.append(
            [
                r["streams"],
                reid["fps"],
                roi["fps"],
                reid["mean_batch"],
                reid["crops_per_frame"],
                reid["reid_ms_per_frame"],
                reid["reid_ms_per_crop"],
                reid["frame_ms"],
                f"{100 * r['reid_share']:.1f}%",
                roi["frame_ms"],
                roi["stage_ms"]["roi_align"] + roi["stage_ms"]["encoder"],
                f"{100 * r['reid_share_with_detector']:.1f}%",
            ]
        )
    stage_rows = [
        [r["streams"], mode, *(r[mode]["stage_ms"][s] for s in FRAME_STAGES)]
        for r in result["results"]
        for mode in ("reid", "roi")
    ]
    m = result["machine"]
    return (
        f"ReID cost ({Path(result['reid_model']).name}, sha256 {result['reid_model_sha256'][:12]}; server: "
        f"{result['arch']} at {result['size']}, {result['device']}; closed loop, 2 frames in flight per stream, "
        f"{result['dets']} client boxes per frame, {result['duration_s']:g} s per point; per-frame ms from the "
        f"server's metrics; {m.get('gpu') or m['cpu']}, {m['cores']} cores)\n\n"
        + md_table(headers, rows)
        + "\n\nPer-frame stage ms (a batched stage's time divided over its frames):\n\n"
        + md_table(["streams", "embedding", *FRAME_STAGES], stage_rows)
    )
