"""``roitrack serve``: start the gRPC tracking server (runs until SIGTERM/SIGINT, then drains)."""

from __future__ import annotations

import argparse

from roitrack_cli.reid_args import add_reid_args

HELP = "start the gRPC tracking server"

BACKEND_HELP = (
    "inference backend: auto (measure the installed ones at start-up, keep the fastest that matches torch fp32), "
    "torch, openvino, onnxruntime (default auto)"
)
PRECISION_HELP = (
    "auto (each backend's fastest: bf16 on CPUs with AVX-512 BF16/AMX, fp16 on CUDA), fp32, bf16, fp16"
)


def add_inference_flags(parser: argparse.ArgumentParser, defaults: bool = False) -> None:
    """``--backend``, ``--precision`` (and for serve ``--inference-threads``, ``--inference-cache``). ``defaults``:
    give argparse defaults (commands without a config file); serve leaves them None (= not given)."""
    from tracker_core.inference.options import BACKENDS, PRECISIONS

    a = parser.add_argument
    a("--backend", choices=BACKENDS, default="auto" if defaults else None, help=BACKEND_HELP)
    a("--precision", choices=PRECISIONS, default="auto" if defaults else None, help=PRECISION_HELP)
    a(
        "--inference-threads",
        type=int,
        default=0 if defaults else None,
        help="intra-op threads of the backend (default 0: the CPUs this process may use)",
    )
    a(
        "--inference-cache",
        default=None,
        help="folder of exported models (default $ROITRACK_CACHE_DIR or ~/.cache/roitrack/inference)",
    )


def _bool(text: str) -> bool:
    t = text.strip().lower()
    if t in ("1", "true", "yes", "on"):
        return True
    if t in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Start the tracking server. Settings: defaults < --config TOML < ROITRACK_<SETTING> environment variables "
        "< these flags. Runs until SIGTERM/SIGINT, then drains: health NOT_SERVING, queued frames answered, exit."
    )
    a = parser.add_argument
    a("--config", help="TOML file (top-level keys or a [server] table; default $ROITRACK_CONFIG)")
    a("--weights", help="detector weights (.safetensors from `roitrack convert-weights`)")
    a(
        "--random-weights",
        action="store_const",
        const=True,
        help="randomly initialised detector (demos/benchmarks)",
    )
    a("--arch", choices=("yolov7", "yolov7-tiny"), help="architecture for --random-weights")
    a("--encoder", help="ROI encoder .safetensors (without it appearance is off: motion-only tracking)")
    a("--random-encoder", action="store_const", const=True, help="randomly initialised encoder (benchmarks)")
    add_reid_args(
        parser,
        "ONNX person-ReID model on image crops: streams may choose it (roitrack stream --embedding reid); "
        "docs/reid.md",
    )
    a("--reid-max-batch", type=int, help="crops per ReID model run at most (default 64)")
    a("--reid-threads", type=int, help="onnxruntime intra-op threads for the ReID model (default 0: its own)")
    a(
        "--default-embedding",
        choices=("auto", "roi", "reid", "off"),
        help="embedding of streams that do not choose one (default auto: roi with an encoder, else reid with a "
        "ReID model, else off)",
    )
    a("--device", help="auto | cpu | cuda | cuda:N (default auto)")
    add_inference_flags(parser)
    a("--host", help="listen address (default 0.0.0.0)")
    a("--port", type=int, help="gRPC port (default 50051)")
    a("--metrics-port", type=int, help="Prometheus /metrics port, 0 = off (default 9108)")
    a("--input-size", type=int, help="detector input size, a multiple of 32 (default 640)")
    a("--token", help="require 'authorization: Bearer TOKEN' (default $ROITRACK_TOKEN; none = no auth)")
    a("--tls-cert", help="server certificate (PEM); enables TLS")
    a("--tls-key", help="server private key (PEM)")
    a("--tls-client-ca", help="CA (PEM) that client certificates must be signed by: mutual TLS")
    a("--max-streams", type=int, help="live streams at most (default 64)")
    a("--max-batch", type=int, help="frames per batched forward at most (default 8)")
    a(
        "--max-wait-ms",
        type=float,
        help="how long a batch waits for more frames; it closes at once when every live stream has a frame in it (default 20)",
    )
    a("--batching", type=_bool, metavar="BOOL", help="cross-stream batching on/off (default true)")
    a("--queue-size", type=int, help="frames waiting per stream before the oldest is dropped (default 2)")
    a("--max-pixels", type=int, help="largest frame in pixels (default 4096*4096)")
    a("--max-message-bytes", type=int, help="largest gRPC message (default 16 MiB)")
    a("--resume-window-s", type=float, help="how long a disconnected stream's state is kept (default 30)")
    a("--idle-timeout-s", type=float, help="end live calls that send nothing for this long (default 60)")
    a(
        "--open-timeout-s",
        type=float,
        help="end Track calls that send no `open` message within this (default 10)",
    )
    a(
        "--max-detections",
        type=int,
        help="client detections per frame at most; more fail that frame (default 1000)",
    )
    a(
        "--drain-timeout-s",
        type=float,
        help="on SIGTERM, answer queued frames for at most this long, then exit (default 10)",
    )
    a("--conf-threshold", type=float, help="default detector confidence threshold (default 0.25)")
    a("--iou-threshold", type=float, help="default NMS IoU threshold (default 0.45)")
    a(
        "--camera-motion",
        choices=("auto", "on", "off"),
        help="camera motion compensation of streams that do not choose (default auto: estimated from the frames, "
        "applied while the camera moves)",
    )
    a(
        "--state-store",
        metavar="URL",
        help="durable stream state in Redis: redis://HOST:PORT/DB (default $ROITRACK_STATE_STORE; none = in memory)",
    )
    a(
        "--snapshot-policy",
        choices=("off", "on-close", "interval"),
        help="when stream snapshots are written to the state store (default interval)",
    )
    a("--snapshot-interval-s", type=float, help="seconds between snapshots of a live stream (default 2)")
    a("--state-lease-s", type=float, help="single-writer lease of a live stream in seconds (default 10)")
    a("--replica-id", help="this replica's name in leases and snapshots (default HOSTNAME:PORT)")
    a(
        "--metrics-stream-labels",
        type=int,
        help="per-stream `stream` label values on /metrics, at most N streams (default 0: one 'all' series)",
    )


