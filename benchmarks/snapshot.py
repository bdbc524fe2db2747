"""``roitrack bench snapshot``: durable stream state cost: snapshot size, write and load time for 10, 100 and 1000
tracks, and what the default snapshot interval costs per frame, as a share of frame time measured in the same run.

Each tracker (default config: no bank, memory + last observation per track) is fed until every track is confirmed
with embeddings of the default mix encoder's size for yolov7-tiny (592-d) and the gallery is full (64 removed
tracks): the largest state a stream of that many tracks holds. ``write`` = encode the session +
``SET`` to a real redis-server on loopback (started for the run; ``--source`` may name one as redis://HOST:PORT/DB
instead); ``load`` = ``GET`` + decode + checks. The encode runs under the stream's tracking lock, so
``encode_ms`` is also how long one snapshot can hold that stream's next tracker update.

Per-frame cost at the default interval = write time / (interval x frame rate), compared with (a) the tracker
update of the same N tracks and (b) the whole CPU pipeline's frame time (``benchmarks.stages``), both measured in
this run.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from benchmarks.common import BenchOptions, detector_for, machine, md_table, median_ms, on_worker_thread

TRACK_COUNTS = (10, 100, 1000)
EMBED_DIM = 592  # the default mix encoder's embedding size on yolov7-tiny
FPS = 10.0


def rich_tracker(n: int, seed: int = 0) -> tuple[Any, list[tuple[np.ndarray, np.ndarray, np.ndarray]], int]:
    """A tracker holding ``n`` confirmed tracks (banks full when the config has one) and a full gallery, and the
    frames that follow."""
    from tracker_core.tracking import DEFAULT_CONFIG, Tracker

    cfg = DEFAULT_CONFIG.replace(output_lost=True, max_tracks=max(1024, 2 * n))
    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(n + cfg.gallery_size)))
    grid = np.stack(np.meshgrid(np.arange(side), np.arange(side)), -1).reshape(-1, 2)[: n + cfg.gallery_size]
    centers = grid * 40.0 + 20.0
    emb = rng.standard_normal((len(centers), EMBED_DIM)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)

    def frame(k: int, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        c = centers[idx] + k * 0.5
        half = np.array([10.0, 15.0])
        boxes = np.concatenate([c - half, c + half], axis=1)
        noisy = emb[idx] + rng.normal(0, 0.02, (idx.size, EMBED_DIM)).astype(np.float32)
        return boxes, np.full(idx.size, 0.9), noisy

    t = Tracker(cfg)
    everyone = np.arange(len(centers))
    k = 0
    for _ in range(cfg.bank_size + 2):  # all confirmed, banks full
        b, s, e = frame(k, everyone)
        t.update(b, s, k / FPS, embeddings=e)
        k += 1
    keep = np.arange(n)  # the last gallery_size objects leave: after max_lost_s they go to the gallery
    while t.gallery_size < min(cfg.gallery_size, len(centers) - n):
        b, s, e = frame(k, keep)
        t.update(b, s, k / FPS, embeddings=e)
        k += 1
    follow = [frame(k + j, keep) for j in range(20)]
    return t, follow, k


@contextlib.contextmanager
def redis_for(url: str | None) -> Iterator[tuple[Any, str]]:
    """A redis-py client and the URL: the given one, or a redis-server started on a free loopback port."""
    import redis

    if url is not None:
        from server.state_store import parse_store_url

        a = parse_store_url(url)
        yield redis.Redis(host=a.host, port=a.port, db=a.db), url
        return
    binary = shutil.which("redis-server")
    if binary is None:
        raise FileNotFoundError(
            "redis-server is not installed (apt-get install redis-server), or pass --source URL"
        )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tmp = tempfile.mkdtemp(prefix="roitrack-bench-redis-")
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            tmp,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        r = redis.Redis(host="127.0.0.1", port=port)
        for _ in range(200):
            with contextlib.suppress(Exception):
                if r.ping():
                    break
            time.sleep(0.05)
        yield r, f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


def measure(n: int, reps: int, r: Any, seed: int = 0) -> dict[str, Any]:
    from server.session import StreamOptions, StreamSession
    from server.stream_state import decode_session, encode_session

    tracker, follow, k = rich_tracker(n, seed)
    session = StreamSession("bench", StreamOptions(), tracker)
    session.last_timestamp = k / FPS
    limit = 256 * 1024 * 1024
    enc, dec, write, load = [], [], [], []
    blob = b""
    for _ in range(reps):
        t0 = time.perf_counter()
        with session.track_lock:
            blob = encode_session(session, "bench", limit)
        t1 = time.perf_counter()
        r.set("roitrack:bench:state", blob, px=30_000)
        t2 = time.perf_counter()
        got = r.get("roitrack:bench:state")
        t3 = time.perf_counter()
        snap = decode_session(got, "bench", limit)
        t4 = time.perf_counter()
        enc.append(t1 - t0)
        write.append(t2 - t0)
        load.append(t4 - t2)
        dec.append(t4 - t3)
    assert snap.tracker.next_id == tracker.next_id and snap.tracker.num_tracks == tracker.num_tracks
    upd = []
    for j, (b, s, e) in enumerate(follow):
        t0 = time.perf_counter()
        tracker.update(b, s, (k + j) / FPS, embeddings=e)
        upd.append(time.perf_counter() - t0)
    return {
        "tracks": int(tracker.num_tracks),
        "gallery": int(tracker.gallery_size),
        "bytes": len(blob),
        "encode_ms": median_ms(enc),
        "decode_ms": median_ms(dec),
        "write_ms": median_ms(write),
        "load_ms": median_ms(load),
        "update_ms": median_ms(upd),
    }


def run(opts: BenchOptions) -> dict[str, Any]:
    from benchmarks import stages
    from server.config import ServerConfig

    interval = ServerConfig().snapshot_interval_s
    reps = opts.frames or 15
    rows = []
    with redis_for(opts.source) as (r, url):
        for n in TRACK_COUNTS:
            rows.append(measure(n, reps, r, opts.seed))
    size = opts.size or 640
    det = detector_for(opts, fuse=True)
    pipe = on_worker_thread(stages.measure, det, size, 4, opts.dets, opts.device, seed=opts.seed)
    frame_ms = float(pipe["frame_ms_median"])
    frames_per_snapshot = interval * FPS
    for row in rows:
        row["per_frame_ms"] = row["write_ms"] / frames_per_snapshot
        row["share_of_update"] = row["per_frame_ms"] / row["update_ms"]
        row["share_of_frame"] = row["per_frame_ms"] / frame_ms
    return {
        "bench": "snapshot",
        "machine": machine(),
        "redis": url,
        "interval_s": interval,
        "fps": FPS,
        "embed_dim": EMBED_DIM,
        "reps": reps,
        "arch": str(det.arch),
        "size": size,
        "device": opts.device,
        "pipeline_frame_ms": frame_ms,
        "rows": rows,
    }


def markdown(result: dict[str, Any]) -> str:
    r = result
    rows = [
        [
            x["tracks"],
            f"{x['bytes'] / 1024:.0f} KiB",
            x["encode_ms"],
            x["write_ms"],
            x["load_ms"],
            x["update_ms"],
            f"{x['per_frame_ms'] * 1000:.1f} us",
            f"{100 * x['share_of_update']:.2f}%",
            f"{100 * x['share_of_frame']:.3f}%",
        ]
        for x in r["rows"]
    ]
    m = r["machine"]
    head = (
        f"Stream snapshots ({r['embed_dim']}-d embeddings, default tracker config, gallery 64; Redis on loopback; "
        f"median of {r['reps']}) on {m.get('gpu') or m['cpu']}. Per-frame cost at the default interval "
        f"({r['interval_s']:g} s) for a {r['fps']:g} fps camera; frame time = the {r['arch']} pipeline at "
        f"{r['size']} on {r['device']}, {r['pipeline_frame_ms']:.1f} ms, measured in the same run.\n\n"
    )
    return head + md_table(
        [
            "tracks",
            "size",
            "encode ms (holds the stream)",
            "write ms (encode + SET)",
            "load ms (GET + decode)",
            "tracker update ms",
            "cost per frame",
            "% of tracker update",
            "% of frame time",
        ],
        rows,
    )
