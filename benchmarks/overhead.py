"""Bench 2 — service overhead: the same frames through the in-process pipeline and through the gRPC server.

In-process: ``server.pipeline.Pipeline`` (the server's own ``ModelRunner`` + ``track_frame``, no gRPC, no
batcher, no event loop) built from the same ``ServerConfig`` the server gets, in a process of its own
(``benchmarks/inproc_worker.py``: grpc's client poller thread would otherwise share the GIL with it). gRPC: a ``roitrack serve``
process on loopback, one stream, lock-step (send a frame, wait for its response, send the next), timed at the
client from send to response. All get the synthetic scene's JPEGs with ``--dets`` client boxes (same frames,
same boxes, same random detector and ROI encoder, one tracker per path), so they do the same model work.
Two servers are measured: the default configuration (batching on) and batching off, because with a single
stream the batcher's ``max_wait_ms`` is pure added latency.

The paths take turns in blocks of 6 consecutive frames (a warm-up round first, the order rotating per round,
the first frame of each block untimed), so a neighbour's load on a shared machine hits all of them alike;
figures are medians over the timed frames. ``overhead_share`` = gRPC / in-process - 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import DEFAULT_ARCH, BenchOptions, machine, md_table, median_ms
from benchmarks.scaling import bench_backend_choice, server_settings
from benchmarks.service import (
    FrameItem,
    LockstepStream,
    ServerProcess,
    child_env,
    make_items,
    write_random_encoder,
)
from tracker_core.errors import UnavailableError

BLOCK = 6  # consecutive frames per path per round; the first is not timed
WARMUP_ROUNDS = 2  # a fresh process needs a dozen frames or so before its per-frame time settles


def in_process_models(settings: dict[str, Any]) -> tuple[Any, Any]:
    """``(runner, tracker_factory)``: the models the server loads for ``settings`` (ServerConfig fields), warm."""
    from server.config import ServerConfig, validate
    from server.loading import build_runner, tracker_factory

    cfg = ServerConfig(**{**settings, "check_port": False, "metrics_port": 0, "port": 0})
    validate(cfg)
    runner = build_runner(cfg)
    runner.warmup()
    return runner, tracker_factory()


class InProcessWorker:
    """``benchmarks.inproc_worker`` in a child process: the in-process pipeline, driven block by block."""

    def __init__(self, settings: dict[str, Any], dets: int, seed: int) -> None:
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.inproc_worker", json.dumps(settings), str(dets), str(seed)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env=child_env(),
        )

    def _line(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self._log.seek(0)
            err = self._log.read().decode(errors="replace")[-3000:]
            raise UnavailableError(f"in-process worker exited with {self.proc.poll()}:\n{err}")
        return line

    def wait_ready(self) -> None:
        while self._line().strip() != "ready":
            pass

    def run_block(self, start: int, count: int) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{start} {count}\n")
        self.proc.stdin.flush()
        return dict(json.loads(self._line()))

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                assert self.proc.stdin is not None
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


async def interleaved(
    worker: InProcessWorker,
    servers: dict[str, ServerProcess],
    items: list[FrameItem],
    rounds: int,
    block: int,
) -> tuple[dict[str, list[float]], dict[str, dict[str, list[float]]]]:
    """``WARMUP_ROUNDS`` untimed rounds, then ``rounds`` rounds in which every path gets a block of ``block`` consecutive frames
    (the order of the paths rotates per round). The first frame of each block is not timed: the process that
    ran before may still hold the cores (OpenMP threads spin a while after their work). Returns per-frame
    seconds per path and the stage timings each path reports (server: from the responses)."""
    streams = {name: LockstepStream(srv.address, f"overhead-{name}") for name, srv in servers.items()}
    for st in streams.values():
        await st.open()
    paths = ["in_process", *servers]
    laps: dict[str, list[float]] = {p: [] for p in paths}
    side: dict[str, dict[str, list[float]]] = {name: {k: [] for k in SERVER_KEYS} for name in servers}
    side["in_process"] = {}
    try:
        for r in range(rounds + WARMUP_ROUNDS):
            for name in paths[r % len(paths) :] + paths[: r % len(paths)]:
                if name == "in_process":
                    out = worker.run_block(r * block, block)
                    if r >= WARMUP_ROUNDS:
                        laps[name] += out["laps"][1:]
                        for key, v in out["stage_ms"].items():
                            side[name].setdefault(key, []).extend(v[1:])
                    continue
                for j in range(block):
                    i = r * block + j
                    resp, dt = await streams[name].send(items[i % len(items)], i)
                    if r >= WARMUP_ROUNDS and j > 0:
                        laps[name].append(dt)
                        tm = resp.timings
                        vals = (tm.total_ms, tm.queue_ms, tm.inference_ms, tm.tracking_ms)
                        for key, v in zip(SERVER_KEYS, vals, strict=True):
                            side[name][key].append(float(v))
    finally:
        for st in streams.values():
            await st.close()
    return laps, side


SERVER_KEYS = ("server_total_ms", "server_queue_ms", "server_inference_ms", "server_tracking_ms")


def run(opts: BenchOptions) -> dict[str, Any]:
    size = opts.size or 640
    block = int(opts.extra.get("block", BLOCK))
    rounds = max(1, -(-(opts.frames or 60) // (block - 1)))  # ceil: at least --frames timed frames per path
    items = make_items(50, opts.dets, seed=opts.seed)
    chosen, selection = bench_backend_choice(opts, size)
    with tempfile.TemporaryDirectory(prefix="roitrack-bench-") as tmp:
        encoder = None if opts.weights else write_random_encoder(Path(tmp), opts.arch or DEFAULT_ARCH)
        on = server_settings(opts, size, True, encoder, chosen)
        off = server_settings(opts, size, False, encoder, chosen)
        servers = {
            "grpc": ServerProcess(on, seed=opts.seed),
            "grpc_batching_off": ServerProcess(off, seed=opts.seed),
        }
        if opts.vs_reference:  # the same path on today's backend: torch fp32, NCHW
            ref = server_settings(opts, size, True, encoder, ("torch", "fp32"))
            servers["grpc_reference"] = ServerProcess(ref, seed=opts.seed)
        worker: InProcessWorker | None = None
        try:
            for srv in servers.values():
                srv.launch()
            worker = InProcessWorker(on, opts.dets, opts.seed)
            worker.wait_ready()
            for srv in servers.values():
                srv.wait_serving()
            laps, server_side = asyncio.run(interleaved(worker, servers, items, rounds, block))
        finally:
            if worker is not None:
                worker.stop()
            for srv in servers.values():
                srv.stop()
    ms = {name: median_ms(v) for name, v in laps.items()}
    best = {name: float(min(v) * 1e3) for name, v in laps.items()}
    vs_ref = (
        {
            "reference_ms": ms["grpc_reference"],
            "frame_speedup_vs_reference": ms["grpc_reference"] / ms["grpc"],
            "frame_speedup_vs_reference_min": best["grpc_reference"] / best["grpc"],
        }
        if "grpc_reference" in ms
        else {}
    )
    return {
        "backend": f"{chosen[0]}/{chosen[1]}",
        "backend_selection": selection,
        **vs_ref,
        "bench": "overhead",
        "arch": (opts.arch or DEFAULT_ARCH) if not opts.weights else "from weights",
        "weights": opts.weights or "random",
        "size": size,
        "device": opts.device,
        "dets": opts.dets,
        "frames": len(laps["in_process"]),
        "rounds": rounds,
        "block": block,
        "machine": machine(),
        "in_process_ms": ms["in_process"],
        "grpc_ms": ms["grpc"],
        "grpc_batching_off_ms": ms["grpc_batching_off"],
        "overhead_ms": ms["grpc"] - ms["in_process"],
        "overhead_share": ms["grpc"] / ms["in_process"] - 1.0,
        "overhead_batching_off_ms": ms["grpc_batching_off"] - ms["in_process"],
        "overhead_share_batching_off": ms["grpc_batching_off"] / ms["in_process"] - 1.0,
        "mean_ms": {name: float(np.mean(v) * 1e3) for name, v in laps.items()},
        # contention from other processes only ever adds time: the fastest frame of each path is the figure
        # least disturbed by a shared machine
        "min_ms": best,
        "overhead_share_min": best["grpc"] / best["in_process"] - 1.0,
        "server_side_ms": {
            name: {key: float(np.median(v)) for key, v in d.items() if v} for name, d in server_side.items()
        },
        "target_overhead_share": 0.05,
    }


def markdown(result: dict[str, Any]) -> str:
    r = result
    ss = r["server_side_ms"]
    mn = r["min_ms"]
    base, base_min = r["in_process_ms"], mn["in_process"]
    rows = [["in-process pipeline (`Pipeline.process`)", base, "-", "-", base_min, "-", "-"]]
    paths = [("grpc", "gRPC, default server (batching on)"), ("grpc_batching_off", "gRPC, batching off")]
    if "reference_ms" in r:
        paths.append(("grpc_reference", "gRPC, torch fp32 (batching on)"))
    for key, label in paths:
        med = r[f"{key}_ms"] if key != "grpc_reference" else r["reference_ms"]
        rows.append(
            [
                label,
                med,
                med - base,
                f"{100 * (med / base - 1):.1f}%",
                mn[key],
                f"{100 * (mn[key] / base_min - 1):.1f}%",
                ss.get(key, {}).get("server_total_ms", float("nan")),
            ]
        )
    m = r["machine"]
    headers = ["path", "median ms", "overhead ms", "overhead", "min ms", "overhead (min)", "server-side ms"]
    speed = (
        f"\n\nWhole frame (decode -> response, gRPC, batching on): {r['backend']} "
        f"{r['frame_speedup_vs_reference']:.2f}x faster than torch fp32 on medians "
        f"({r['frame_speedup_vs_reference_min']:.2f}x on each path's fastest frame)"
        if "frame_speedup_vs_reference" in r
        else ""
    )
    return (
        f"Service overhead ({r['arch']} at {r['size']}, {r['device']}, inference {r['backend']}, "
        f"{r['dets']} client boxes per frame, "
        f"one stream lock-step, {r['frames']} timed frames per path, paths taking turns in blocks of "
        f"{r['block']}; {m.get('gpu') or m['cpu']}, {m['cores']} cores, load {m['loadavg_1m']:.1f})\n\n"
        + md_table(headers, rows)
        + speed
    )