FLAG_FIELDS = [
    "weights",
    "random_weights",
    "arch",
    "encoder",
    "random_encoder",
    "reid_model",
    "reid_size",
    "reid_channels",
    "reid_mean",
    "reid_std",
    "reid_pixel_scale",
    "reid_config",
    "reid_max_batch",
    "reid_threads",
    "default_embedding",
    "device",
    "backend",
    "precision",
    "inference_threads",
    "inference_cache",
    "host",
    "port",
    "metrics_port",
    "input_size",
    "token",
    "tls_cert",
    "tls_key",
    "tls_client_ca",
    "max_streams",
    "max_batch",
    "max_wait_ms",
    "batching",
    "queue_size",
    "max_pixels",
    "max_message_bytes",
    "resume_window_s",
    "idle_timeout_s",
    "open_timeout_s",
    "max_detections",
    "drain_timeout_s",
    "conf_threshold",
    "iou_threshold",
    "camera_motion",
    "state_store",
    "snapshot_policy",
    "snapshot_interval_s",
    "state_lease_s",
    "replica_id",
    "metrics_stream_labels",
]


def run(args: argparse.Namespace) -> int:
    import asyncio

    from server.app import TrackingServer
    from server.config import load_config
    from server.loading import build_runner, tracker_factory

    cfg = load_config(args.config, flags={k: getattr(args, k) for k in FLAG_FIELDS})
    runner = build_runner(cfg)

    async def main() -> None:
        srv = TrackingServer(cfg, runner, tracker_factory())
        await srv.start(warmup_in_background=True)
        where = f"{cfg.host}:{srv.port}"
        metrics = f", metrics on :{srv.metrics_port}/metrics" if srv.metrics_port else ""
        print(
            f"roitrack serve: listening on {where}{metrics}, inference {runner.info.backend}/{runner.info.precision} "
            "(warming up; health turns SERVING when ready)",
            flush=True,
        )
        await srv.serve_until_signal()
        if not srv.stopped_cleanly:
            # A batch (or the warm-up) still runs on a model thread; joining it at exit would overrun
            # drain_timeout_s (compose's stop grace): leave now, the server itself is already stopped.
            print("roitrack serve: stopped (a model batch was still running: exiting without it)", flush=True)
            _exit_now(0)

    asyncio.run(main())
    return 0


def _exit_now(code: int) -> None:
    import logging
    import os
    import sys

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
