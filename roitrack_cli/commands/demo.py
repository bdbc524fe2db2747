"""``roitrack demo``: the whole system on one machine in about a minute.

Starts the tracking server on loopback, streams the synthetic sample (or ``--source``) through the real gRPC
path, then prints a summary: tracks, MOTA / IDF1 / HOTA against the sample's ground truth (TrackEval),
latency percentiles and drops; writes the annotated video and MOTChallenge results into ``--out-dir``.

With detector weights (``--weights``, ``$ROITRACK_WEIGHTS`` or ``weights/yolov7-tiny.safetensors``) the detector
finds the objects. Without them (a fresh machine, no network) it says so loudly, sends the sample's own
detections with every frame, and runs a randomly initialised yolov7-tiny backbone for the ROI features.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from roitrack_cli.reid_args import REID_FLAGS, add_reid_args

HELP = "run the embedded end-to-end demo (server + streamed sample)"

DEFAULT_WEIGHTS = ("weights/yolov7-tiny.safetensors", "weights/yolov7.safetensors")

BANNER = """
==============================================================================================
  OFFLINE DEMO: no detector weights found ({looked}).
  The detector is a RANDOMLY INITIALISED {arch} backbone: its own detections would be noise, so
  the client sends the sample's detections (det/det.txt) with every frame. Everything else is the
  real path: gRPC streaming, batching, ROI Align on the backbone's features, tracking, metrics.
  For real detections: roitrack download-weights yolov7-tiny (or convert-weights), then
  roitrack demo --weights weights/yolov7-tiny.safetensors
