"""Shared machinery of the benchmarks: options, a synthetic scene, timing, percentiles, report writing.

Nothing here imports torch at module level, so ``roitrack bench --help`` stays instant.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_ARCH = "yolov7-tiny"
FRAME_W, FRAME_H = 768, 576  # PETS09-S2L1's frame size: a typical surveillance camera


@dataclass(frozen=True)
class BenchOptions:
    """What every benchmark may be asked. ``None`` means: the benchmark's own default."""

    weights: str | None = None
    arch: str | None = None
    size: int | None = None
    frames: int | None = None
    streams: int | None = None
    duration: float | None = None
    device: str = "cpu"
    dets: int = 50
    source: str | None = None
    out: str = "docs/bench"
    write: bool = True
    seed: int = 0
    # Inference backend (tracker_core.inference): "auto" is resolved once by the benchmark (resolve_backend) and
    # the choice handed to every server it starts, so all its processes run the same backend.
    backend: str = "auto"
    precision: str = "auto"
    # Also measure the torch fp32 reference (the models as they are, NCHW: today's path) in the same run.
    vs_reference: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------- timing


def now() -> float:
    return time.perf_counter()


def sync(device: str) -> None:
    """Wait for queued CUDA work so wall-clock timers mean something (no-op on CPU)."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def percentiles_ms(seconds: Sequence[float]) -> dict[str, float]:
    """``p50``/``p95``/``p99``/``mean`` in milliseconds of a list of durations in seconds (NaN when empty)."""
    if len(seconds) == 0:
        return {"p50": float("nan"), "p95": float("nan"), "p99": float("nan"), "mean": float("nan")}
    a = np.asarray(seconds, dtype=np.float64) * 1e3
    p50, p95, p99 = np.percentile(a, [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99), "mean": float(a.mean())}


def median_ms(seconds: Sequence[float]) -> float:
    return float(np.median(np.asarray(seconds, dtype=np.float64)) * 1e3) if len(seconds) else float("nan")


# ----------------------------------------------------------------------------------------- the scene


@dataclass
class _Obj:
    oid: int
    x: float
    y: float
    w: float
    h: float
    vx: float
    vy: float
    colour: tuple[int, int, int]


class SyntheticScene:
    """A deterministic street-like scene: ``n`` boxes moving at constant velocity over a textured background.

    Objects that leave the frame are replaced by new ones entering at an edge, so a tracker keeps creating and
    retiring tracks (what a long-running stream does) while the number of visible objects stays ``n``.
    ``step(dt)`` returns ``(frame RGB uint8 HxWx3, boxes [n,4] float32 xyxy, scores [n] float32, ids [n])``.
    """

    def __init__(self, n: int = 50, width: int = FRAME_W, height: int = FRAME_H, seed: int = 0) -> None:
        self.n, self.w, self.h = n, width, height
        self.rng = np.random.default_rng(seed)
        self._next_id = 0
        # A smooth textured background (made once: per-frame work is only the moving boxes).
        low = self.rng.integers(40, 200, size=(height // 32 + 1, width // 32 + 1, 3)).astype(np.uint8)
        import cv2

        bg = cv2.resize(low, (width, height), interpolation=cv2.INTER_CUBIC)
        noise = self.rng.integers(-12, 13, size=bg.shape)
        self.background = np.clip(bg.astype(np.int16) + noise, 0, 255).astype(np.uint8)
        self.objects = [self._spawn(anywhere=True) for _ in range(n)]

    def _spawn(self, anywhere: bool = False) -> _Obj:
        r = self.rng
        w = float(r.uniform(18, 60))
        h = float(w * r.uniform(1.6, 2.6))
        speed = float(r.uniform(20, 90))  # pixels per second
        ang = float(r.uniform(0, 2 * np.pi))
        vx, vy = speed * np.cos(ang), speed * np.sin(ang)
        if anywhere:
            x, y = float(r.uniform(0, self.w - w)), float(r.uniform(0, self.h - h))
        else:  # enter from the edge the velocity points away from
            x = -w + 1 if vx > 0 else self.w - 1.0
            y = float(r.uniform(0, self.h - h))
        self._next_id += 1
        colour = tuple(int(c) for c in r.integers(0, 256, size=3))
        return _Obj(self._next_id, x, y, w, h, vx, vy, colour)  # type: ignore[arg-type]

    def step(self, dt: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        frame = self.background.copy()
        boxes = np.empty((self.n, 4), dtype=np.float32)
        ids = np.empty(self.n, dtype=np.int64)
        for i, o in enumerate(self.objects):
            o.x += o.vx * dt
            o.y += o.vy * dt
            if o.x > self.w or o.y > self.h or o.x + o.w < 0 or o.y + o.h < 0:
                o = self.objects[i] = self._spawn()
            x0, y0 = max(0, int(o.x)), max(0, int(o.y))
            x1, y1 = min(self.w, int(o.x + o.w)), min(self.h, int(o.y + o.h))
            if x1 > x0 and y1 > y0:
                frame[y0:y1, x0:x1] = o.colour
            boxes[i] = (
                np.clip(o.x, 0, self.w - 1),
                np.clip(o.y, 0, self.h - 1),
                np.clip(o.x + o.w, 1, self.w),
                np.clip(o.y + o.h, 1, self.h),
            )
            ids[i] = o.oid
        # a little detector-like jitter, deterministic per run
        boxes += self.rng.normal(0, 0.8, size=boxes.shape).astype(np.float32)
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 2)
        scores = self.rng.uniform(0.5, 0.95, size=self.n).astype(np.float32)
        return frame, boxes, scores, ids


def image_frames(directory: str, limit: int) -> list[np.ndarray]:
    """Up to ``limit`` RGB frames read from the image files of ``directory`` (sorted by name)."""
    import cv2

    from tracker_core.errors import InvalidInputError

    paths = sorted(p for p in Path(directory).iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    if not paths:
        raise InvalidInputError(f"--source {directory}: no .jpg/.png images found")
    out = []
    for p in paths[:limit]:
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is None:
            raise InvalidInputError(f"--source: cannot decode {p}")
        out.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
    return out


def encode_jpeg(frame_rgb: np.ndarray, quality: int = 85) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".jpg", frame_rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - cv2 always encodes a valid uint8 image
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def scene_stream(
    n_frames: int, dets: int, fps: float = 10.0, seed: int = 0
) -> Iterator[tuple[bytes, np.ndarray, np.ndarray, float]]:
    """``n_frames`` of ``(jpeg bytes, boxes, scores, timestamp_s)`` from a :class:`SyntheticScene`."""
    scene = SyntheticScene(n=dets, seed=seed)
    for i in range(n_frames):
        frame, boxes, scores, _ = scene.step(1.0 / fps)
        yield encode_jpeg(frame), boxes, scores, (i + 1) / fps  # never 0: 0 means the server's clock


# ---------------------------------------------------------------------------------------------- models


def detector_for(opts: BenchOptions, arch: str | None = None, fuse: bool = True) -> Any:
    """The detector a benchmark runs: ``--weights`` when given, else a randomly initialised ``arch``
    (``build_detector(seed=opts.seed)``: the same random weights in every process)."""
    from tracker_core.detector import build_detector, load_detector

    if opts.weights:
        return load_detector(opts.weights, device=opts.device, fuse=fuse)
    return build_detector(arch or opts.arch or DEFAULT_ARCH, device=opts.device, fuse=fuse, seed=opts.seed)


REFERENCE_LABEL = "torch/fp32"


def bench_appearance(det: Any) -> Any:
    """The randomly initialised ROI encoder the benchmarks run (its cost does not depend on its weights)."""
    from server.loading import random_appearance

    return random_appearance(det)


def resolve_backend(opts: BenchOptions, det: Any, size: int, appearance: Any = None) -> tuple[str, str, Any]:
    """``(backend, precision, selection)`` for ``opts``: ``auto`` measured here once (on the benchmark's worker
    thread, as a server would at start-up), explicit choices as given."""
    from tracker_core.inference import InferenceOptions, build_backend

    if opts.backend != "auto" and opts.precision != "auto":
        return opts.backend, opts.precision, None
    backend = on_worker_thread(
        build_backend, det, appearance, InferenceOptions(opts.backend, opts.precision), (size, size)
    )
    name, precision, selection = backend.name, backend.precision, backend.selection
    backend.close()
    return name, precision, selection


def make_bench_backend(det: Any, appearance: Any, name: str, precision: str) -> Any:
    """One backend as asked (no start-up checks: the benchmark reports parity itself where it matters)."""
    from tracker_core.inference import make_backend
    from tracker_core.inference.graphs import ModelGraphs

    strides = appearance.detector_strides if appearance is not None else (32,)
    enc = appearance.encoder if appearance is not None else None
    return make_backend(name, precision, ModelGraphs(det, enc, strides), 0, appearance)


# --------------------------------------------------------------------------------------------- process


def rss_bytes(pid: int | None = None) -> int:
    """Resident set size of a process (this one by default), from ``/proc/<pid>/status``."""
    path = f"/proc/{pid or os.getpid()}/status"
    with open(path) as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS in {path}")  # pragma: no cover


def machine() -> dict[str, Any]:
    """What the figures were measured on (goes into every JSON result)."""
    import torch

    from tracker_core.inference import hardware, installed_backends

    info: dict[str, Any] = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "loadavg_1m": os.getloadavg()[0],
        "loadavg": [round(v, 2) for v in os.getloadavg()],
        "amx_bf16": hardware.has_amx_bf16(),
        "avx512_bf16": "avx512_bf16" in hardware.cpu_flags(),
        "backends": {b: _backend_version(b) for b in installed_backends()},
    }
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:  # pragma: no cover
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _backend_version(name: str) -> str:
    import importlib

    if name == "torch":
        import torch

        return str(torch.__version__)
    mod = importlib.import_module(f"tracker_core.inference.{name}_backend")
    return str(mod.version())


# ---------------------------------------------------------------------------------------------- output


def fmt(v: Any, nd: int = 2) -> str:
    if isinstance(v, float):
        if v != v:  # NaN
            return "-"
        return f"{v:.{nd}f}"
    return str(v)


def md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], nd: int = 2) -> str:
    head = "| " + " | ".join(headers) + " |"
    sep = "| " + " | ".join("---" for _ in headers) + " |"
    body = ["| " + " | ".join(fmt(c, nd) for c in r) + " |" for r in rows]
    return "\n".join([head, sep, *body])


def finish(
    name: str,
    result: dict[str, Any],
    markdown: Callable[[dict[str, Any]], str],
    opts: BenchOptions,
    as_json: bool,
    plot: Callable[[dict[str, Any], Path], None] | None = None,
) -> None:
    """Write ``<out>/<name>.md`` and ``<out>/<name>.json`` (+ ``.png``), then print the JSON object or the table."""
    md = markdown(result)
    if opts.write:
        out = Path(opts.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{name}.md").write_text(md + "\n")
        if plot is not None:
            plot(result, out / f"{name}.png")
            result["plot"] = str(out / f"{name}.png")
        result["table"] = str(out / f"{name}.md")
        (out / f"{name}.json").write_text(json.dumps(result, indent=1, default=_json_default) + "\n")
    if as_json:
        print(json.dumps(result, default=_json_default))
    else:
        print(md)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if hasattr(o, "__dataclass_fields__"):
        return asdict(o)
    return str(o)


def small_png(fig: Any, path: Path) -> None:
    """Save a matplotlib figure as a small PNG (docs/ keeps them in git)."""
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    import matplotlib.pyplot as plt

    plt.close(fig)


def camera(fps: float) -> str:
    """How the clients sent frames, in words."""
    return f"cameras at {fps:g} fps" if fps > 0 else "closed-loop clients (4 frames in flight each)"


def on_worker_thread(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run ``fn`` on a fresh worker thread and return its result.

    The server runs its models on a dedicated thread; the benchmarks do the same. On an oversubscribed machine
    torch calls made from the main thread were measured 5-10x slower than the same calls from a worker thread
    (libgomp's barrier behaviour for the initial thread's team), which would distort every figure.
    """
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="bench") as pool:
        return pool.submit(fn, *args, **kwargs).result()
