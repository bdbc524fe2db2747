"""``roitrack stream``: send a video / camera / URL / image folder to a server; show and save the tracks.

Reconnects with exponential backoff and resumes the stream (same track IDs) after a network failure or a
server restart within its resume window. When the server refuses the call (bad token, stream limit, ...) it
exits with code 2 and prints the gRPC status name and message.
"""

from __future__ import annotations

import argparse
import os
import sys

HELP = "stream a video/camera/folder to a server and show tracks"


def add_connection_args(parser: argparse.ArgumentParser) -> None:
    a = parser.add_argument
    a(
        "--server",
        default="localhost:50051",
        help="HOST:PORT of the server (default localhost:50051); `roitrack stream` also takes a comma-separated "
        "failover list HOST:PORT,HOST:PORT (reconnects go to the next one and resume the stream there)",
    )
    a(
        "--token",
        default=os.environ.get("ROITRACK_TOKEN") or None,
        help="bearer token (default $ROITRACK_TOKEN)",
    )
    a("--tls-ca", help="CA certificate (PEM) of the server; enables TLS")
    a("--tls-cert", help="client certificate (PEM) for mutual TLS")
    a("--tls-key", help="client private key (PEM) for mutual TLS")
    a("--tls-server-name", help="expected name in the server certificate (when it differs from HOST)")


def add_score_args(parser: argparse.ArgumentParser) -> None:
    """How --detections' scores are read: the rule `roitrack eval-mot` uses (tracker_core.evaluation.ScoreRule)."""
    a = parser.add_argument
    a(
        "--score-scale",
        default="1",
        help="divide --detections scores by this (default 1: already in [0, 1]; 100 for MOT15's 0..100; "
        "'max': by the file's largest score)",
    )
    a(
        "--score-clip",
        action="store_true",
        help="clip scaled scores to [0, 1] (without it a score outside [0, 1] is an error)",
    )


def configure(parser: argparse.ArgumentParser) -> None:
    add_connection_args(parser)
    a = parser.add_argument
    a("--source", required=True, help="video file, camera index (0), rtsp/http URL, or image folder")
    a("--stream-id", default="cam-0", help="stream id (1..128 of [A-Za-z0-9._:-]; default cam-0)")
    a(
        "--fps",
        type=float,
        default=0.0,
        help="pace sending at this rate (default 0: as fast as answered); for an image folder whose "
        "seqinfo.ini gives no frameRate, also the rate its frames are stamped at (the motion model's clock)",
    )
    a("--max-in-flight", type=int, default=2, help="frames sent but not yet answered, at most (default 2)")
    a("--out", help="write an annotated video (boxes, IDs, trails), e.g. annotated.mp4")
    a("--mot-out", help="write MOTChallenge results (frame,id,left,top,width,height,score,-1,-1,-1)")
    a(
        "--detections",
        help="send these detections instead of the server's: 'auto' (<folder>/det/det.txt) or a path",
    )
    add_score_args(parser)
    a("--resume", action="store_true", help="continue a stream the server still holds (same track IDs)")
    a("--classes", type=int, nargs="*", default=[], help="keep only these class ids")
    a("--conf", type=float, help="detector confidence threshold for this stream")
    a("--iou", type=float, help="NMS IoU threshold for this stream")
    a("--no-appearance", action="store_true", help="track by motion only (the same as --embedding off)")
    a(
        "--embedding",
        choices=("roi", "reid", "off"),
        help="appearance embedding for this stream: roi (the server's ROI encoder), reid (its ONNX ReID model: "
        "serve --reid-model) or off (default: the server's default). A choice the server cannot serve is refused "
        "(FAILED_PRECONDITION)",
    )
    a("--return-lost", action="store_true", help="also receive lost (predicted) tracks")
    a(
        "--camera-motion",
        choices=("auto", "on", "off"),
        help="camera motion compensation for this stream: on (moving camera), off (static), auto (estimate, apply "
        "while moving); default: the server's",
    )
    a("--raw", action="store_true", help="send raw BGR pixels instead of JPEG")
    a("--max-frames", type=int, default=0, help="stop after this many frames (default 0: all)")
    a("--quiet", action="store_true", help="no live progress line")


def run(args: argparse.Namespace) -> int:
    import asyncio
    import dataclasses
    import itertools
    import json
    import time

    from client.results import ResultSink
    from client.sources import LatestOnly, open_source
    from client.stream import StreamClient, StreamConfig
    from tracker_core.errors import InvalidInputError
    from tracker_core.evaluation.mot_io import ScoreRule

    if args.no_appearance and args.embedding not in (None, "off"):
        raise InvalidInputError(f"--no-appearance contradicts --embedding {args.embedding}")
    cfg = StreamConfig(
        server=args.server,
        stream_id=args.stream_id,
        token=args.token,
        tls_ca=args.tls_ca,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_server_name=args.tls_server_name,
        fps=args.fps,
        max_in_flight=args.max_in_flight,
        raw=args.raw,
        send_detections=bool(args.detections),
        classes=tuple(args.classes),
        conf_threshold=args.conf,
        iou_threshold=args.iou,
        appearance=False if args.no_appearance else None,
        embedding="off" if args.no_appearance else args.embedding,
        return_lost=args.return_lost,
        camera_motion=args.camera_motion,
        resume=args.resume,
    )
    source = open_source(
        args.source,
        fps=args.fps,
        detections=args.detections,
        score_rule=ScoreRule.from_flags(args.score_scale, args.score_clip),
    )
    for msg in getattr(source, "notices", []):  # said once, before streaming (an unknown frame rate)
        print(f"roitrack stream: warning: {msg}", file=sys.stderr)
    # A file or folder must be tracked frame by frame (the results then equal `roitrack eval-mot`'s); a camera
    # or network stream sends its newest frame and lets the server drop stale ones.
    cfg = dataclasses.replace(cfg, lossless=not source.live)
    # Cameras and network streams: always send the newest frame (skip the ones read while we waited).
    live = LatestOnly(source) if source.live else source
    frames = itertools.islice(live, args.max_frames) if args.max_frames > 0 else iter(live)
    sink = ResultSink(args.out, args.mot_out, fps=source.fps or 10.0)
    client = StreamClient(cfg, on_result=sink)

    async def progress() -> None:
        while True:
            await asyncio.sleep(1.0)
            st = client.stats
            print(
                f"\r{st.answered} frames  {st.fps:5.1f} fps  p50 {st.percentile(50):6.1f} ms  "
                f"drops {st.dropped}  errors {st.errors}  tracks {len(st.track_ids)}  reconnects {st.reconnects}",
                end="",
                file=sys.stderr,
                flush=True,
            )

    async def main() -> None:
        ticker = None if args.quiet else asyncio.get_running_loop().create_task(progress())
        try:
            await client.run(frames)
        finally:
            if ticker is not None:
                ticker.cancel()
                print(file=sys.stderr)

    t0 = time.perf_counter()
    try:
        asyncio.run(main())
    finally:
        sink.close()
        source.close()
    summary = {
        "stream_id": cfg.stream_id,
        "seconds": round(time.perf_counter() - t0, 2),
        **client.stats.summary(),
    }
    print(json.dumps(summary))
    for msg in client.notices:
        print(f"roitrack stream: note: {msg}", file=sys.stderr)
    for msg in client.stats.error_messages[:5]:
        print(f"roitrack stream: frame error: {msg}", file=sys.stderr)
    return 0