==============================================================================================
"""


def configure(parser: argparse.ArgumentParser) -> None:
    a = parser.add_argument
    a("--source", help="MOTChallenge sequence folder, image folder or video (default: the synthetic sample)")
    a(
        "--out-dir",
        default="demo_out",
        help="where the sample, video, results and summary go (default demo_out)",
    )
    a(
        "--weights",
        help="detector .safetensors (default $ROITRACK_WEIGHTS or weights/yolov7-tiny.safetensors)",
    )
    a("--encoder", help="ROI encoder .safetensors (appearance; must match the detector)")
    add_reid_args(
        parser,
        "ONNX person-ReID model on image crops: the demo stream tracks with it (--embedding reid) instead of "
        "the ROI encoder",
    )
    a("--arch", default="yolov7-tiny", choices=("yolov7", "yolov7-tiny"), help="random backbone when offline")
    a("--size", type=int, default=320, help="detector input size (default 320)")
    a("--device", default="auto", help="auto | cpu | cuda (default auto)")
    from roitrack_cli.commands.serve import BACKEND_HELP, PRECISION_HELP
    from tracker_core.inference.options import BACKENDS, PRECISIONS

    a("--backend", choices=BACKENDS, default="auto", help=BACKEND_HELP)
    a("--precision", choices=PRECISIONS, default="auto", help=PRECISION_HELP)
    a("--max-frames", type=int, default=0, help="stop after this many frames (default 0: all)")
    a("--no-video", action="store_true", help="do not write the annotated video")
    a("--no-appearance", action="store_true", help="offline: no random encoder (motion-only tracking)")


def find_weights(explicit: str | None) -> tuple[str | None, str]:
    """The weights to use and a description of where we looked."""
    if explicit:
        return explicit, explicit
    candidates = [os.environ.get("ROITRACK_WEIGHTS") or "", *DEFAULT_WEIGHTS]
    for c in candidates:
        if c and Path(c).is_file():
            return c, c
    return None, ", ".join(c for c in candidates if c)


def run(args: argparse.Namespace) -> int:
    import asyncio
    import json
    import logging
    import time

    from client.results import ResultSink
    from client.sample import make_sample
    from client.sources import open_source
    from client.stream import StreamClient, StreamConfig
    from server.app import TrackingServer
    from server.config import ServerConfig, validate
    from server.loading import build_runner, describe_backend, tracker_factory

    logging.getLogger("server").setLevel(logging.WARNING)
    logging.getLogger("tracker_core.inference").setLevel(logging.WARNING)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    if args.source:
        seq = Path(args.source)
    else:
        seq = out / "sample" / "roitrack-sample"
        if not (seq / "gt" / "gt.txt").is_file():
            seq = make_sample(out / "sample")
            print(f"rendered the synthetic sample into {seq}")
    weights, looked = find_weights(args.weights)
    offline = weights is None
    has_dets = (seq / "det" / "det.txt").is_file()
    if offline:
        print(BANNER.format(looked=looked, arch=args.arch))
        if not has_dets:
            print(
                f"WARNING: {seq} has no det/det.txt: the random detector's boxes will be tracked (meaningless)"
            )
    cfg = ServerConfig(
        host="127.0.0.1",
        port=0,
        metrics_port=0,
        weights=weights,
        random_weights=offline,
        arch=args.arch,
        encoder=args.encoder,
        random_encoder=offline and not args.encoder and not args.no_appearance and not args.reid_model,
        reid_model=args.reid_model,
        **{k: getattr(args, k) for k in REID_FLAGS},
        device=args.device,
        backend=args.backend,
        precision=args.precision,
        input_size=args.size,
        check_port=False,
        max_wait_ms=2.0,
    )
    validate(cfg)
    runner = build_runner(cfg)
    print(f"inference: {describe_backend(runner.backend)}")
    video = None if args.no_video else str(out / "annotated.mp4")
    mot = out / "results.txt"
    source = open_source(str(seq), detections="auto" if offline and has_dets else None)
    sink = ResultSink(video, str(mot), fps=source.fps or 10.0)
    frames: Any = iter(source)
    if args.max_frames > 0:
        import itertools

        frames = itertools.islice(source, args.max_frames)

    async def main() -> tuple[Any, dict[str, float]]:
        srv = TrackingServer(cfg, runner, tracker_factory())
        await srv.start()
        try:
            client = StreamClient(
                StreamConfig(
                    server=f"127.0.0.1:{srv.port}",
                    stream_id="demo",
                    send_detections=offline,
                    max_in_flight=2,
                    embedding="reid" if args.reid_model else "off" if args.no_appearance else None,
                ),
                on_result=sink,
            )
            stats = await client.run(frames)
            stages = _stage_means_ms(srv)
        finally:
            await srv.shutdown(drain_timeout_s=2.0)
        return stats, stages

    try:
        stats, stages = asyncio.run(main())
    finally:
        sink.close()
        source.close()
    scores: dict[str, float] | str = _evaluate(seq, mot)
    if args.max_frames > 0 and isinstance(scores, dict):
        scores["note"] = "scored against the whole ground truth, but --max-frames cut the stream short"  # type: ignore[assignment]
    summary = {
        "mode": "offline: sample detections + random backbone" if offline else f"detector {weights}",
        "source": str(seq),
        "device": runner.info.device,
        "detector": runner.info.arch,
        "inference": f"{runner.info.backend}/{runner.info.precision}",
        "inference_selection": runner.backend.selection,
        "appearance": runner.appearance_available,
        **stats.summary(),
        "server_stage_ms": stages,
        "scores": scores,
        "wall_s": round(time.perf_counter() - t_start, 1),
        "video": video,
        "results": str(mot),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    _print_summary(summary)
    return 0 if stats.answered > 0 else 1


def _stage_means_ms(srv: Any) -> dict[str, float]:
    reg = srv.metrics.registry
    out = {}
    for stage in (
        "queue",
        "decode",
        "letterbox",
        "inference",
        "nms",
        "roi_align",
        "encoder",
        "reid",
        "tracking",
    ):
        n = reg.get_sample_value("roitrack_stage_latency_seconds_count", {"stage": stage}) or 0.0
        s = reg.get_sample_value("roitrack_stage_latency_seconds_sum", {"stage": stage}) or 0.0
        if n:
            out[stage] = round(1000.0 * s / n, 2)
    return out


def _evaluate(seq: Path, results: Path) -> dict[str, float] | str:
    if not (seq / "gt" / "gt.txt").is_file() or not (seq / "seqinfo.ini").is_file():
        return "no ground truth (gt/gt.txt + seqinfo.ini) to score against"
    from tracker_core.evaluation import evaluate_results

    scores = evaluate_results(seq, {"roitrack": results})["roitrack"]
    return {k: round(float(v), 2) for k, v in scores.items()}


def _print_summary(s: dict[str, Any]) -> None:
    print()
    print(
        f"roitrack demo: {s['mode']} | {s['detector']} on {s['device']}, inference {s['inference']} | appearance "
        f"{s.get('embedding') or ('on' if s['appearance'] else 'off')}"
    )
    print(
        f"  frames answered {s['answered']}/{s['sent']}, dropped {s['dropped']}, frame errors {s['errors']}, "
        f"{s['fps']} fps"
    )
    print(f"  tracks (distinct IDs) {s['tracks']}")
    print(
        f"  latency p50 {s['p50_ms']} ms, p95 {s['p95_ms']} ms, p99 {s['p99_ms']} ms (client send -> response)"
    )
    if s["server_stage_ms"]:
        print(
            "  server stages (mean ms/frame): "
            + ", ".join(f"{k} {v}" for k, v in s["server_stage_ms"].items())
        )
    sc = s["scores"]
    if isinstance(sc, dict):
        print(
            f"  MOTA {sc.get('MOTA')}  IDF1 {sc.get('IDF1')}  HOTA {sc.get('HOTA')}  ID switches {sc.get('IDSW')} "
            "(TrackEval vs the sequence's ground truth)"
        )
        if "note" in sc:
            print(f"  NOTE: {sc['note']}")
    else:
        print(f"  scores: {sc}")
    if s["video"]:
        print(f"  annotated video: {s['video']}")
    print(f"  results: {s['results']}  summary: {Path(s['results']).with_name('summary.json')}")
    print(f"  done in {s['wall_s']} s")
