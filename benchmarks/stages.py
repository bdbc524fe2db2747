"""Bench 1 — per-stage cost per frame of the serving path, one frame at a time (batch 1).

Stages, in the order a frame goes through them: ``decode`` (JPEG -> RGB, the server's own decoder),
``letterbox`` (``Detector.preprocess``: letterbox + HWC uint8 -> CHW float tensor on the device),
``forward`` (the inference backend's ``forward_taps``: ``--backend``/``--precision``, default ``auto``), ``nms``
(``Detector.postprocess``), ``roi_align`` (``roi_features`` of the frame's boxes on the tap), ``encoder``
(``RoiEncoder`` on the backend -> numpy embeddings),
``camera_motion`` (the server's per-stream estimator, ``tracker_core.motion.CameraMotion`` in ``on`` mode so it runs
every frame: grey downscale + corners + optical flow + RANSAC, the frame's boxes masked), ``tracking``
(``Tracker.update`` with that warp) and ``serialize`` (``TrackResponse`` built and serialised).

The detector runs on the synthetic scene's frames; ROI Align, the encoder and the tracker get the scene's
``--dets`` boxes (default 50) rather than a random detector's output, so the tracker holds ~50 live tracks and
the figures are those of a busy camera. Detector weights are random unless ``--weights`` is given: a random
head passes a different number of candidates to NMS than a trained one (reported as ``nms_candidates``).

With ``--reid-model FILE.onnx`` the same boxes are also embedded by the ONNX ReID model (``ReidModel.embed_frame``
on the decoded frame: crops, resize, normalise, onnxruntime), timed apart from the chain: ``reid_ms``,
``reid_ms_per_crop`` and ``reid_share``, its share of a frame that uses it instead of ROI Align + encoder.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmarks.common import (
    BenchOptions,
    SyntheticScene,
    detector_for,
    encode_jpeg,
    machine,
    md_table,
    median_ms,
    now,
    on_worker_thread,
    sync,
)

STAGES = (
    "decode",
    "letterbox",
    "forward",
    "nms",
    "roi_align",
    "encoder",
    "camera_motion",
    "tracking",
    "serialize",
)
ARCHS = ("yolov7-tiny", "yolov7")
SIZES = (320, 640)
TRACKER_WARMUP_FRAMES = 12
MAX_PIXELS = 4096 * 4096


def tracks_to_proto(tracks: list[Any], frame_id: int, timestamp: float) -> Any:
    """The server's response message for one frame, built by the server's own converter (what ``serialize``
    times, together with ``SerializeToString``)."""
    from roitrack_api.roitrack.v1 import tracking_pb2 as pb
    from server.convert import tracks_to_pb

    return pb.TrackResponse(
        frame_id=frame_id, timestamp=timestamp, tracks=tracks_to_pb(tracks, return_lost=False)
    )


def make_encoder(det: Any, device: str) -> Any:
    """The ROI encoder for ``det``'s tap (randomly initialised: its cost does not depend on its weights)."""
    from tracker_core.encoder import RoiEncoder

    return RoiEncoder(in_channels=int(det.tap_channels)).to(device).eval()


def measure(
    det: Any,
    size: int,
    frames: int,
    dets: int,
    device: str,
    seed: int = 0,
    warmup: int = 2,
    images: list[np.ndarray] | None = None,
    reid: Any = None,
    backend: Any = None,
) -> dict[str, Any]:
    """Median per-frame ms of every stage over ``frames`` frames (after ``warmup`` untimed ones), the detector
    forward and encoder run by ``backend`` (an ``InferenceBackend``; default the torch reference); ``reid``: a
    ``tracker_core.reid.ReidModel`` timed on the same boxes."""
    if backend is None:
        from benchmarks.common import bench_appearance, make_bench_backend

        prec = "fp16" if str(device).startswith("cuda") else "fp32"
        backend = make_bench_backend(det, bench_appearance(det), "torch", prec)
    return measure_many(det, size, frames, dets, device, {"only": backend}, seed, warmup, images, reid)[
        "only"
    ]


