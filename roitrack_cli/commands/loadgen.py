"""``roitrack loadgen``: N concurrent camera streams against a server; per-stream fps, latency, drops, errors."""

from __future__ import annotations

import argparse

from roitrack_cli.commands.stream import add_connection_args, add_score_args

HELP = "N concurrent camera streams against a server"


def configure(parser: argparse.ArgumentParser) -> None:
    add_connection_args(parser)
    a = parser.add_argument
    a("--source", required=True, help="video file or image folder whose frames every stream replays")
    a("--streams", type=int, default=4, help="concurrent streams (default 4)")
    a("--duration", type=float, default=10.0, help="seconds to run (default 10)")
    a("--fps", type=float, default=0.0, help="per-stream frame rate (default 0: as fast as answered)")
    a("--max-in-flight", type=int, default=2, help="per-stream frames in flight (default 2)")
    a("--max-frames", type=int, default=100, help="frames of the source to preload and loop (default 100)")
    a("--detections", help="send the folder's detections: 'auto' (<folder>/det/det.txt) or a path")
    add_score_args(parser)
    a("--stream-prefix", default="load", help="stream ids are PREFIX-0 .. PREFIX-(N-1) (default load)")
    a("--json-out", help="also write the JSON result to this file")


def run(args: argparse.Namespace) -> int:
    import asyncio
    import json
    from pathlib import Path

    from client.loadgen import preload, run_loadgen
    from client.sources import open_source
    from client.stream import StreamConfig
    from tracker_core.evaluation.mot_io import ScoreRule

    base = StreamConfig(
        server=args.server,
        stream_id="x",
        token=args.token,
        tls_ca=args.tls_ca,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_server_name=args.tls_server_name,
        fps=args.fps,
        max_in_flight=args.max_in_flight,
        send_detections=bool(args.detections),
    )
    source = open_source(
        args.source,
        detections=args.detections,
        score_rule=ScoreRule.from_flags(args.score_scale, args.score_clip),
    )
    frames = preload(source, args.max_frames)
    source.close()
    result = asyncio.run(run_loadgen(base, args.streams, frames, args.duration, args.stream_prefix))
    print(
        f"{result['streams']} streams, {result['duration_s']} s: {result['aggregate_fps']} fps total, "
        f"p50 {result['p50_ms']} ms, p95 {result['p95_ms']} ms, p99 {result['p99_ms']} ms, "
        f"drops {result['dropped']}, frame errors {result['errors']}, failed streams {result['failed_streams']}"
    )
    for row in result["per_stream"]:
        extra = f"  FAILED: {row['failure']}" if "failure" in row else ""
        print(
            f"  {row['stream_id']}: {row['fps']} fps, p50 {row['p50_ms']} ms, p99 {row['p99_ms']} ms, "
            f"drops {row['dropped']}, errors {row['errors']}{extra}"
        )
    text = json.dumps(result)
    print(text)
    if args.json_out:
        Path(args.json_out).write_text(text + "\n")
    return 1 if result["failed_streams"] else 0