def measure_many(
    det: Any,
    size: int,
    frames: int,
    dets: int,
    device: str,
    backends: dict[str, Any],
    seed: int = 0,
    warmup: int = 2,
    images: list[np.ndarray] | None = None,
    reid: Any = None,
) -> dict[str, dict[str, Any]]:
    """:func:`measure` for several backends in the same run: every frame goes through each backend's whole path
    in turn (the order rotating per frame), so a neighbour's load hits them alike. Each has its own tracker and
    camera-motion estimator; ``reid`` is timed once per frame."""
    import torch

    from server.decode import decode_encoded
    from tracker_core.motion import CameraMotion
    from tracker_core.tracking import Tracker

    scene = SyntheticScene(n=dets, seed=seed)
    fps = 10.0
    labels = list(backends)
    trackers = {k: Tracker() for k in labels}
    motions = {k: CameraMotion("on") for k in labels}
    times: dict[str, dict[str, list[float]]] = {k: {s: [] for s in STAGES} for k in labels}
    reid_s: list[float] = []
    crops: list[int] = []
    nms_candidates: dict[str, list[int]] = {k: [] for k in labels}
    live_tracks: dict[str, list[int]] = {k: [] for k in labels}
    frame_s: dict[str, list[float]] = {k: [] for k in labels}

    with torch.inference_mode():
        # Bring each tracker to a steady state (~dets confirmed tracks) with real embeddings of the first frame's
        # tap, so the timed updates associate `dets` detections against `dets` tracks.
        frame0, _, _, _ = scene.step(1.0 / fps)
        x0, tf0 = det.preprocess([frame0], (size, size))
        taps0 = {k: b.forward_taps(x0)[0] for k, b in backends.items()}
        ts = 0.0
        for _ in range(TRACKER_WARMUP_FRAMES):
            ts += 1.0 / fps
            _, boxes, scores, _ = scene.step(1.0 / fps)
            for k, b in backends.items():
                trackers[k].update(boxes, scores, ts, embeddings=b.embed(taps0[k], [boxes], tf0))

        for i in range(warmup + frames):
            ts += 1.0 / fps
            frame, boxes, scores, _ = scene.step(1.0 / fps)
            if images is not None:
                frame = images[i % len(images)]
                boxes = _fit_boxes(boxes, frame.shape[1], frame.shape[0])
            jpeg = encode_jpeg(frame)
            rgb = None
            for label in labels[i % len(labels) :] + labels[: i % len(labels)]:
                b, tracker = backends[label], trackers[label]
                t0 = now()
                rgb = decode_encoded(jpeg, MAX_PIXELS)
                t1 = now()
                x, transforms = det.preprocess([rgb], (size, size))
                sync(device)
                t2 = now()
                taps, pred = b.forward_taps(x)
                sync(device)
                t3 = now()
                out = det.postprocess(pred, transforms)
                t4 = now()
                feats = b.roi_features(taps, [boxes], transforms, x)  # float32 maps, as the server reads them
                sync(device)
                t5 = now()
                emb = b.encode(feats)
                t6 = now()
                warp = motions[label].update(rgb, boxes, ts)
                t6b = now()
                tracks = tracker.update(boxes, scores, ts, embeddings=emb, warp=warp)
                t7 = now()
                data = tracks_to_proto(tracks, i, ts).SerializeToString()
                t8 = now()
                assert len(data) > 0
                del out
                if i < warmup:
                    continue
                for name, a, c in zip(
                    STAGES,
                    (t0, t1, t2, t3, t4, t5, t6, t6b, t7),
                    (t1, t2, t3, t4, t5, t6, t6b, t7, t8),
                    strict=True,
                ):
                    times[label][name].append(c - a)
                frame_s[label].append(t8 - t0)
                nms_candidates[label].append(int(_candidates(pred)))
                live_tracks[label].append(len(tracks))
            if reid is not None and rgb is not None:
                t9 = now()
                reid.embed_frame(rgb, boxes)
                if i >= warmup:
                    reid_s.append(now() - t9)
                    crops.append(len(boxes))

    out_all: dict[str, dict[str, Any]] = {}
    for label, b in backends.items():
        ms = {s: median_ms(times[label][s]) for s in STAGES}
        total = float(sum(ms.values()))
        extra: dict[str, Any] = {}
        if reid is not None:
            r_ms = median_ms(reid_s)
            extra = {
                "reid_ms": r_ms,
                "reid_ms_per_crop": r_ms / max(1.0, float(np.median(crops))),
                "reid_share": r_ms / (total - ms["roi_align"] - ms["encoder"] + r_ms),
            }
        out_all[label] = {
            "backend": f"{b.name}/{b.precision}",
            "ms": ms,
            "total_ms": total,
            "fps": 1000.0 / total if total > 0 else float("nan"),
            "share": {s: ms[s] / total for s in STAGES},
            "tracking_share": ms["tracking"] / total,
            "camera_motion_share": ms["camera_motion"] / total,
            "frame_ms_median": median_ms(frame_s[label]),
            "frame_ms_min": float(min(frame_s[label]) * 1e3),
            "frames": frames,
            "dets": dets,
            "tracks": int(np.median(live_tracks[label])) if live_tracks[label] else 0,
            "nms_candidates": int(np.median(nms_candidates[label])) if nms_candidates[label] else 0,
            **extra,
        }
    return out_all


def _candidates(pred: Any) -> int:
    """Predictions above the default confidence threshold (obj * best class score > 0.25), frame 0."""
    p = pred[0].float()
    conf = p[:, 4:5] * p[:, 5:]
    return int((conf.amax(dim=1) > 0.25).sum())


def _fit_boxes(boxes: np.ndarray, w: int, h: int) -> np.ndarray:
    """Scale scene boxes (768x576) to a ``w x h`` real frame."""
    from benchmarks.common import FRAME_H, FRAME_W

    s = np.array([w / FRAME_W, h / FRAME_H, w / FRAME_W, h / FRAME_H], dtype=np.float32)
    return (boxes * s).astype(np.float32)


def run(opts: BenchOptions) -> dict[str, Any]:
    import torch

    from benchmarks.common import (
        REFERENCE_LABEL,
        bench_appearance,
        image_frames,
        make_bench_backend,
        resolve_backend,
    )

    frames = opts.frames or 10
    sizes = (opts.size,) if opts.size else SIZES
    if opts.weights:
        archs: tuple[str | None, ...] = (None,)
    elif opts.arch:
        archs = (opts.arch,)
    else:
        archs = ARCHS
    images = image_frames(opts.source, frames + 2) if opts.source else None
    reid = None
    if opts.extra.get("reid_model"):
        from tracker_core.reid import load_reid_model

        reid = load_reid_model(str(opts.extra["reid_model"]), device=opts.device)
    rows = []
    selections = []
    for arch in archs:
        det = detector_for(opts, arch, fuse=True)
        app = bench_appearance(det)
        for size in sizes:
            name, precision, selection = resolve_backend(opts, det, size, app)
            selections.append({"arch": str(det.arch), "size": size, "selection": selection})
            backends = {f"{name}/{precision}": make_bench_backend(det, app, name, precision)}
            if opts.vs_reference and opts.device == "cpu":
                backends.setdefault(REFERENCE_LABEL, make_bench_backend(det, app, "torch", "fp32"))
            res = on_worker_thread(
                measure_many, det, size, frames, opts.dets, opts.device, backends, opts.seed, 2, images, reid
            )
            ref = res.get(REFERENCE_LABEL)
            for r in res.values():
                row = {"arch": str(det.arch), "size": size, "device": opts.device, "fused": True, **r}
                if ref is not None:
                    row["forward_speedup"] = ref["ms"]["forward"] / r["ms"]["forward"]
                    row["frame_speedup"] = ref["frame_ms_median"] / r["frame_ms_median"]
                rows.append(row)
            for b in backends.values():
                b.close()
        del det
        if opts.device.startswith("cuda"):
            torch.cuda.empty_cache()
    return {
        "bench": "stages",
        "device": opts.device,
        "weights": opts.weights or "random",
        "source": opts.source or "synthetic",
        "machine": machine(),
        "stages": list(STAGES),
        "reid_model": str(opts.extra.get("reid_model") or ""),
        "results": rows,
        "selections": selections,
        "tracking_share_max": max(r["tracking_share"] for r in rows),
        "target_tracking_share": 0.02,
        "camera_motion_share_max": max(r["camera_motion_share"] for r in rows),
        "target_camera_motion_share": 0.10,
    }


def markdown(result: dict[str, Any]) -> str:
    with_reid = bool(result.get("reid_model"))
    headers = ["arch", "size", "backend", *STAGES, "total ms", "fps", "tracking share", "camera motion share"]
    headers += ["tracks"]
    headers += ["reid ms", "reid ms/crop", "reid share (instead of roi_align+encoder)"] if with_reid else []
    speed = any("frame_speedup" in r for r in result["results"])
    headers += ["forward vs torch fp32", "frame vs torch fp32"] if speed else []
    rows = [
        [
            r["arch"],
            r["size"],
            r.get("backend", "torch/fp32"),
            *(r["ms"][s] for s in STAGES),
            r["total_ms"],
            r["fps"],
            f"{100 * r['tracking_share']:.2f}%",
            f"{100 * r.get('camera_motion_share', 0.0):.2f}%",
            r["tracks"],
            *([r["reid_ms"], r["reid_ms_per_crop"], f"{100 * r['reid_share']:.1f}%"] if with_reid else []),
            *(
                [f"{r['forward_speedup']:.2f}x", f"{r['frame_speedup']:.2f}x"]
                if speed and "frame_speedup" in r
                else (["-", "-"] if speed else [])
            ),
        ]
        for r in result["results"]
    ]
    m = result["machine"]
    return (
        f"Per-stage cost per frame (median ms, batch 1, fused, {result['device']}, {result['weights']} weights, "
        f"{result['results'][0]['dets']} boxes per frame; {m.get('gpu') or m['cpu']}, "
        f"{m['torch_threads']} torch threads)\n\n" + md_table(headers, rows)
    )
